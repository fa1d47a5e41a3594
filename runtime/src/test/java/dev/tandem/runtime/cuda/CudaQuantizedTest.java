package dev.tandem.runtime.cuda;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.runtime.quant.QuantBlocks;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CUDA kernels for weights in llama.cpp's block formats ({@code native/cuda/quant.cuh}) through
 * {@link CudaBackend}, on the host build in every build and on a GPU where there is one. The weights are
 * random valid blocks written byte by byte (random f16 scales, subnormals and zeros among them, random quant
 * bytes), so every bit pattern of the quants is decoded, and {@link QuantBlocks} (scalar Java) is the
 * reference: matmul within 1e-5 normwise of a double-precision dot with QuantBlocks' weights and of
 * {@link CpuBackend}'s f32 matmul on them, each row's result bit for bit the same alone or among 1 to 64
 * rows; embedding rows equal to QuantBlocks' decoded rows bit for bit.
 */
class CudaQuantizedTest {
    private static final double BOUND = 1e-5;
    private static final DType[] FORMATS = {DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K};
    private static long seed;
    private static CpuBackend cpu;
    private static final CudaTestBackends.PerClass BACKENDS = new CudaTestBackends.PerClass();
    private static final Arena ARENA = Arena.ofShared();

    @BeforeAll
    static void start() {
        seed = Long.getLong("tandem.test.seed", new SplittableRandom().nextLong());
        System.out.println("CudaQuantizedTest seed " + seed + " (replay with -Dtandem.test.seed=" + seed + ")");
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
        BACKENDS.close();
        ARENA.close();
    }

    static Stream<Arguments> targetsAndFormats() {
        return Stream.of(CudaTestBackends.HOST, CudaTestBackends.GPU).flatMap(t -> Stream.of(FORMATS).map(d -> Arguments.of(t, d)));
    }

    /** A random f16 scale: mostly normal magnitudes around 2^-8 .. 2^-1, sometimes a subnormal or a zero, either sign. */
    private static short scale(SplittableRandom rnd) {
        int sign = rnd.nextInt(2) << 15;
        int pick = rnd.nextInt(40);
        if (pick == 0) {
            return (short) sign; // ±0
        }
        if (pick == 1) {
            return (short) (sign | rnd.nextInt(1, 1024)); // subnormal
        }
        return (short) (sign | (rnd.nextInt(7, 15) << 10) | rnd.nextInt(1024));
    }

    /** A host tensor of {@code rows × width} values of {@code format}, each block random and valid. */
    private static Tensor randomBlocks(SplittableRandom rnd, DType format, int rows, int width) {
        Tensor t = Tensor.allocate(ARENA, format, rows, width);
        MemorySegment seg = t.segment();
        long blocks = format.bytesFor((long) rows * width) / format.blockBytes();
        for (long b = 0; b < blocks; b++) {
            long off = b * format.blockBytes();
            for (int i = 0; i < format.blockBytes(); i++) {
                seg.set(ValueLayout.JAVA_BYTE, off + i, (byte) rnd.nextInt(256));
            }
            switch (format) {
                case Q8_0, Q4_0 -> seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, scale(rnd));
                case Q4_K -> {
                    seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, scale(rnd));
                    seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, off + 2, scale(rnd));
                }
                case Q6_K -> seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, off + 208, scale(rnd));
                default -> throw new AssertionError(format);
            }
        }
        return t;
    }

    /** QuantBlocks' values of a whole tensor of blocks. */
    private static float[] dequantized(Tensor t) {
        float[] out = new float[(int) t.numel()];
        QuantBlocks.dequantize(t.dtype(), t.segment(), 0, out, 0, out.length);
        return out;
    }

    private static float[] uniform(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    private static Tensor deviceF32(CudaBackend b, float[] values, int rows, int width) {
        Tensor t = b.allocate(rows, width);
        float[][] r = new float[rows][];
        for (int i = 0; i < rows; i++) {
            r[i] = Arrays.copyOfRange(values, i * width, (i + 1) * width);
        }
        b.writeRows(r, t, 0);
        return t;
    }

    private static Tensor poisoned(CudaBackend b, int rows, int width) {
        float[] nan = new float[rows * width];
        Arrays.fill(nan, Float.NaN);
        return deviceF32(b, nan, rows, width);
    }

    private static float[] read(CudaBackend b, Tensor t, int rows, int width) {
        float[][] r = b.readRows(t, 0, rows);
        float[] out = new float[rows * width];
        for (int i = 0; i < rows; i++) {
            System.arraycopy(r[i], 0, out, i * width, width);
        }
        return out;
    }

    /** x[n, k] · w[m, k]ᵀ on the device, out poisoned first. */
    private static float[] deviceMatmul(CudaBackend b, Tensor w, float[] x, int n, int k, int m) {
        Tensor dx = deviceF32(b, x, n, k);
        Tensor dout = poisoned(b, n, m);
        b.matmul(dx, w, dout);
        float[] got = read(b, dout, n, m);
        b.free(dx);
        b.free(dout);
        return got;
    }

    private static void assertClose(double[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": lengths");
        double err = 0, norm = 0;
        for (int i = 0; i < expected.length; i++) {
            assertTrue(!Float.isNaN(actual[i]), what + ": element " + i + " is NaN (seed " + seed + ")");
            double d = actual[i] - expected[i];
            err += d * d;
            norm += expected[i] * expected[i];
        }
        double rel = norm == 0 ? Math.sqrt(err) : Math.sqrt(err / norm);
        assertTrue(rel <= BOUND, what + ": normwise error " + rel + " > " + BOUND + " (seed " + seed + ")");
    }

    private static double[] widen(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    @ParameterizedTest
    @MethodSource("targetsAndFormats")
    void matmulMatchesTheDecodedWeightsAndIsBatchInvariant(String which, DType format) {
        CudaBackend b = BACKENDS.get(which);
        SplittableRandom rnd = new SplittableRandom(seed ^ format.hashCode());
        int per = format.blockElements();
        // One block; an odd number of blocks (rows only 2-byte aligned: the narrowest staging); 8 blocks (16-byte
        // aligned rows); more than 32 groups of 32, so more than one chunk and a partial last one.
        int[] ks = per == 32 ? new int[] {32, 96, 256, 1056} : new int[] {256, 768, 2048, 2304};
        int m = 37, rows = 64;
        for (int k : ks) {
            Tensor wHost = randomBlocks(rnd, format, m, k);
            Tensor w = b.loadWeight(wHost);
            float[] wf = dequantized(wHost);
            float[] x = uniform(rnd, rows * k);
            float[] all = deviceMatmul(b, w, x, rows, k, m);

            double[] reference = new double[rows * m];
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < m; c++) {
                    double s = 0;
                    for (int i = 0; i < k; i++) {
                        s += (double) x[r * k + i] * wf[c * k + i];
                    }
                    reference[r * m + c] = s;
                }
            }
            String what = "matmul " + format.lowerName() + " k " + k;
            assertClose(reference, all, what + " against QuantBlocks in double");
            Tensor cpuOut = Tensor.allocate(ARENA, DType.F32, rows, m);
            cpu.matmul(Tensor.ofFloats(x, rows, k), Tensor.ofFloats(wf, m, k), cpuOut);
            assertClose(widen(cpuOut.toFloatArray()), all, what + " against the CPU's f32 matmul");

            for (int n : new int[] {1, 2, 3, 4, 5, 8, 9, 17, 33, 63}) {
                float[] some = deviceMatmul(b, w, Arrays.copyOf(x, n * k), n, k, m);
                assertArrayEquals(Arrays.copyOf(all, n * m), some, what + ": the first " + n + " rows alone and among 64 must be bit-equal");
            }
            float[] last = deviceMatmul(b, w, Arrays.copyOfRange(x, (rows - 1) * k, rows * k), 1, k, m);
            assertArrayEquals(Arrays.copyOfRange(all, (rows - 1) * m, rows * m), last, what + ": row 63 alone and among 64");
        }
    }

    @ParameterizedTest
    @MethodSource("targetsAndFormats")
    void embeddingRowsAreTheDecodedRows(String which, DType format) {
        CudaBackend b = BACKENDS.get(which);
        SplittableRandom rnd = new SplittableRandom(seed ^ 31 * format.hashCode());
        int per = format.blockElements();
        for (int d : new int[] {per, 3 * per}) {
            int vocab = 11;
            Tensor host = randomBlocks(rnd, format, vocab, d);
            Tensor table = b.loadWeight(host);
            float[] values = dequantized(host);
            int[] ids = {10, 0, 4, 4, 7};
            Tensor out = poisoned(b, ids.length, d);
            b.embed(table, ids, out);
            float[] got = read(b, out, ids.length, d);
            for (int r = 0; r < ids.length; r++) {
                assertArrayEquals(Arrays.copyOfRange(values, ids[r] * d, (ids[r] + 1) * d), Arrays.copyOfRange(got, r * d, (r + 1) * d),
                        "embedding row " + ids[r] + " of " + format.lowerName() + " width " + d);
            }
            IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> b.embed(table, new int[] {11}, out));
            assertEquals("token id 11 is outside the vocabulary [0, 11)", bad.getMessage());
            b.free(out);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void rowsThatSplitABlockAndQuantizedNormsAreRefused(String which) {
        CudaBackend b = BACKENDS.get(which);
        SplittableRandom rnd = new SplittableRandom(seed);
        // 2 rows of 128 Q4_K values: one block of 256 split across two rows.
        Tensor split = b.loadWeight(randomBlocks(rnd, DType.Q4_K, 1, 256).reshape(2, 128));
        Tensor x = b.allocate(1, 128);
        Tensor out = b.allocate(1, 2);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.matmul(x, split, out));
        assertEquals("matmul: rows of 128 q4_k values are not whole blocks of 256", e.getMessage());
        Tensor norm = b.loadWeight(randomBlocks(rnd, DType.Q8_0, 1, 32).reshape(32));
        Tensor h = b.allocate(1, 32);
        e = assertThrows(IllegalArgumentException.class, () -> b.rmsnorm(h, norm, 1e-5f, h));
        assertEquals("the CUDA backend reads q8_0 weights in matmul and embed only, not here", e.getMessage());
        b.free(x);
        b.free(out);
        b.free(h);
    }
}
