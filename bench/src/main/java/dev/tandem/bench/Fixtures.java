package dev.tandem.bench;

import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.quant.QuantBlocks;

import java.util.SplittableRandom;

/** What every kernel benchmark sets up the same way: its thread count and its random inputs. */
final class Fixtures {
    private Fixtures() {
    }

    /** The {@code threads} parameter: a number, or "all" for every available processor. */
    static int threads(String param) {
        return param.equals("all") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(param);
    }

    /** Fills {@code t} (any dtype) with uniform values in [-1, 1) from {@code seed}. */
    static void fillUniform(Tensor t, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        for (long i = 0; i < t.numel(); i++) {
            t.setFloat(i, (float) (random.nextDouble() * 2 - 1));
        }
    }

    /** Fills a 2-D block-format weight with rows of uniform values in [-1, 1) from {@code seed}, quantized row by row. */
    static void fillQuantized(Tensor t, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int k = (int) t.dim(-1);
        long rows = t.numel() / k;
        float[] row = new float[k];
        for (long r = 0; r < rows; r++) {
            for (int i = 0; i < k; i++) {
                row[i] = (float) (random.nextDouble() * 2 - 1);
            }
            QuantBlocks.quantize(t.dtype(), row, 0, k, t.segment(), t.dtype().bytesFor(r * k));
        }
    }
}
