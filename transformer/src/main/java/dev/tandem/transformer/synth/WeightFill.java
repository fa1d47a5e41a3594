package dev.tandem.transformer.synth;

import dev.tandem.runtime.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The values of synthetic weights. A tensor of {@code n} elements is cut into chunks of
 * {@link #CHUNK_ELEMENTS} elements (the last one shorter); chunk {@code c} of tensor {@code name} is
 * filled by a SplitMix64 stream whose start depends only on (seed, name, c). So every byte of a
 * checkpoint is a function of its seed alone, whatever the thread count or buffer size, and chunks can
 * be generated in any order and in parallel.
 *
 * <p>Random tensors are uniform on [−a, a) with a = 0.02·√3, so their standard deviation is 0.02,
 * transformers' default {@code initializer_range}. Uniform rather than normal because it costs one
 * multiply per value (no Box–Muller, no logarithms), and the benchmarks that use these checkpoints time
 * the arithmetic, which does not depend on the distribution of the weights.
 *
 * <p>Changing anything here (chunk size, seeding, the value formula) changes every synthetic
 * checkpoint; treat it as a file format.
 */
final class WeightFill {

    /** Elements per independently seeded chunk. */
    static final int CHUNK_ELEMENTS = 1 << 18;

    /** Half-width of the uniform distribution: a/√3 = 0.02. */
    static final float HALF_WIDTH = (float) (0.02 * Math.sqrt(3.0));
    /** From a signed 24-bit integer in [−2^23, 2^23) to [−a, a). */
    private static final float SCALE = HALF_WIDTH / (1 << 23);

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private static final ValueLayout.OfFloat F32_LE =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** How a tensor is initialised. */
    enum Init {
        /** Uniform with standard deviation 0.02 (linear and embedding weights). */
        UNIFORM,
        /** 1 (RMSNorm weights). */
        ONES,
        /** 0 (biases). */
        ZEROS
    }

    private WeightFill() {
    }

    /** The per-tensor key: seed and name mixed (FNV-1a over the name's UTF-8, then SplitMix64 finalisers). */
    static long tensorKey(long seed, String name) {
        long h = 0xCBF29CE484222325L;
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001B3L;
        }
        return mix(mix(seed) ^ mix(h + GOLDEN));
    }

    /** The starting state of chunk {@code chunk} of the tensor with key {@code tensorKey}. */
    static long chunkState(long tensorKey, long chunk) {
        return mix(tensorKey + (chunk + 1) * GOLDEN);
    }

    /** SplitMix64's output function. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /**
     * Writes elements {@code [firstElement, firstElement + count)} of a tensor into {@code dst} from byte
     * 0, in {@code dtype}, little-endian. {@code firstElement} must be a multiple of
     * {@link #CHUNK_ELEMENTS} for {@link Init#UNIFORM}.
     */
    static void fillChunk(MemorySegment dst, Init init, DType dtype, long tensorKey, long firstElement, int count) {
        switch (init) {
            case ONES -> fillConstant(dst, dtype, 1f, count);
            case ZEROS -> dst.asSlice(0, (long) count * dtype.byteSize()).fill((byte) 0);
            case UNIFORM -> {
                if (firstElement % CHUNK_ELEMENTS != 0 || count > CHUNK_ELEMENTS) {
                    throw new IllegalArgumentException("uniform chunks start at multiples of " + CHUNK_ELEMENTS);
                }
                fillUniform(dst, dtype, chunkState(tensorKey, firstElement / CHUNK_ELEMENTS), count);
            }
        }
    }

    private static void fillConstant(MemorySegment dst, DType dtype, float v, int count) {
        for (int i = 0; i < count; i++) {
            dtype.write(dst, i, v);
        }
    }

    /** Two values per SplitMix64 output: the signed top 24 bits of each 32-bit half, scaled. */
    private static void fillUniform(MemorySegment dst, DType dtype, long state, int count) {
        int pairs = count >>> 1;
        switch (dtype) {
            case F32 -> {
                for (int i = 0; i < pairs; i++) {
                    state += GOLDEN;
                    long z = mix(state);
                    dst.setAtIndex(F32_LE, 2L * i, (int) (z >> 32 >> 8) * SCALE);
                    dst.setAtIndex(F32_LE, 2L * i + 1, ((int) z >> 8) * SCALE);
                }
                if ((count & 1) != 0) {
                    long z = mix(state + GOLDEN);
                    dst.setAtIndex(F32_LE, count - 1, (int) (z >> 32 >> 8) * SCALE);
                }
            }
            case BF16 -> {
                for (int i = 0; i < pairs; i++) {
                    state += GOLDEN;
                    long z = mix(state);
                    dst.setAtIndex(I16_LE, 2L * i, DType.floatToBf16((int) (z >> 32 >> 8) * SCALE));
                    dst.setAtIndex(I16_LE, 2L * i + 1, DType.floatToBf16(((int) z >> 8) * SCALE));
                }
                if ((count & 1) != 0) {
                    long z = mix(state + GOLDEN);
                    dst.setAtIndex(I16_LE, count - 1, DType.floatToBf16((int) (z >> 32 >> 8) * SCALE));
                }
            }
            case F16 -> {
                for (int i = 0; i < pairs; i++) {
                    state += GOLDEN;
                    long z = mix(state);
                    dst.setAtIndex(I16_LE, 2L * i, Float.floatToFloat16((int) (z >> 32 >> 8) * SCALE));
                    dst.setAtIndex(I16_LE, 2L * i + 1, Float.floatToFloat16(((int) z >> 8) * SCALE));
                }
                if ((count & 1) != 0) {
                    long z = mix(state + GOLDEN);
                    dst.setAtIndex(I16_LE, count - 1, Float.floatToFloat16((int) (z >> 32 >> 8) * SCALE));
                }
            }
            default -> throw new IllegalArgumentException("synthetic weights are f32, bf16 or f16, not " + dtype.lowerName());
        }
    }
}
