package dev.tandem.runtime.cpu;

import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.RopeLayout;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Each CPU op against a plain double-precision reference, and the invariance properties. */
class CpuBackendTest {
    private static final long SEED = Long.getLong("tandem.test.seed", 7L);
    private static CpuBackend one;
    private static CpuBackend two;
    private static CpuBackend many;

    @BeforeAll
    static void start() {
        System.out.println("CpuBackendTest seed " + SEED);
        one = new CpuBackend(1);
        two = new CpuBackend(2);
        many = new CpuBackend(Math.max(3, Runtime.getRuntime().availableProcessors()));
    }

    @AfterAll
    static void stop() {
        one.close();
        two.close();
        many.close();
    }

    private static float[] random(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    private static Tensor weights(Arena arena, DType dt, float[] values, long rows, long cols) {
        Tensor t = Tensor.allocate(arena, dt, rows, cols);
        for (int i = 0; i < values.length; i++) {
            t.setFloat(i, values[i]);
        }
        return t;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // the block formats: QuantMatmulTest
    void matmulMatchesReferenceForEveryWeightType(DType dt) {
        SplittableRandom rnd = new SplittableRandom(SEED);
        int n = 5, k = 70, m = 37;
        try (Arena arena = Arena.ofShared()) {
            float[] x = random(rnd, n * k);
            Tensor w = weights(arena, dt, random(rnd, m * k), m, k);
            Tensor out = Tensor.allocate(arena, DType.F32, n, m);
            many.matmul(Tensor.ofFloats(x, n, k), w, out);
            for (int r = 0; r < n; r++) {
                for (int c = 0; c < m; c++) {
                    double ref = 0, abs = 0;
                    for (int i = 0; i < k; i++) {
                        double p = (double) x[r * k + i] * w.getFloat((long) c * k + i);
                        ref += p;
                        abs += Math.abs(p);
                    }
                    assertEquals(ref, out.getFloat((long) r * m + c), 1e-6 * abs, "seed " + SEED + " row " + r + " col " + c);
                }
            }
        }
    }

    @Test
    void activationsTheMachineCannotHoldAreOneSentence() {
        long before = one.allocatedBytes();
        // 2^44 floats = 64 TiB: more than any machine this runs on has, so the allocation itself fails.
        dev.tandem.runtime.TandemException e = assertThrows(dev.tandem.runtime.TandemException.class,
                () -> one.allocate(DType.F32, 1L << 22, 1L << 22));
        assertTrue(e.getMessage().startsWith("could not get 65536.00 GiB of memory for activations (f32 [4194304, 4194304])"),
                e.getMessage());
        assertEquals(before, one.allocatedBytes(), "nothing is left allocated");
    }

    @Test
    void matmulRowIsBitIdenticalWhateverTheBatchAndThreadCount() {
        SplittableRandom rnd = new SplittableRandom(SEED + 1);
        int k = 96, m = 45, n = 11;
        try (Arena arena = Arena.ofShared()) {
            Tensor w = weights(arena, DType.BF16, random(rnd, m * k), m, k);
            float[] x = random(rnd, n * k);
            float[] full = matmul(many, x, n, k, w, m);
            for (CpuBackend b : new CpuBackend[] {one, two, many}) {
                assertArrayEquals(full, matmul(b, x, n, k, w, m), b.name());
                for (int r = 0; r < n; r++) {
                    float[] row = new float[k];
                    System.arraycopy(x, r * k, row, 0, k);
                    float[] alone = matmul(b, row, 1, k, w, m);
                    for (int c = 0; c < m; c++) {
                        assertEquals(Float.floatToRawIntBits(full[r * m + c]), Float.floatToRawIntBits(alone[c]),
                                b.name() + " row " + r + " col " + c);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // the block formats: QuantMatmulTest
    void matmulRowIsBitIdenticalAloneOrAmongOneToSixtyFourRows(DType dt) {
        // k not a multiple of the lanes (a scalar tail) and m not a multiple of 4 (a column remainder);
        // row r of an n-row pass sits at every position of a tile and in the last, partial, tile. k = 1100
        // spans three chunks of the chunked path (and the widened bf16 panels).
        for (int k : new int[] {100, 1100}) {
            rowsAloneOrAmongOthers(dt, k);
        }
    }

    private static void rowsAloneOrAmongOthers(DType dt, int k) {
        SplittableRandom rnd = new SplittableRandom(SEED + 2);
        int m = 45, maxRows = 64;
        try (Arena arena = Arena.ofShared()) {
            Tensor w = weights(arena, dt, random(rnd, m * k), m, k);
            float[] x = random(rnd, maxRows * k);
            float[][] alone = new float[maxRows][];
            for (int r = 0; r < maxRows; r++) {
                float[] row = new float[k];
                System.arraycopy(x, r * k, row, 0, k);
                alone[r] = matmul(one, row, 1, k, w, m);
            }
            for (CpuBackend b : new CpuBackend[] {one, two, many}) {
                for (int n = 1; n <= maxRows; n++) {
                    // The pass starts at row (n·7) mod 64 of the pool, so a row is seen at many offsets.
                    int start = (n * 7) % (maxRows - n + 1);
                    float[] xs = new float[n * k];
                    System.arraycopy(x, start * k, xs, 0, n * k);
                    float[] out = matmul(b, xs, n, k, w, m);
                    for (int r = 0; r < n; r++) {
                        for (int c = 0; c < m; c++) {
                            assertEquals(Float.floatToRawIntBits(alone[start + r][c]), Float.floatToRawIntBits(out[r * m + c]),
                                    dt + ", k " + k + ", " + b.name() + ": row " + (start + r) + " col " + c + " as row " + r + " of " + n);
                        }
                    }
                }
            }
        }
    }

    @Test
    void matmulOfSeveralWeightsInOneDispatchEqualsEachAlone() {
        SplittableRandom rnd = new SplittableRandom(SEED + 3);
        int k = 72, n = 5;
        int[] ms = {40, 9, 9, 128};
        try (Arena arena = Arena.ofShared()) {
            float[] x = random(rnd, n * k);
            Tensor[] ws = new Tensor[ms.length];
            Tensor[] outs = new Tensor[ms.length];
            for (int i = 0; i < ms.length; i++) {
                ws[i] = weights(arena, i % 2 == 0 ? DType.BF16 : DType.F32, random(rnd, ms[i] * k), ms[i], k);
                outs[i] = Tensor.allocate(arena, DType.F32, n, ms[i]);
            }
            for (CpuBackend b : new CpuBackend[] {one, two, many}) {
                b.matmul(Tensor.ofFloats(x, n, k), ws, outs);
                for (int i = 0; i < ms.length; i++) {
                    assertArrayEquals(matmul(b, x, n, k, ws[i], ms[i]), outs[i].toFloatArray(), b.name() + " weight " + i);
                }
            }
            Tensor wrongWidth = Tensor.allocate(arena, DType.F32, 4, k + 1);
            assertThrows(IllegalArgumentException.class,
                    () -> two.matmul(Tensor.ofFloats(x, n, k), new Tensor[] {ws[0], wrongWidth}, new Tensor[] {outs[0], outs[1]}));
        }
    }

    private static float[] matmul(CpuBackend b, float[] x, int n, int k, Tensor w, int m) {
        float[] out = new float[n * m];
        b.matmul(Tensor.ofFloats(x, n, k), w, Tensor.ofFloats(out, n, m));
        return out;
    }

    @Test
    void rmsnormMatchesReference() {
        SplittableRandom rnd = new SplittableRandom(SEED + 2);
        int n = 3, d = 50;
        float[] x = random(rnd, n * d), w = random(rnd, d), out = new float[n * d];
        many.rmsnorm(Tensor.ofFloats(x, n, d), Tensor.ofFloats(w, d), 1e-5f, Tensor.ofFloats(out, n, d));
        for (int r = 0; r < n; r++) {
            double ss = 0;
            for (int i = 0; i < d; i++) {
                ss += (double) x[r * d + i] * x[r * d + i];
            }
            double inv = 1 / Math.sqrt(ss / d + 1e-5);
            for (int i = 0; i < d; i++) {
                assertEquals(w[i] * x[r * d + i] * inv, out[r * d + i], 1e-6);
            }
        }
    }

    /** Backend.layerNorm's definition in double, sums in index order: the default the kernel must equal to float rounding. */
    private static double[] layerNormReference(float[] x, int n, int d, float[] w, float[] b, float eps) {
        double[] ref = new double[n * d];
        for (int r = 0; r < n; r++) {
            double sum = 0;
            for (int i = 0; i < d; i++) {
                sum += x[r * d + i];
            }
            double mean = sum / d, sq = 0;
            for (int i = 0; i < d; i++) {
                sq += (x[r * d + i] - mean) * (x[r * d + i] - mean);
            }
            double inv = 1 / Math.sqrt(sq / d + eps);
            for (int i = 0; i < d; i++) {
                ref[r * d + i] = (x[r * d + i] - mean) * inv * w[i] + b[i];
            }
        }
        return ref;
    }

    /** Rows as a layer's residual stream has them: a per-row offset (up to ±20) and scale, and a few large features. */
    private static float[] hiddenStates(SplittableRandom rnd, int n, int d) {
        float[] x = new float[n * d];
        for (int r = 0; r < n; r++) {
            double offset = (rnd.nextDouble() - 0.5) * 40 * (r % 2), scale = 0.1 + rnd.nextDouble() * 3;
            for (int i = 0; i < d; i++) {
                x[r * d + i] = (float) (offset + scale * rnd.nextGaussian() * (i % 97 == 5 ? 30 : 1));
            }
        }
        return x;
    }

    /** ‖got − ref‖ / ‖ref‖ ≤ bound for each row of width d. */
    private static void assertRowsClose(double[] ref, float[] got, int d, double bound, String what) {
        for (int r = 0; r * d < ref.length; r++) {
            double err = 0, norm = 0;
            for (int i = r * d; i < (r + 1) * d; i++) {
                err += (got[i] - ref[i]) * (got[i] - ref[i]);
                norm += ref[i] * ref[i];
            }
            assertTrue(Math.sqrt(err) <= bound * Math.sqrt(norm), what + " row " + r + ": normwise error " + Math.sqrt(err / norm));
        }
    }

    @Test
    void layerNormMatchesTheDoubleReferenceForEveryWeightType() {
        SplittableRandom rnd = new SplittableRandom(SEED + 8);
        try (Arena arena = Arena.ofShared()) {
            for (int d : new int[] {1, 7, 384, 1536, 4096}) {
                int n = 1 + rnd.nextInt(65);
                float eps = d == 7 ? 1e-5f : 1e-12f;
                float[] x = hiddenStates(rnd, n, d);
                for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) { // norms stay unquantized in GGUF files
                    Tensor w = weights(arena, dt, random(rnd, d), 1, d), b = weights(arena, dt, random(rnd, d), 1, d);
                    float[] wf = w.toFloatArray(), bf = b.toFloatArray();
                    double[] ref = layerNormReference(x, n, d, wf, bf, eps);
                    float[] out = new float[n * d];
                    many.layerNorm(Tensor.ofFloats(x, n, d), w.reshape(d), b.reshape(d), eps, Tensor.ofFloats(out, n, d));
                    String what = "seed " + SEED + " d " + d + " " + dt + ", " + n + " rows";
                    assertRowsClose(ref, out, d, 1e-5, what);
                    for (int i = 0; i < n * d; i++) {
                        // Each element within 1e-5 of the size of its terms, which may cancel: c·inv·w, b, and w (one
                        // standard deviation, the scale of an element near the mean, whose c is small but not exact).
                        double terms = Math.abs(ref[i] - bf[i % d]) + Math.abs(bf[i % d]) + Math.abs(wf[i % d]);
                        if (!(Math.abs(out[i] - ref[i]) <= 1e-5 * terms)) {
                            throw new AssertionError(what + " element " + i + ": " + out[i] + ", expected " + ref[i]);
                        }
                    }
                }
            }
            // A row of one element, or of equal elements, has no variance: out = bias (x − mean is exactly 0).
            float[] out = new float[2];
            one.layerNorm(Tensor.ofFloats(new float[] {3f, 3f}, 1, 2), Tensor.ofFloats(new float[] {2f, 2f}, 2),
                    Tensor.ofFloats(new float[] {0.5f, -1f}, 2), 1e-12f, Tensor.ofFloats(out, 1, 2));
            assertArrayEquals(new float[] {0.5f, -1f}, out);
            assertThrows(IllegalArgumentException.class, () -> one.layerNorm(Tensor.ofFloats(new float[6], 2, 3),
                    Tensor.ofFloats(new float[3], 3), Tensor.ofFloats(new float[2], 2), 1e-5f, Tensor.ofFloats(new float[6], 2, 3)));
        }
    }

    @Test
    void geluMatchesTheExactFormWithinItsErfBound() {
        SplittableRandom rnd = new SplittableRandom(SEED + 9);
        for (int d : new int[] {1, 7, 384, 1536}) {
            int n = 1 + rnd.nextInt(65);
            float[] x = new float[n * d];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (i % 3 == 0 ? rnd.nextGaussian() * 3 : rnd.nextDouble() * 20 - 10);
            }
            float[] out = new float[n * d];
            many.gelu(Tensor.ofFloats(x, n, d), Tensor.ofFloats(out, n, d));
            double[] ref = new double[n * d];
            for (int i = 0; i < x.length; i++) {
                ref[i] = 0.5 * x[i] * (1 + dev.tandem.runtime.Erf.erf(x[i] / Math.sqrt(2)));
                // erf within 1e-7 gives |x|/2 · 1e-7, and the roundings: FloatErfTest's bound.
                if (!(Math.abs(out[i] - ref[i]) <= 1e-7 * (Math.abs(x[i]) + Math.abs(ref[i])))) {
                    throw new AssertionError("seed " + SEED + " gelu(" + x[i] + ") = " + out[i] + ", exactly " + ref[i]);
                }
            }
            // Normwise over the whole pass, not per row: for x ≪ 0, 1 + erf cancels, so a row of only such elements
            // (d = 1 often) is off by far more than 1e-5 relatively, though by |x|·1e-7 at most.
            assertRowsClose(ref, out, n * d, 1e-5, "seed " + SEED + " gelu d " + d);
        }
    }

    @Test
    void layerNormAndGeluRowsAreBitIdenticalAloneOrAmongOneToSixtyFiveRowsOnAnyThreads() {
        SplittableRandom rnd = new SplittableRandom(SEED + 10);
        int maxRows = 65;
        for (int d : new int[] {384, 1536, 7}) {
            float[] x = hiddenStates(rnd, maxRows, d), w = random(rnd, d), b = random(rnd, d);
            float[][] normAlone = new float[maxRows][], geluAlone = new float[maxRows][];
            for (int r = 0; r < maxRows; r++) {
                float[] row = java.util.Arrays.copyOfRange(x, r * d, (r + 1) * d);
                normAlone[r] = new float[d];
                one.layerNorm(Tensor.ofFloats(row, 1, d), Tensor.ofFloats(w, d), Tensor.ofFloats(b, d), 1e-12f, Tensor.ofFloats(normAlone[r], 1, d));
                geluAlone[r] = new float[d];
                one.gelu(Tensor.ofFloats(row, 1, d), Tensor.ofFloats(geluAlone[r], 1, d));
            }
            for (CpuBackend be : new CpuBackend[] {one, two, many}) {
                for (int n = 1; n <= maxRows; n++) {
                    int start = (n * 7) % (maxRows - n + 1);
                    float[] xs = java.util.Arrays.copyOfRange(x, start * d, (start + n) * d);
                    float[] norm = new float[n * d], gelu = new float[n * d];
                    be.layerNorm(Tensor.ofFloats(xs, n, d), Tensor.ofFloats(w, d), Tensor.ofFloats(b, d), 1e-12f, Tensor.ofFloats(norm, n, d));
                    be.gelu(Tensor.ofFloats(xs, n, d), Tensor.ofFloats(gelu, n, d));
                    // In place: out aliases x.
                    float[] inPlace = xs.clone();
                    Tensor t = Tensor.ofFloats(inPlace, n, d);
                    be.layerNorm(t, Tensor.ofFloats(w, d), Tensor.ofFloats(b, d), 1e-12f, t);
                    assertArrayEquals(norm, inPlace, "layerNorm in place, d " + d + ", " + be.name());
                    inPlace = xs.clone();
                    t = Tensor.ofFloats(inPlace, n, d);
                    be.gelu(t, t);
                    assertArrayEquals(gelu, inPlace, "gelu in place, d " + d + ", " + be.name());
                    for (int r = 0; r < n; r++) {
                        int row = r, rows = n, width = d;
                        // assertArrayEquals on floats compares bits (NaN aside; there is none here).
                        assertArrayEquals(normAlone[start + r], java.util.Arrays.copyOfRange(norm, r * d, (r + 1) * d),
                                () -> "layerNorm, d " + width + ", " + be.name() + ": row " + (start + row) + " as row " + row + " of " + rows);
                        assertArrayEquals(geluAlone[start + r], java.util.Arrays.copyOfRange(gelu, r * d, (r + 1) * d),
                                () -> "gelu, d " + width + ", " + be.name() + ": row " + (start + row) + " as row " + row + " of " + rows);
                    }
                }
            }
        }
    }

    @Test
    void ropeRotatesPairsByPositionTimesFrequency() {
        int heads = 2, hd = 8, half = hd / 2;
        float[] inv = {1f, 0.1f, 0.01f, 0.001f};
        int[] pos = {0, 3, 17};
        SplittableRandom rnd = new SplittableRandom(SEED + 3);
        for (RopeLayout layout : RopeLayout.values()) {
            float[] x = random(rnd, pos.length * heads * hd);
            float[] y = x.clone();
            many.rope(Tensor.ofFloats(y, pos.length, heads * hd), heads, hd, pos, inv, layout);
            for (int r = 0; r < pos.length; r++) {
                for (int h = 0; h < heads; h++) {
                    int base = (r * heads + h) * hd;
                    for (int i = 0; i < half; i++) {
                        int a = layout == RopeLayout.ROTATE_HALF ? base + i : base + 2 * i;
                        int b = layout == RopeLayout.ROTATE_HALF ? base + i + half : base + 2 * i + 1;
                        double ang = pos[r] * (double) inv[i];
                        assertEquals(x[a] * Math.cos(ang) - x[b] * Math.sin(ang), y[a], 1e-5, layout + " r" + r);
                        assertEquals(x[b] * Math.cos(ang) + x[a] * Math.sin(ang), y[b], 1e-5, layout + " r" + r);
                    }
                }
            }
        }
    }

    @Test
    void siluMulSoftmaxAddArgmaxAndEmbedMatchReference() {
        SplittableRandom rnd = new SplittableRandom(SEED + 4);
        float[] g = random(rnd, 40), u = random(rnd, 40), o = new float[40];
        many.siluMul(Tensor.ofFloats(g, 40), Tensor.ofFloats(u, 40), Tensor.ofFloats(o, 40));
        for (int i = 0; i < 40; i++) {
            assertEquals(g[i] / (1 + Math.exp(-g[i])) * u[i], o[i], 1e-6);
        }
        float[] s = {1f, 2f, 3f, -1f, 0f, 0f};
        many.softmax(Tensor.ofFloats(s, 2, 3));
        double z = Math.exp(1) + Math.exp(2) + Math.exp(3);
        assertEquals(Math.exp(3) / z, s[2], 1e-6);
        assertEquals(1.0 / (Math.exp(-1) + 2), s[4], 1e-6);
        float[] sum = new float[3];
        many.add(Tensor.ofFloats(new float[] {1, 2, 3}, 3), Tensor.ofFloats(new float[] {4, 5, 6}, 3), Tensor.ofFloats(sum, 3));
        assertArrayEquals(new float[] {5, 7, 9}, sum);
        assertArrayEquals(new int[] {1, 0}, many.argmax(Tensor.ofFloats(new float[] {0, 5, 5, 9, 1, 9}, 2, 3)));
        float inf = Float.POSITIVE_INFINITY;
        assertArrayEquals(new int[] {-1, -1, -1, 2}, many.argmax(Tensor.ofFloats(new float[] {
                0, Float.NaN, 1, 0, inf, 1, -inf, -inf, -inf, -inf, -inf, -3}, 4, 3)),
                "NaN, +Infinity and a row of -Infinity have no greedy token");
        try (Arena arena = Arena.ofShared()) {
            Tensor table = weights(arena, DType.BF16, new float[] {1, 2, 3, 4, 5, 6}, 3, 2);
            float[] e = new float[4];
            many.embed(table, new int[] {2, 0}, Tensor.ofFloats(e, 2, 2));
            assertArrayEquals(new float[] {5, 6, 1, 2}, e);
            assertThrows(IllegalArgumentException.class, () -> many.embed(table, new int[] {3}, Tensor.ofFloats(new float[2], 1, 2)));
        }
    }

    @Test
    void attentionOverBlockTableMatchesDenseReference() {
        int heads = 4, kvHeads = 2, hd = 16, len = 37, group = heads / kvHeads;
        SplittableRandom rnd = new SplittableRandom(SEED + 5);
        try (KvCache cache = new KvCache(1, kvHeads, hd, 8, 16); KvSequence other = cache.newSequence();
             KvSequence seq = cache.newSequence()) {
            float[] k = random(rnd, len * kvHeads * hd), v = random(rnd, len * kvHeads * hd);
            // Interleave another sequence's blocks so the table is not contiguous.
            for (int i = 0; i < len; i++) {
                other.append(1);
                int[] slot = seq.append(1);
                float[] ki = new float[kvHeads * hd], vi = new float[kvHeads * hd];
                System.arraycopy(k, i * kvHeads * hd, ki, 0, kvHeads * hd);
                System.arraycopy(v, i * kvHeads * hd, vi, 0, kvHeads * hd);
                many.writeKv(cache.storage(), 0, Tensor.ofFloats(ki, 1, kvHeads * hd), Tensor.ofFloats(vi, 1, kvHeads * hd), slot);
            }
            int rowsN = 3;
            int[] visible = {1, 20, len};
            float[] q = random(rnd, rowsN * heads * hd);
            float scale = (float) (1 / Math.sqrt(hd));
            int[][] tables = {seq.blockTable(), seq.blockTable(), seq.blockTable()};
            float[] full = new float[rowsN * heads * hd];
            many.attention(Tensor.ofFloats(q, rowsN, heads * hd), cache.storage(), 0, new AttentionRows(tables, visible), heads, scale,
                    Tensor.ofFloats(full, rowsN, heads * hd));
            for (int r = 0; r < rowsN; r++) {
                for (int h = 0; h < heads; h++) {
                    int kvh = h / group;
                    double[] w = new double[visible[r]];
                    double max = Double.NEGATIVE_INFINITY, z = 0;
                    for (int j = 0; j < visible[r]; j++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) {
                            dot += (double) q[(r * heads + h) * hd + i] * k[(j * kvHeads + kvh) * hd + i];
                        }
                        w[j] = dot * scale;
                        max = Math.max(max, w[j]);
                    }
                    for (int j = 0; j < visible[r]; j++) {
                        w[j] = Math.exp(w[j] - max);
                        z += w[j];
                    }
                    for (int i = 0; i < hd; i++) {
                        double ref = 0;
                        for (int j = 0; j < visible[r]; j++) {
                            ref += w[j] / z * v[(j * kvHeads + kvh) * hd + i];
                        }
                        assertEquals(ref, full[(r * heads + h) * hd + i], 1e-5, "row " + r + " head " + h);
                    }
                }
            }
            // Each row alone, on any thread count, gives the same bits.
            for (CpuBackend b : new CpuBackend[] {one, two, many}) {
                for (int r = 0; r < rowsN; r++) {
                    float[] qr = new float[heads * hd];
                    System.arraycopy(q, r * heads * hd, qr, 0, heads * hd);
                    float[] alone = new float[heads * hd];
                    b.attention(Tensor.ofFloats(qr, 1, heads * hd), cache.storage(), 0,
                            new AttentionRows(new int[][] {seq.blockTable()}, new int[] {visible[r]}), heads, scale,
                            Tensor.ofFloats(alone, 1, heads * hd));
                    for (int i = 0; i < heads * hd; i++) {
                        assertEquals(Float.floatToRawIntBits(full[r * heads * hd + i]), Float.floatToRawIntBits(alone[i]));
                    }
                }
            }
        }
    }

    /** Writes random K/V rows into {@code seq} at its next positions; returns {k, v} as written. */
    private static float[][] appendRandom(CpuBackend b, KvCache cache, KvSequence seq, SplittableRandom rnd, int count) {
        int w = cache.slotWidth();
        float[] k = random(rnd, count * w), v = random(rnd, count * w);
        b.writeKv(cache.storage(), 0, Tensor.ofFloats(k, count, w), Tensor.ofFloats(v, count, w), seq.append(count));
        return new float[][] {k, v};
    }

    @Test
    void extraPositionsMaskEqualsTheSamePositionsStoredAsAContiguousChain() {
        int heads = 4, kvHeads = 2, hd = 16, len = 29;
        SplittableRandom rnd = new SplittableRandom(SEED + 11);
        float scale = (float) (1 / Math.sqrt(hd));
        try (KvCache cache = new KvCache(1, kvHeads, hd, 4, 64); KvSequence seq = cache.newSequence()) {
            int w = cache.slotWidth();
            float[][] kv = appendRandom(many, cache, seq, rnd, len);
            // Three rows: a tree-like row (prefix + ancestors), two rows sharing one segment array.
            int[] tree = {11, 14, 20, 28};
            int[] segment = {21, 22, 23, 24, 25};
            int[] prefix = {10, 0, 0};
            int[][] extra = {tree, segment, segment};
            int[] counts = {tree.length, 2, 5};
            float[] q = random(rnd, 3 * heads * hd);
            float[] got = new float[3 * heads * hd];
            many.attention(Tensor.ofFloats(q, 3, heads * hd), cache.storage(), 0,
                    new AttentionRows(new int[][] {seq.blockTable(), seq.blockTable(), seq.blockTable()}, prefix, extra, counts),
                    heads, scale, Tensor.ofFloats(got, 3, heads * hd));
            for (int r = 0; r < 3; r++) {
                // The visible positions copied, in order, into a fresh sequence read causally.
                try (KvSequence chain = cache.newSequence()) {
                    int count = prefix[r] + counts[r];
                    float[] k = new float[count * w], v = new float[count * w];
                    for (int j = 0; j < count; j++) {
                        int pos = j < prefix[r] ? j : extra[r][j - prefix[r]];
                        System.arraycopy(kv[0], pos * w, k, j * w, w);
                        System.arraycopy(kv[1], pos * w, v, j * w, w);
                    }
                    one.writeKv(cache.storage(), 0, Tensor.ofFloats(k, count, w), Tensor.ofFloats(v, count, w), chain.append(count));
                    float[] qr = new float[heads * hd];
                    System.arraycopy(q, r * heads * hd, qr, 0, heads * hd);
                    float[] expected = new float[heads * hd];
                    one.attention(Tensor.ofFloats(qr, 1, heads * hd), cache.storage(), 0,
                            new AttentionRows(new int[][] {chain.blockTable()}, new int[] {count}), heads, scale,
                            Tensor.ofFloats(expected, 1, heads * hd));
                    for (int i = 0; i < heads * hd; i++) {
                        assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(got[r * heads * hd + i]),
                                "row " + r + " value " + i);
                    }
                }
            }
        }
    }

    @Test
    void bf16CacheStoresRoundedKvAndAttendsOverItLikeTheDenseReference() {
        int heads = 4, kvHeads = 2, hd = 20, len = 23, group = heads / kvHeads;
        SplittableRandom rnd = new SplittableRandom(SEED + 13);
        float scale = (float) (1 / Math.sqrt(hd));
        try (KvCache cache = new KvCache(1, kvHeads, hd, 8, 8, DType.BF16); KvSequence seq = cache.newSequence()) {
            int w = cache.slotWidth();
            float[][] kv = appendRandom(many, cache, seq, rnd, len);
            float[] k = new float[len * w], v = new float[len * w];
            for (int p = 0; p < len; p++) {
                for (int i = 0; i < w; i++) {
                    long at = 2L * ((long) seq.slot(p) * w + i);
                    short ks = ((dev.tandem.runtime.kv.HostKvStorage) cache.storage()).keys(0).get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, at);
                    short vs = ((dev.tandem.runtime.kv.HostKvStorage) cache.storage()).values(0).get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, at);
                    assertEquals(DType.floatToBf16(kv[0][p * w + i]), ks);
                    assertEquals(DType.floatToBf16(kv[1][p * w + i]), vs);
                    k[p * w + i] = DType.bf16ToFloat(ks);
                    v[p * w + i] = DType.bf16ToFloat(vs);
                }
            }
            int[] visible = {1, 9, len};
            float[] q = random(rnd, 3 * heads * hd);
            float[] got = new float[3 * heads * hd];
            many.attention(Tensor.ofFloats(q, 3, heads * hd), cache.storage(), 0,
                    new AttentionRows(new int[][] {seq.blockTable(), seq.blockTable(), seq.blockTable()}, visible),
                    heads, scale, Tensor.ofFloats(got, 3, heads * hd));
            for (int r = 0; r < 3; r++) {
                for (int h = 0; h < heads; h++) {
                    int kvh = h / group;
                    double[] e = new double[visible[r]];
                    double max = Double.NEGATIVE_INFINITY, z = 0;
                    for (int j = 0; j < visible[r]; j++) {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) {
                            dot += (double) q[(r * heads + h) * hd + i] * k[j * w + kvh * hd + i];
                        }
                        e[j] = dot * scale;
                        max = Math.max(max, e[j]);
                    }
                    for (int j = 0; j < visible[r]; j++) {
                        e[j] = Math.exp(e[j] - max);
                        z += e[j];
                    }
                    for (int i = 0; i < hd; i++) {
                        double ref = 0;
                        for (int j = 0; j < visible[r]; j++) {
                            ref += e[j] / z * v[j * w + kvh * hd + i];
                        }
                        assertEquals(ref, got[(r * heads + h) * hd + i], 1e-5, "row " + r + " head " + h);
                    }
                }
                // One row alone on one thread: the same bits.
                float[] qr = new float[heads * hd];
                System.arraycopy(q, r * heads * hd, qr, 0, heads * hd);
                float[] alone = new float[heads * hd];
                one.attention(Tensor.ofFloats(qr, 1, heads * hd), cache.storage(), 0,
                        new AttentionRows(new int[][] {seq.blockTable()}, new int[] {visible[r]}), heads, scale,
                        Tensor.ofFloats(alone, 1, heads * hd));
                for (int i = 0; i < heads * hd; i++) {
                    assertEquals(Float.floatToRawIntBits(got[r * heads * hd + i]), Float.floatToRawIntBits(alone[i]));
                }
            }
        }
    }

    @Test
    void maskDescriptorRejectsUnsortedOrOverlappingExtraPositions() {
        int[][] t = {new int[1]};
        assertThrows(IllegalArgumentException.class, () -> new AttentionRows(t, new int[] {4}, new int[][] {{3}}, null));
        assertThrows(IllegalArgumentException.class, () -> new AttentionRows(t, new int[] {0}, new int[][] {{5, 5}}, null));
        assertThrows(IllegalArgumentException.class, () -> new AttentionRows(t, new int[] {0}, new int[][] {{1, 2}}, new int[] {3}));
        assertThrows(IllegalArgumentException.class, () -> new AttentionRows(t, new int[] {-1}));
        AttentionRows ok = new AttentionRows(t, new int[] {2}, new int[][] {{4, 7, 9}}, new int[] {2});
        assertEquals(4, ok.visibleCount(0));
        assertEquals(7, ok.position(0, 3));
        assertEquals(8, ok.extent(0));
    }

    @Test
    void poolRethrowsTaskFailuresAndRunsEveryTaskOnce() {
        try (CpuThreadPool pool = new CpuThreadPool(3)) {
            int[] hits = new int[1000];
            pool.parallelFor(hits.length, i -> hits[i]++);
            for (int h : hits) {
                assertEquals(1, h);
            }
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> pool.parallelFor(10, i -> {
                        if (i == 7) {
                            throw new IllegalStateException("boom");
                        }
                    }));
            assertEquals("boom", e.getMessage());
            int[] after = new int[5];
            pool.parallelFor(5, i -> after[i] = i + 1);
            assertArrayEquals(new int[] {1, 2, 3, 4, 5}, after);
        }
        assertTrue(one.parallelism() == 1 && two.parallelism() == 2);
    }
}
