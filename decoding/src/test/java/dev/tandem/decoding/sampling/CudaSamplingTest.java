package dev.tandem.decoding.sampling;

import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cuda.CudaBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Temperature sampling on the CUDA backend draws the token {@link Sampler#sample} draws on the CPU for the same
 * (seed, stream, position), on the host build of the kernels in every build and on a GPU where present
 * (elsewhere that half reports itself skipped, with the reason). The two sum the weights in different orders,
 * so they may differ where u · Σw falls within rounding of a boundary between two ids: about once in 10^13
 * draws, never in this test's few thousand (the seed is printed; -Dtandem.test.seed replays).
 */
class CudaSamplingTest {
    private static long seed;
    private static final CudaTestBackends.PerClass BACKENDS = new CudaTestBackends.PerClass();

    @BeforeAll
    static void chooseTheSeed() {
        seed = Long.getLong("tandem.test.seed", new SplittableRandom().nextLong());
        System.out.println("CudaSamplingTest seed " + seed + " (replay with -Dtandem.test.seed=" + seed + ")");
    }

    @AfterAll
    static void close() {
        BACKENDS.close();
    }

    private static CudaBackend backend(String which) {
        return BACKENDS.get(which);
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void theDeviceDrawsTheCpusTokens(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = new SplittableRandom(seed);
        int rows = 64;
        for (int vocab : new int[] {7, 300, 2048, 5000}) {
            for (float temperature : new float[] {0.3f, 1f, 1.7f}) {
                float[][] logits = new float[rows][vocab];
                long[] streams = new long[rows], positions = new long[rows];
                for (int r = 0; r < rows; r++) {
                    for (int t = 0; t < vocab; t++) {
                        logits[r][t] = (float) (rnd.nextGaussian() * 3);
                    }
                    if (r % 5 == 0) {
                        logits[r][rnd.nextInt(vocab)] = Float.NEGATIVE_INFINITY; // a masked token
                    }
                    streams[r] = rnd.nextLong(1000);
                    positions[r] = rnd.nextLong(1L << 32);
                }
                long drawSeed = rnd.nextLong();
                Tensor d = b.allocate(rows, vocab);
                b.writeRows(logits, d, 0);
                int[] got = b.sampleWithTemperature(d, temperature, drawSeed, streams, positions);
                SamplingParams p = SamplingParams.greedy().withTemperature(temperature).withSeed(drawSeed);
                for (int r = 0; r < rows; r++) {
                    int expected = Sampler.sample(logits[r], p, new int[0], 0, streams[r], positions[r]);
                    assertEquals(expected, got[r], "vocab " + vocab + ", temperature " + temperature + ", row " + r + " (seed " + seed + ")");
                }
                b.free(d);
            }
        }
    }

    /** With purpose DRAFT and normalised weights, the device draws what {@code DrafterModel} draws from q on the host. */
    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void theDeviceDrawsTheDraftersTokens(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = new SplittableRandom(seed ^ 0x5eedL);
        int rows = 64;
        for (int vocab : new int[] {7, 2048}) {
            for (float temperature : new float[] {0.5f, 1f}) {
                float[][] logits = new float[rows][vocab];
                long[] streams = new long[rows], positions = new long[rows];
                for (int r = 0; r < rows; r++) {
                    for (int t = 0; t < vocab; t++) {
                        logits[r][t] = (float) (rnd.nextGaussian() * 3);
                    }
                    streams[r] = rnd.nextLong(1000);
                    positions[r] = rnd.nextLong(1L << 32);
                }
                long drawSeed = rnd.nextLong();
                Tensor d = b.allocate(rows, vocab);
                b.writeRows(logits, d, 0);
                int[] got = b.sampleWithTemperature(d, temperature, drawSeed, streams, positions, RngPurpose.DRAFT, true);
                SamplingParams p = SamplingParams.greedy().withTemperature(temperature).withSeed(drawSeed);
                for (int r = 0; r < rows; r++) {
                    double[] q = Sampler.distribution(logits[r], p, new int[0], 0);
                    int expected = Sampler.inverseCdf(q, 1.0, CounterRng.uniform(drawSeed, streams[r], positions[r], RngPurpose.DRAFT, 0));
                    assertEquals(expected, got[r], "vocab " + vocab + ", temperature " + temperature + ", row " + r + " (seed " + seed + ")");
                }
                b.free(d);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void badRowsAreRefusedAsTheCpuRefusesThem(String which) {
        CudaBackend b = backend(which);
        float[][] logits = {{1, 2, 3}, {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}};
        Tensor d = b.allocate(2, 3);
        b.writeRows(logits, d, 0);
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> b.sampleWithTemperature(d, 1f, 1, new long[] {0, 0}, new long[] {0, 0}));
        assertEquals("every logit of row 1 is -Infinity, so there is no token to choose.", none.getMessage());
        b.writeRows(new float[][] {{1, Float.NaN, 3}}, d, 1);
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class,
                () -> b.sampleWithTemperature(d, 1f, 1, new long[] {0, 0}, new long[] {0, 0}));
        assertTrue(nan.getMessage().contains("row 1 holds NaN or +Infinity"), nan.getMessage());
        assertThrows(IllegalArgumentException.class, () -> b.sampleWithTemperature(d, 0f, 1, new long[] {0, 0}, new long[] {0, 0}));
        assertThrows(IllegalArgumentException.class, () -> b.sampleWithTemperature(d, 1f, 1, new long[] {0}, new long[] {0}));
        assertThrows(IllegalArgumentException.class, () -> b.sampleWithTemperature(d, 1f, 1, new long[] {0, 0}, new long[] {0, 1L << 32}));
        b.free(d);
    }
}
