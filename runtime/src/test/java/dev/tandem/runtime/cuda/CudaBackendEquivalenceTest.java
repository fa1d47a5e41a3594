package dev.tandem.runtime.cuda;

import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.LogitMix;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.RopeLayout;
import dev.tandem.runtime.RowSelection;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.runtime.kv.KvStorage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The backend-equivalence suite: every {@link Backend} op of {@link CudaBackend} against {@link CpuBackend}
 * on the same inputs, on two drivers — the host build of the kernels ({@code native/cuda/host}), in every
 * build, and NVIDIA's driver with the embedded fatbin where a GPU is present (elsewhere those cases report
 * themselves skipped, with the reason). Inputs are fresh random numbers each run, from a seed printed at
 * the start and replayable with {@code -Dtandem.test.seed=N}; every output buffer is filled with NaN before
 * the op runs, so an element the kernel misses cannot pass; the error bound is normwise,
 * ‖cuda − cpu‖ / ‖cpu‖ ≤ 1e-5 (both compute in f32 from the same rounded bf16/f16 weights and KV; they differ
 * only in summation order), and a NaN where the CPU has a number fails.
 */
class CudaBackendEquivalenceTest {
    private static final double F32_BOUND = 1e-5;
    private static long seed;
    private static CpuBackend cpu;
    private static final CudaTestBackends.PerClass BACKENDS = new CudaTestBackends.PerClass();
    private static final Arena ARENA = Arena.ofShared();

    @BeforeAll
    static void start() {
        seed = Long.getLong("tandem.test.seed", new SplittableRandom().nextLong());
        System.out.println("CudaBackendEquivalenceTest seed " + seed + " (replay with -Dtandem.test.seed=" + seed + ")");
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
        BACKENDS.close();
        ARENA.close();
    }

    /** The backend on {@code which} (CudaTestBackends), opened once per class. */
    static CudaBackend backend(String which) {
        return BACKENDS.get(which);
    }

    // ---------------------------------------------------------------------------------------------------
    // Helpers

    private static SplittableRandom random(String test) {
        return new SplittableRandom(seed ^ test.hashCode());
    }

    private static float[] uniform(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    /** A host tensor of {@code dtype} holding {@code values} rounded to it. */
    private static Tensor hostTensor(DType dtype, float[] values, long... shape) {
        Tensor t = Tensor.allocate(ARENA, dtype, shape);
        for (int i = 0; i < values.length; i++) {
            t.setFloat(i, values[i]);
        }
        return t;
    }

    /** An f32 device tensor of {@code rows × width} holding {@code values}. */
    private static Tensor deviceF32(Backend b, float[] values, int rows, int width) {
        Tensor t = b.allocate(rows, width);
        b.writeRows(toRows(values, rows, width), t, 0);
        return t;
    }

    /** An f32 device tensor of {@code rows × width} full of NaN. */
    private static Tensor poisoned(Backend b, int rows, int width) {
        float[] nan = new float[rows * width];
        Arrays.fill(nan, Float.NaN);
        return deviceF32(b, nan, rows, width);
    }

    private static float[][] toRows(float[] values, int rows, int width) {
        float[][] out = new float[rows][];
        for (int r = 0; r < rows; r++) {
            out[r] = Arrays.copyOfRange(values, r * width, (r + 1) * width);
        }
        return out;
    }

    private static float[] read(Backend b, Tensor t) {
        int rows = (int) t.dim(0);
        int width = (int) (t.numel() / Math.max(1, rows));
        float[][] r = b.readRows(t, 0, rows);
        float[] out = new float[rows * width];
        for (int i = 0; i < rows; i++) {
            System.arraycopy(r[i], 0, out, i * width, width);
        }
        return out;
    }

    private static float[] cpuRead(Tensor t) {
        return t.toFloatArray();
    }

    /** ‖actual − expected‖ / ‖expected‖ ≤ bound, and no NaN where expected has a number. */
    static void assertClose(float[] expected, float[] actual, double bound, String what) {
        assertEquals(expected.length, actual.length, what + ": lengths");
        double err = 0, norm = 0;
        for (int i = 0; i < expected.length; i++) {
            if (Float.isNaN(actual[i]) && !Float.isNaN(expected[i])) {
                throw new AssertionError(what + ": element " + i + " is NaN, the CPU has " + expected[i] + " (seed " + seed + ")");
            }
            double d = (double) actual[i] - expected[i];
            err += d * d;
            norm += (double) expected[i] * expected[i];
        }
        double rel = norm == 0 ? Math.sqrt(err) : Math.sqrt(err / norm);
        assertTrue(rel <= bound, what + ": normwise error " + rel + " > " + bound + " (seed " + seed + ")");
    }

    // ---------------------------------------------------------------------------------------------------
    // Memory and copies

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void allocationIsZeroFilledCountedAndFreed(String which) {
        CudaBackend b = backend(which);
        assertEquals(Placement.DEVICE, b.placement());
        long before = b.allocatedBytes();
        Tensor t = b.allocate(3, 5);
        assertEquals(Placement.DEVICE, t.placement());
        assertEquals(before + 60, b.allocatedBytes());
        assertArrayEquals(new float[15], read(b, t));
        b.free(t);
        assertEquals(before, b.allocatedBytes());
        assertThrows(IllegalArgumentException.class, () -> b.free(t));
        assertThrows(IllegalArgumentException.class, () -> b.matmul(Tensor.ofFloats(new float[4], 2, 2), t, t));
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void rowsGoInAndOutAndGatherInAnyOrder(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("rows");
        float[] values = uniform(rnd, 6 * 7);
        Tensor t = deviceF32(b, values, 6, 7);
        assertArrayEquals(values, read(b, t));
        float[][] middle = b.readRows(t, 2, 3);
        assertArrayEquals(Arrays.copyOfRange(values, 14, 21), middle[0]);
        int[] order = {5, 0, 5, 3};
        Tensor dst = poisoned(b, 4, 7);
        b.gatherRows(t, order, dst);
        float[] gathered = read(b, dst);
        for (int i = 0; i < order.length; i++) {
            assertArrayEquals(Arrays.copyOfRange(values, order[i] * 7, order[i] * 7 + 7), Arrays.copyOfRange(gathered, i * 7, i * 7 + 7));
        }
        // An odd number of bf16 elements per row takes the byte-wise copy.
        Tensor narrow = b.loadWeight(hostTensor(DType.BF16, uniform(rnd, 4 * 3), 4, 3));
        Tensor narrowOut = b.allocate(DType.BF16, 2, 3);
        b.gatherRows(narrow, new int[] {3, 1}, narrowOut);
        assertThrows(IndexOutOfBoundsException.class, () -> b.gatherRows(t, new int[] {6}, dst));
        b.free(t);
        b.free(dst);
        b.free(narrowOut);
    }

    // ---------------------------------------------------------------------------------------------------
    // Compute

    static Stream<Arguments> targetsAndWeightTypes() {
        return Stream.of("host", "gpu").flatMap(t -> Stream.of(DType.values()).filter(d -> !d.isQuantized()).map(d -> Arguments.of(t, d)));
    }

    @ParameterizedTest
    @MethodSource("targetsAndWeightTypes")
    void matmulMatchesTheCpuAndIsBatchInvariant(String which, DType dtype) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("matmul" + dtype);
        // k = 300 takes the element-wise path (not a multiple of 8), k = 264 the 16-byte loads; m = 37 is not
        // a multiple of the 8 columns a block takes.
        for (int k : new int[] {300, 264}) {
            int m = 37;
            Tensor wHost = hostTensor(dtype, uniform(rnd, m * k), m, k);
            Tensor w = b.loadWeight(wHost);
            float[] x = uniform(rnd, 9 * k);
            float[] firstRowAlone = null;
            for (int n : new int[] {1, 3, 5, 9}) {
                float[] xs = Arrays.copyOf(x, n * k);
                Tensor out = Tensor.allocate(ARENA, DType.F32, n, m);
                cpu.matmul(Tensor.ofFloats(xs, n, k), wHost, out);
                Tensor dx = deviceF32(b, xs, n, k);
                Tensor dout = poisoned(b, n, m);
                b.matmul(dx, w, dout);
                float[] got = read(b, dout);
                assertClose(cpuRead(out), got, F32_BOUND, "matmul " + dtype + " k " + k + " of " + n + " rows");
                if (firstRowAlone == null) {
                    firstRowAlone = got;
                } else {
                    assertArrayEquals(firstRowAlone, Arrays.copyOf(got, m), "row 0 alone and among " + n + " rows must be bit-equal");
                }
                b.free(dx);
                b.free(dout);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void matmulOfSeveralWeightsEqualsEachAlone(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("matmuls");
        int n = 3, k = 64;
        Tensor[] ws = {b.loadWeight(hostTensor(DType.F32, uniform(rnd, 16 * k), 16, k)),
                b.loadWeight(hostTensor(DType.BF16, uniform(rnd, 8 * k), 8, k))};
        Tensor x = deviceF32(b, uniform(rnd, n * k), n, k);
        Tensor[] together = {poisoned(b, n, 16), poisoned(b, n, 8)};
        b.matmul(x, ws, together);
        for (int i = 0; i < ws.length; i++) {
            Tensor alone = poisoned(b, n, (int) ws[i].dim(0));
            b.matmul(x, ws[i], alone);
            assertArrayEquals(read(b, alone), read(b, together[i]), "weight " + i);
            b.free(alone);
            b.free(together[i]);
        }
        b.free(x);
    }

    @ParameterizedTest
    @MethodSource("targetsAndWeightTypes")
    void biasNormAndEmbeddingReadEveryWeightType(String which, DType dtype) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("weights" + dtype);
        int n = 3, width = 300;
        float[] x = uniform(rnd, n * width);
        Tensor weightHost = hostTensor(dtype, uniform(rnd, width), width);
        Tensor weight = b.loadWeight(weightHost);

        Tensor cpuBiased = Tensor.allocate(ARENA, DType.F32, n, width);
        cpu.add(Tensor.ofFloats(x, n, width), Tensor.ofFloats(new float[n * width], n, width), cpuBiased);
        cpu.addBias(cpuBiased, weightHost);
        Tensor dx = deviceF32(b, x, n, width);
        b.addBias(dx, weight);
        assertClose(cpuRead(cpuBiased), read(b, dx), F32_BOUND, "addBias " + dtype);

        Tensor cpuNormed = Tensor.allocate(ARENA, DType.F32, n, width);
        cpu.rmsnorm(Tensor.ofFloats(x, n, width), weightHost, 1e-5f, cpuNormed);
        Tensor dx2 = deviceF32(b, x, n, width);
        Tensor dNormed = poisoned(b, n, width);
        b.rmsnorm(dx2, weight, 1e-5f, dNormed);
        assertClose(cpuRead(cpuNormed), read(b, dNormed), F32_BOUND, "rmsnorm " + dtype);

        int vocab = 11, d = 33;
        Tensor tableHost = hostTensor(dtype, uniform(rnd, vocab * d), vocab, d);
        Tensor table = b.loadWeight(tableHost);
        int[] ids = {10, 0, 4, 4};
        Tensor cpuRows = Tensor.allocate(ARENA, DType.F32, ids.length, d);
        cpu.embed(tableHost, ids, cpuRows);
        Tensor dRows = poisoned(b, ids.length, d);
        b.embed(table, ids, dRows);
        assertArrayEquals(cpuRead(cpuRows), read(b, dRows), "embedding rows are copies: bit-equal");
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> b.embed(table, new int[] {11}, dRows));
        assertEquals("token id 11 is outside the vocabulary [0, 11)", bad.getMessage());
        b.free(dx);
        b.free(dx2);
        b.free(dNormed);
        b.free(dRows);
    }

    /** Rows as a residual stream has them: every other row off zero by up to ±20, spreads of 0.1 to 3, a large feature every 97. */
    private static float[] hiddenStates(SplittableRandom rnd, int n, int width) {
        float[] x = new float[n * width];
        for (int r = 0; r < n; r++) {
            double offset = (rnd.nextDouble() - 0.5) * 40 * (r % 2), scale = 0.1 + rnd.nextDouble() * 3;
            for (int i = 0; i < width; i++) {
                x[r * width + i] = (float) (offset + scale * rnd.nextGaussian() * (i % 97 == 5 ? 30 : 1));
            }
        }
        return x;
    }

    @ParameterizedTest
    @MethodSource("targetsAndWeightTypes")
    void layerNormMatchesTheCpuIsBatchInvariantAndRunsInPlace(String which, DType dtype) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("layerNorm" + dtype);
        for (int width : new int[] {7, 384, 1536}) {
            float[] x = hiddenStates(rnd, 37, width);
            Tensor weightHost = hostTensor(dtype, uniform(rnd, width), width), biasHost = hostTensor(dtype, uniform(rnd, width), width);
            Tensor weight = b.loadWeight(weightHost), bias = b.loadWeight(biasHost);
            float[] firstRowAlone = null;
            for (int n : new int[] {1, 3, 17, 37}) {
                float[] xs = Arrays.copyOf(x, n * width);
                Tensor cpuOut = Tensor.allocate(ARENA, DType.F32, n, width);
                cpu.layerNorm(Tensor.ofFloats(xs, n, width), weightHost, biasHost, 1e-12f, cpuOut);
                Tensor dx = deviceF32(b, xs, n, width), dout = poisoned(b, n, width);
                b.layerNorm(dx, weight, bias, 1e-12f, dout);
                float[] got = read(b, dout);
                String what = "layerNorm " + dtype + ", width " + width + ", " + n + " rows";
                assertClose(cpuRead(cpuOut), got, F32_BOUND, what);
                if (firstRowAlone == null) {
                    firstRowAlone = got;
                } else {
                    assertArrayEquals(firstRowAlone, Arrays.copyOf(got, width), "row 0 alone and among " + n + " rows must be bit-equal, " + what);
                }
                b.layerNorm(dx, weight, bias, 1e-12f, dx); // out may alias x
                assertArrayEquals(got, read(b, dx), "in place, " + what);
                b.free(dx);
                b.free(dout);
            }
        }
        Tensor w = b.loadWeight(hostTensor(DType.F32, uniform(rnd, 8), 8)), bf = b.loadWeight(hostTensor(DType.BF16, uniform(rnd, 8), 8));
        Tensor dx = deviceF32(b, uniform(rnd, 16), 2, 8);
        assertThrows(IllegalArgumentException.class, () -> b.layerNorm(dx, w, bf, 1e-5f, dx), "weight and bias of two dtypes");
        b.free(dx);
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void geluMatchesTheCpuIsBatchInvariantAndRunsInPlace(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("gelu");
        for (int width : new int[] {7, 384, 1536}) {
            float[] x = new float[37 * width];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (i % 3 == 0 ? rnd.nextGaussian() * 3 : rnd.nextDouble() * 20 - 10);
            }
            float[] firstRowAlone = null;
            for (int n : new int[] {1, 3, 17, 37}) {
                float[] xs = Arrays.copyOf(x, n * width);
                Tensor cpuOut = Tensor.allocate(ARENA, DType.F32, n, width);
                cpu.gelu(Tensor.ofFloats(xs, n, width), cpuOut);
                Tensor dx = deviceF32(b, xs, n, width), dout = poisoned(b, n, width);
                b.gelu(dx, dout);
                float[] got = read(b, dout);
                // The CPU's erf is its own (FloatErf), the GPU's erff: a few ulp apart, within the bound as a whole.
                assertClose(cpuRead(cpuOut), got, F32_BOUND, "gelu, width " + width + ", " + n + " rows");
                if (firstRowAlone == null) {
                    firstRowAlone = got;
                } else {
                    assertArrayEquals(firstRowAlone, Arrays.copyOf(got, width), "row 0 alone and among " + n + " rows must be bit-equal");
                }
                b.gelu(dx, dx); // out may alias x
                assertArrayEquals(got, read(b, dx), "gelu in place");
                b.free(dx);
                b.free(dout);
            }
        }
    }

    static Stream<Arguments> targetsAndRopeLayouts() {
        return Stream.of("host", "gpu").flatMap(t -> Stream.of(RopeLayout.values()).map(l -> Arguments.of(t, l)));
    }

    @ParameterizedTest
    @MethodSource("targetsAndRopeLayouts")
    void ropeRotatesEveryLayoutLikeTheCpu(String which, RopeLayout layout) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("rope" + layout);
        int n = 4, heads = 3, headDim = 16;
        float[] x = uniform(rnd, n * heads * headDim);
        int[] positions = {0, 7, 300, 1023};
        float[] invFreq = new float[headDim / 2];
        for (int i = 0; i < invFreq.length; i++) {
            invFreq[i] = (float) Math.pow(10000, -2.0 * i / headDim);
        }
        Tensor cpuX = Tensor.ofFloats(x.clone(), n, heads * headDim);
        cpu.rope(cpuX, heads, headDim, positions, invFreq, layout);
        Tensor dx = deviceF32(b, x, n, heads * headDim);
        b.rope(dx, heads, headDim, positions, invFreq, layout);
        assertClose(cpuRead(cpuX), read(b, dx), F32_BOUND, "rope " + layout);
        b.free(dx);
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void elementwiseAndRowOpsMatchTheCpu(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("elementwise");
        int n = 5, width = 700;
        float[] g = uniform(rnd, n * width), u = uniform(rnd, n * width);
        Tensor cpuOut = Tensor.allocate(ARENA, DType.F32, n, width);
        Tensor dg = deviceF32(b, g, n, width), du = deviceF32(b, u, n, width), dout = poisoned(b, n, width);

        cpu.siluMul(Tensor.ofFloats(g, n, width), Tensor.ofFloats(u, n, width), cpuOut);
        b.siluMul(dg, du, dout);
        assertClose(cpuRead(cpuOut), read(b, dout), F32_BOUND, "siluMul");

        cpu.add(Tensor.ofFloats(g, n, width), Tensor.ofFloats(u, n, width), cpuOut);
        b.add(dg, du, dout);
        assertArrayEquals(cpuRead(cpuOut), read(b, dout), "add is one rounding: bit-equal");
        b.add(dg, du, dg); // out may alias a
        assertArrayEquals(cpuRead(cpuOut), read(b, dg));

        float[] logits = new float[n * width];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) (rnd.nextGaussian() * 4);
        }
        logits[width + 17] = 50; // row 1: a tie between 17 and 600, the lower index wins
        logits[width + 600] = 50;
        logits[2 * width + 300] = Float.NaN; // row 2: a NaN has no greedy token
        logits[3 * width + 5] = Float.POSITIVE_INFINITY; // row 3: nor has +Infinity
        Tensor cpuLogits = Tensor.ofFloats(logits.clone(), n, width);
        Tensor dLogits = deviceF32(b, logits, n, width);
        int[] expected = cpu.argmax(cpuLogits);
        assertArrayEquals(expected, b.argmax(dLogits), "argmax");
        assertEquals(17, expected[1]);
        assertEquals(-1, expected[2]);
        assertEquals(-1, expected[3]);
        float[][] allMasked = new float[1][width];
        Arrays.fill(allMasked[0], Float.NEGATIVE_INFINITY);
        Tensor dMasked = deviceF32(b, allMasked[0], 1, width);
        assertArrayEquals(new int[] {-1}, b.argmax(dMasked), "a row of -Infinity has no greedy token");
        b.free(dMasked);

        float[] finite = Arrays.copyOf(logits, logits.length);
        finite[2 * width + 300] = 1;
        finite[3 * width + 5] = 1;
        Tensor cpuSoft = Tensor.ofFloats(finite.clone(), n, width);
        cpu.softmax(cpuSoft);
        Tensor dSoft = deviceF32(b, finite, n, width);
        b.softmax(dSoft);
        assertClose(cpuRead(cpuSoft), read(b, dSoft), F32_BOUND, "softmax");
        for (Tensor t : new Tensor[] {dg, du, dout, dLogits, dSoft}) {
            b.free(t);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void logitSummariesMatchTheCpu(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("summaries");
        for (int width : new int[] {37, 2051}) {
            int n = 8;
            float[] logits = new float[n * width];
            for (int i = 0; i < logits.length; i++) {
                logits[i] = (float) (rnd.nextGaussian() * 3);
            }
            logits[width + 3] = 20; // row 1: three-way tie at the top, in different threads' strides
            logits[width + 20] = 20;
            logits[width + width - 1] = 20;
            logits[2 * width + 11] = Float.NaN; // row 2: no summary
            logits[3 * width + width / 2] = Float.POSITIVE_INFINITY; // row 3: no summary
            Arrays.fill(logits, 4 * width, 5 * width, Float.NEGATIVE_INFINITY); // row 4: no finite value
            Arrays.fill(logits, 5 * width, 6 * width, Float.NEGATIVE_INFINITY); // row 5: two finite values
            logits[5 * width + 9] = -1;
            logits[5 * width + width - 2] = 4;
            for (int i = 6 * width; i < 7 * width; i += 2) {
                logits[i] = Float.NEGATIVE_INFINITY; // row 6: masked logits among finite ones
            }
            logits[7 * width + 1] = -0.0f; // row 7: -0 and +0 tie at the top; the lower id first
            logits[7 * width + 30] = 0.0f;
            for (int i = 7 * width; i < 8 * width; i++) {
                if (i != 7 * width + 1 && i != 7 * width + 30) {
                    logits[i] = -1 - Math.abs(logits[i]);
                }
            }
            Tensor cpuLogits = Tensor.ofFloats(logits.clone(), n, width);
            Tensor dLogits = deviceF32(b, logits, n, width);
            for (int k : new int[] {1, 2, 5, LogitSummary.MAX_K}) {
                LogitSummary[] expected = cpu.summarize(cpuLogits, k);
                LogitSummary[] got = b.summarize(dLogits, k);
                assertEquals(n, got.length);
                for (int r = 0; r < n; r++) {
                    String where = which + " width " + width + " k " + k + " row " + r;
                    assertArrayEquals(expected[r].ids(), got[r].ids(), where + ": ids");
                    assertArrayEquals(expected[r].values(), got[r].values(), where + ": values");
                    assertEquals(expected[r].valid(), got[r].valid(), where + ": valid");
                    if (expected[r].valid()) {
                        assertEquals(expected[r].z(), got[r].z(), 1e-12 * Math.max(1, expected[r].z()), where + ": z");
                        assertEquals(expected[r].weighted(), got[r].weighted(), 1e-12 * Math.max(1, expected[r].z()), where + ": weighted");
                    } else {
                        assertTrue(Double.isNaN(got[r].z()) && Double.isNaN(got[r].weighted()), where + ": sums of an invalid row");
                    }
                    assertEquals(cpu.argmax(cpuLogits)[r], got[r].argmax(), where + ": argmax");
                }
                assertEquals(Math.min(k, width), got[1].ids().length);
                assertArrayEquals(Arrays.copyOf(new int[] {3, 20, width - 1}, Math.min(k, 3)),
                        Arrays.copyOf(got[1].ids(), Math.min(k, 3)), "ties: lowest ids first");
                assertEquals(0, got[4].ids().length, "a row of -Infinity has no top ids");
                assertEquals(Math.min(k, 2), got[5].ids().length, "a row with two finite values has two top ids");
                assertEquals(1, got[7].argmax(), "-0 ties +0: the lower id");
            }
            // The derived figures against a direct computation from the row, in double.
            LogitSummary s = b.summarize(dLogits, 2)[0];
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < width; i++) {
                max = Math.max(max, logits[i]);
            }
            double z = 0, entropy = 0;
            for (int i = 0; i < width; i++) {
                z += Math.exp(logits[i] - max);
            }
            for (int i = 0; i < width; i++) {
                double p = Math.exp(logits[i] - max) / z;
                entropy -= p * Math.log(p);
            }
            assertEquals(entropy, s.entropy(), 1e-12, "entropy");
            assertEquals(1 / z, s.maxProbability(), 1e-15, "top probability");
            assertEquals(max + Math.log(z), s.logSumExp(), 1e-12, "log-sum-exp");
            assertEquals(Math.exp(s.values()[0] - max) / z - Math.exp(s.values()[1] - max) / z, s.margin(), 1e-15, "margin");
            assertThrows(IllegalArgumentException.class, () -> b.summarize(dLogits, 0));
            assertThrows(IllegalArgumentException.class, () -> b.summarize(dLogits, LogitSummary.MAX_K + 1));
            b.free(dLogits);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void rowSelectionsMatchTheCpu(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("selections");
        for (int width : new int[] {9, 2049}) {
            int n = 24;
            float[] logits = new float[n * width];
            for (int r = 0; r < n; r++) {
                double sharp = 1 + rnd.nextDouble() * 4;
                for (int t = 0; t < width; t++) {
                    logits[r * width + t] = (float) (rnd.nextGaussian() * sharp);
                }
            }
            System.arraycopy(logits, 0, logits, 5 * width, width); // rows 0 and 5 tie exactly: the lower first
            Tensor cpuLogits = Tensor.ofFloats(logits.clone(), n, width);
            Tensor dLogits = deviceF32(b, logits, n, width);
            for (RowSelection.Score score : RowSelection.Score.values()) {
                for (int count : new int[] {1, 4, 30}) {
                    RowSelection expected = cpu.selectRows(cpuLogits, score, count, 0);
                    RowSelection got = b.selectRows(dLogits, score, count, 0);
                    assertArrayEquals(expected.rows(), got.rows(), which + " " + score + " count " + count);
                    assertArrayEquals(expected.tokens(), got.tokens(), which + " " + score + " count " + count);
                }
                int every = cpu.selectRows(cpuLogits, score, n, 0).rows().length;
                for (double tau : new double[] {0.05, 0.3, 0.999}) {
                    if (score != RowSelection.Score.TOP_PROBABILITY && tau > 0.5) {
                        continue;
                    }
                    RowSelection expected = cpu.selectRows(cpuLogits, score, 0, tau);
                    RowSelection got = b.selectRows(dLogits, score, 0, tau);
                    assertArrayEquals(expected.rows(), got.rows(), which + " " + score + " threshold " + tau);
                    assertTrue(got.rows().length >= 1 && got.rows().length <= every);
                }
            }
            RowSelection all = b.selectRows(dLogits, RowSelection.Score.TOP_PROBABILITY, n, 0);
            int zero = -1, five = -1;
            for (int i = 0; i < all.rows().length; i++) {
                zero = all.rows()[i] == 0 ? i : zero;
                five = all.rows()[i] == 5 ? i : five;
            }
            assertEquals(zero + 1, five, "rows 0 and 5 tie: 0 first, 5 right after");
            b.writeRows(new float[][] {row(width, Float.NaN)}, dLogits, 7);
            IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                    () -> b.selectRows(dLogits, RowSelection.Score.MARGIN, 2, 0));
            assertEquals("row 7 of the logits has no softmax (it holds NaN or +Infinity, or only -Infinity).", bad.getMessage());
            assertThrows(IllegalArgumentException.class, () -> b.selectRows(dLogits, RowSelection.Score.MARGIN, 0, 0));
            assertThrows(IllegalArgumentException.class, () -> b.selectRows(dLogits, RowSelection.Score.MARGIN, 0, 1.5));
            b.free(dLogits);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void mixLogitsMatchTheCpu(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("mixes");
        for (int width : new int[] {1, 300, 2049}) {
            int n = 6;
            float[] logits = new float[n * width];
            for (int i = 0; i < n * width; i++) {
                logits[i] = (float) (rnd.nextGaussian() * 3);
            }
            logits[0] = Float.NaN; // row 0 (a mask row): a NaN first, which the max ignores, and a -inf
            logits[width / 2] = Float.NEGATIVE_INFINITY;
            for (int t = 3; t < width; t += 7) {
                logits[width + t] = -0.0f; // row 1: -0 (a unit weight makes it +0, as in Java)
            }
            logits[width + width - 1] = Float.POSITIVE_INFINITY; // 0 · inf: NaN in every mix that weighs row 1 by 0
            for (int t = 0; t < width; t++) { // row 2: -0 and +0 tie at the top
                logits[2 * width + t] = -1 - Math.abs(logits[2 * width + t]);
            }
            logits[2 * width + width / 3] = -0.0f;
            logits[2 * width + width - 1] = 0.0f;
            for (int t = 0; t < width; t++) { // row 3: values exactly 2.5 below its max of 1
                logits[3 * width + t] = t % 4 == 1 ? -1.5f : -3 + (float) rnd.nextDouble();
            }
            logits[3 * width + width / 3] = 1;
            for (int t = 0; t < width; t++) { // rows 4 and 5 alike and huge: weights 1 and -1 cancel them
                logits[4 * width + t] = (float) (rnd.nextGaussian() * 1e20);
                logits[5 * width + t] = logits[4 * width + t];
            }
            float[][] rows = toRows(logits, n, width);
            Tensor cpuLogits = Tensor.ofFloats(logits.clone(), n, width);
            Tensor dLogits = deviceF32(b, logits, n, width);
            Tensor cpuOut = cpu.allocate(1, width);
            LogitMix[] mixes = {
                LogitMix.of(1f, 0f), // the identity: row 0 (NaN, -inf and all)
                LogitMix.of(0f, 1f, 0f),
                LogitMix.of(1.5f, -0.5f),
                LogitMix.of(1.5f, -0.5f).withMask(0, 0.1),
                LogitMix.of(1f, -1f, 0.25f, 2f).withMask(1, 1e-3),
                LogitMix.of(1f, 0f).withMask(0, 1), // alpha 1: only row 0's largest
                LogitMix.of(0f, 0f, 1f).withMask(2, 1), // both zeros at the top kept
                LogitMix.of(0.3f, 0.7f, -1f).withMask(1, 0), // alpha 0: no mask
                LogitMix.of(2f, 1f, 0f, 0.5f).withMask(3, Math.exp(-2.5 + 1e-9)), // the values 2.5 below the max masked
                LogitMix.of(2f, 1f, 0f, 0.5f).withMask(3, Math.exp(-2.5 - 1e-9)), // and kept
                LogitMix.of(0.75f, 0f, 0f, 0f, 1f, -1f), // the sum in row order loses row 0 (in any other it keeps it)
                LogitMix.of(-2f),
            };
            for (LogitMix mix : mixes) {
                String where = which + " width " + width + " " + mix;
                float[] expected = mix.apply(rows);
                cpu.mixLogits(cpuLogits, mix, cpuOut);
                assertArrayEquals(expected, cpuRead(cpuOut), where + ": the CPU");
                Tensor out = poisoned(b, 1, width);
                long copied = b.bytesCopiedToHost();
                b.mixLogits(dLogits, mix, out);
                assertEquals(copied, b.bytesCopiedToHost(), where + ": nothing comes back");
                assertArrayEquals(expected, read(b, out), where); // bit for bit: -0 is not +0, a NaN only matches a NaN
                b.free(out);
            }
            Tensor out = b.allocate(1, width);
            assertThrows(IllegalArgumentException.class, () -> b.mixLogits(dLogits, LogitMix.of(1, 1, 1, 1, 1, 1, 1), out),
                    "more weights than rows");
            Tensor wider = b.allocate(1, width + 1);
            assertThrows(IllegalArgumentException.class, () -> b.mixLogits(dLogits, LogitMix.of(1), wider), "a wider output");
            Tensor bf16 = b.allocate(DType.BF16, 1, width);
            assertThrows(IllegalArgumentException.class, () -> b.mixLogits(dLogits, LogitMix.of(1), bf16), "a bf16 output");
            assertThrows(IllegalArgumentException.class, () -> b.mixLogits(cpuLogits, LogitMix.of(1), out), "host rows");
            b.free(out);
            b.free(wider);
            b.free(bf16);
            b.free(dLogits);
            cpu.free(cpuOut);
        }
    }

    private static float[] row(int width, float first) {
        float[] r = new float[width];
        r[0] = first;
        return r;
    }

    // ---------------------------------------------------------------------------------------------------
    // KV cache and attention

    static Stream<Arguments> targetsAndKvTypes() {
        return Stream.of("host", "gpu").flatMap(t -> Stream.of(DType.F32, DType.BF16).map(d -> Arguments.of(t, d)));
    }

    /** Two sequences over shuffled blocks: one of 70 positions, one of 45; the same K and V on both backends. */
    private record Caches(KvStorage cpuKv, KvStorage cudaKv, int[][] tables) {
    }

    private static final int LAYERS = 2, KV_HEADS = 2, HEAD_DIM = 40, HEADS = 6, BLOCK = 8, BLOCKS = 20;

    private static Caches filledCaches(CudaBackend b, DType dtype, SplittableRandom rnd) {
        KvStorage cpuKv = cpu.allocateKv(LAYERS, KV_HEADS, HEAD_DIM, BLOCK, BLOCKS, dtype);
        KvStorage cudaKv = b.allocateKv(LAYERS, KV_HEADS, HEAD_DIM, BLOCK, BLOCKS, dtype);
        int[] blocks = new int[BLOCKS];
        for (int i = 0; i < BLOCKS; i++) {
            blocks[i] = i;
        }
        for (int i = BLOCKS - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = blocks[i];
            blocks[i] = blocks[j];
            blocks[j] = t;
        }
        int[][] tables = {Arrays.copyOfRange(blocks, 0, 9), Arrays.copyOfRange(blocks, 9, 15)};
        int[] lengths = {70, 45};
        int width = KV_HEADS * HEAD_DIM;
        for (int s = 0; s < 2; s++) {
            int len = lengths[s];
            int[] slots = new int[len];
            for (int p = 0; p < len; p++) {
                slots[p] = tables[s][p / BLOCK] * BLOCK + p % BLOCK;
            }
            for (int layer = 0; layer < LAYERS; layer++) {
                float[] k = uniform(rnd, len * width), v = uniform(rnd, len * width);
                cpu.writeKv(cpuKv, layer, Tensor.ofFloats(k, len, width), Tensor.ofFloats(v, len, width), slots);
                Tensor dk = deviceF32(b, k, len, width), dv = deviceF32(b, v, len, width);
                b.writeKv(cudaKv, layer, dk, dv, slots);
                b.free(dk);
                b.free(dv);
            }
        }
        return new Caches(cpuKv, cudaKv, tables);
    }

    private static void compareAttention(CudaBackend b, Caches c, AttentionRows rows, String what, SplittableRandom rnd) {
        int n = rows.rows();
        int width = HEADS * HEAD_DIM;
        float[] q = uniform(rnd, n * width);
        float scale = (float) (1 / Math.sqrt(HEAD_DIM));
        for (int layer = 0; layer < LAYERS; layer++) {
            Tensor cpuOut = Tensor.allocate(ARENA, DType.F32, n, width);
            cpu.attention(Tensor.ofFloats(q, n, width), c.cpuKv(), layer, rows, HEADS, scale, cpuOut);
            Tensor dq = deviceF32(b, q, n, width), dout = poisoned(b, n, width);
            b.attention(dq, c.cudaKv(), layer, rows, HEADS, scale, dout);
            assertClose(cpuRead(cpuOut), read(b, dout), F32_BOUND, what + " layer " + layer);
            b.free(dq);
            b.free(dout);
        }
    }

    @ParameterizedTest
    @MethodSource("targetsAndKvTypes")
    void attentionMatchesTheCpuForEveryShape(String which, DType dtype) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("attention" + dtype);
        Caches c = filledCaches(b, dtype, rnd);
        int[] s0 = c.tables()[0], s1 = c.tables()[1];
        try {
            // Decode: one row per sequence, of different lengths, sharing one launch.
            compareAttention(b, c, new AttentionRows(new int[][] {s0, s1}, new int[] {70, 45}), "decode", rnd);
            // Causal prefill / chain verification: rows 60..69 of sequence 0.
            int[][] tables = new int[10][];
            int[] visible = new int[10];
            for (int i = 0; i < 10; i++) {
                tables[i] = s0;
                visible[i] = 61 + i;
            }
            compareAttention(b, c, new AttentionRows(tables, visible), "causal", rnd);
            // Tree: a root at 60 with children 61 and 62, 63 under 61; each row sees its ancestors and itself.
            int[][] ext = {{60}, {60, 61}, {60, 62}, {60, 61, 63}};
            compareAttention(b, c, new AttentionRows(new int[][] {s0, s0, s0, s0}, new int[] {60, 60, 60, 60}, ext, null), "tree", rnd);
            // Block-sparse segments: rows sharing one extra array, each seeing a different length of it.
            int[] segment = {50, 51, 52, 53};
            compareAttention(b, c, new AttentionRows(new int[][] {s0, s0, s0}, new int[] {40, 40, 40},
                    new int[][] {segment, segment, segment}, new int[] {1, 3, 4}), "segments", rnd);
            // Bidirectional: every row sees the whole sequence.
            compareAttention(b, c, new AttentionRows(new int[][] {s1, s1, s1}, new int[] {45, 45, 45}), "bidirectional", rnd);
            // A row whose table is too short for what it reads is refused before any launch.
            assertThrows(IllegalArgumentException.class, () -> b.attention(b.allocate(1, HEADS * HEAD_DIM), c.cudaKv(), 0,
                    new AttentionRows(new int[][] {s1}, new int[] {49}), HEADS, 1f, b.allocate(1, HEADS * HEAD_DIM)));
        } finally {
            c.cpuKv().close();
            c.cudaKv().close();
        }
    }

    /**
     * Rows past {@link CudaBackend#SPLIT_KEYS} keys are spread over several blocks and merged: they match the
     * CPU, a row's result is the same bits alone and among other rows, and the same when the launch is cut
     * into row ranges to bound the partial results.
     */
    @ParameterizedTest
    @MethodSource("targetsAndKvTypes")
    void longContextsAreSplitAndStayBatchInvariant(String which, DType dtype) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("long" + dtype);
        int blocks = 140, length = 1100; // 5 splits of 256 keys
        KvStorage cpuKv = cpu.allocateKv(1, KV_HEADS, HEAD_DIM, BLOCK, blocks, dtype);
        KvStorage cudaKv = b.allocateKv(1, KV_HEADS, HEAD_DIM, BLOCK, blocks, dtype);
        try {
            int[] table = new int[blocks];
            for (int i = 0; i < blocks; i++) {
                table[i] = blocks - 1 - i;
            }
            int width = KV_HEADS * HEAD_DIM;
            int[] slots = new int[length];
            for (int p = 0; p < length; p++) {
                slots[p] = table[p / BLOCK] * BLOCK + p % BLOCK;
            }
            float[] k = uniform(rnd, length * width), v = uniform(rnd, length * width);
            cpu.writeKv(cpuKv, 0, Tensor.ofFloats(k, length, width), Tensor.ofFloats(v, length, width), slots);
            Tensor dk = deviceF32(b, k, length, width), dv = deviceF32(b, v, length, width);
            b.writeKv(cudaKv, 0, dk, dv, slots);
            b.free(dk);
            b.free(dv);
            int[] visible = {1100, 3, 256, 257, 700, 513};
            int n = visible.length;
            int qWidth = HEADS * HEAD_DIM;
            float[] q = uniform(rnd, n * qWidth);
            float scale = (float) (1 / Math.sqrt(HEAD_DIM));
            int[][] tables = new int[n][];
            Arrays.fill(tables, table);
            AttentionRows rows = new AttentionRows(tables, visible);
            Tensor cpuOut = Tensor.allocate(ARENA, DType.F32, n, qWidth);
            cpu.attention(Tensor.ofFloats(q, n, qWidth), cpuKv, 0, rows, HEADS, scale, cpuOut);
            Tensor dq = deviceF32(b, q, n, qWidth), dout = poisoned(b, n, qWidth);
            b.attention(dq, cudaKv, 0, rows, HEADS, scale, dout);
            float[] together = read(b, dout);
            assertClose(cpuRead(cpuOut), together, F32_BOUND, "split attention");
            for (int r = 0; r < n; r++) {
                Tensor q1 = deviceF32(b, Arrays.copyOfRange(q, r * qWidth, (r + 1) * qWidth), 1, qWidth), o1 = poisoned(b, 1, qWidth);
                b.attention(q1, cudaKv, 0, new AttentionRows(new int[][] {table}, new int[] {visible[r]}), HEADS, scale, o1);
                assertArrayEquals(Arrays.copyOfRange(together, r * qWidth, (r + 1) * qWidth), read(b, o1),
                        "row " + r + " (" + visible[r] + " keys) alone and among " + n + " rows");
                b.free(q1);
                b.free(o1);
            }
            b.setPartialBudget(1); // one row per launch
            Tensor dout2 = poisoned(b, n, qWidth);
            b.attention(dq, cudaKv, 0, rows, HEADS, scale, dout2);
            assertArrayEquals(together, read(b, dout2), "the same rows in one launch per row");
            b.free(dq);
            b.free(dout);
            b.free(dout2);
        } finally {
            b.setPartialBudget(64L << 20);
            cpuKv.close();
            cudaKv.close();
        }
    }

    @ParameterizedTest
    @MethodSource("targetsAndKvTypes")
    void copySlotsMovesEveryLayerAndReadsSourcesFirst(String which, DType dtype) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("copy" + dtype);
        Caches c = filledCaches(b, dtype, rnd);
        try {
            int[] s0 = c.tables()[0];
            // Swap two slots and move a third: sources and destinations overlap.
            int a = s0[0] * BLOCK, z = s0[0] * BLOCK + 1, y = s0[1] * BLOCK + 3;
            int[] from = {a, z, a}, to = {z, a, y};
            c.cpuKv().copySlots(from, to);
            c.cudaKv().copySlots(from, to);
            compareAttention(b, c, new AttentionRows(new int[][] {s0, c.tables()[1]}, new int[] {70, 45}), "after copySlots", rnd);
            assertThrows(IllegalArgumentException.class, () -> c.cudaKv().copySlots(new int[] {BLOCK * BLOCKS}, new int[] {0}));
            assertThrows(IllegalArgumentException.class, () -> b.writeKv(c.cudaKv(), 0, b.allocate(1, KV_HEADS * HEAD_DIM),
                    b.allocate(1, KV_HEADS * HEAD_DIM), new int[] {-1}));
        } finally {
            c.cpuKv().close();
            c.cudaKv().close();
        }
    }

    /** The device's Philox draws are the CPU's {@code CounterRng} draws, bit for bit, for every purpose. */
    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void deviceDrawsAreCounterRngsDraws(String which) {
        CudaBackend b = backend(which);
        SplittableRandom rnd = random("philox");
        int n = 1000;
        long[] streams = new long[n], positions = new long[n];
        for (int i = 0; i < n; i++) {
            streams[i] = rnd.nextLong();
            positions[i] = i < 2 ? (i == 0 ? 0 : (1L << 32) - 1) : rnd.nextLong(1L << 32);
        }
        long seed = rnd.nextLong();
        for (dev.tandem.runtime.rng.RngPurpose purpose : dev.tandem.runtime.rng.RngPurpose.values()) {
            int index = purpose.ordinal() * 1000 + 7;
            double[] got = b.uniforms(seed, streams, positions, purpose, index);
            for (int i = 0; i < n; i++) {
                assertEquals(dev.tandem.runtime.rng.CounterRng.uniform(seed, streams[i], positions[i], purpose, index), got[i],
                        purpose + " draw " + i);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void rooflinesMeasureSomething(String which) {
        CudaBackend b = backend(which);
        var read = b.measureReadBandwidth(1 << 20, 2, Progress.NONE);
        assertTrue(read.best() > 0 && Double.isFinite(read.best()), "read bandwidth " + read.best());
        var peak = b.measureMultiplyAddPeak(1, 5);
        assertTrue(peak.best() > 0 && Double.isFinite(peak.best()), "multiply-add peak " + peak.best());
        assertFalse(b.name().isEmpty());
    }
}
