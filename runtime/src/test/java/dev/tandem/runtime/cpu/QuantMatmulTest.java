package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.quant.QuantBlocks;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link CpuBackend#matmul} with weights in llama.cpp's block formats: each output is, bit for bit, {@code Kernels.dot}
 * of its activation row and the dequantized weight row (K-quants: the weights decoded in registers to the floats
 * {@link QuantBlocks} gives) or the factored dot of {@link #scaledDot} (Q8_0, Q4_0: Σ q·x per block, then times the
 * block scale), within 1e-5 of the double-precision product with the dequantized weights, the same alone or among 1 to 64 rows
 * and on any thread count, and the vector tiles give the scalar kernels' bits.
 */
class QuantMatmulTest {
    private static final long SEED = Long.getLong("tandem.test.seed", 20261209L);
    private static CpuBackend one;
    private static CpuBackend two;
    private static CpuBackend many;

    @BeforeAll
    static void start() {
        System.out.println("QuantMatmulTest seed " + SEED);
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

    private static float[] gaussian(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (Math.sqrt(-2 * Math.log(1 - rnd.nextDouble())) * Math.cos(2 * Math.PI * rnd.nextDouble()));
        }
        return a;
    }

    /** An [m, k] weight of {@code type}, quantized row by row from {@code values}. */
    static Tensor quantized(Arena arena, DType type, float[] values, int m, int k) {
        Tensor t = Tensor.allocate(arena, type, m, k);
        for (int r = 0; r < m; r++) {
            QuantBlocks.quantize(type, values, r * k, k, t.segment(), type.bytesFor((long) r * k));
        }
        return t;
    }

    private static float[] dequantized(Tensor w, int m, int k) {
        float[] out = new float[m * k];
        QuantBlocks.dequantize(w.dtype(), w.segment(), 0, out, 0, m * k);
        return out;
    }

    private static float[] matmul(CpuBackend b, float[] x, int n, int k, Tensor w, int m) {
        float[] out = new float[n * m];
        b.matmul(Tensor.ofFloats(x, n, k), w, Tensor.ofFloats(out, n, m));
        return out;
    }

    /**
     * The reference of Q8_0's and Q4_0's factored dot, written from the block layout alone: lanes of {@code lanes}
     * values; per block and lane j, p = Σ fma(q, x, p) over the block's elements j, j + lanes, ... in order from
     * p = 0 (q the integer quant: the int8 of Q8_0, the nibble − 8 of Q4_0), then acc_j = fma(p, d, acc_j); lanes
     * reduced by the halving tree (lane j += lane j + h, h = lanes/2 .. 1).
     */
    static float scaledDot(float[] x, int xOff, MemorySegment w, long wOff, DType type, int k, int lanes) {
        int size = type == DType.Q8_0 ? 34 : 18;
        float[] acc = new float[lanes];
        for (int b = 0; b < k / 32; b++) {
            long at = wOff + (long) size * b;
            float d = Float.float16ToFloat(w.get(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, at));
            for (int j = 0; j < lanes; j++) {
                float p = 0f;
                for (int e = j; e < 32; e += lanes) {
                    int q;
                    if (type == DType.Q8_0) {
                        q = w.get(java.lang.foreign.ValueLayout.JAVA_BYTE, at + 2 + e);
                    } else {
                        int two = w.get(java.lang.foreign.ValueLayout.JAVA_BYTE, at + 2 + e % 16) & 0xff;
                        q = (e < 16 ? two & 15 : two >> 4) - 8;
                    }
                    p = Math.fma(q, x[xOff + 32 * b + e], p);
                }
                acc[j] = Math.fma(p, d, acc[j]);
            }
        }
        return ScalarKernels.halve(acc);
    }

    /**
     * K-quants: each output is {@code Kernels.dot} of the activation and the dequantized row, bit for bit. Q8_0 and
     * Q4_0: the block scale is factored out of each block's sum ({@link #scaledDot}; docs/decisions.md), so the bits are
     * that reference's, not the dequantized row's dot. Every format within 1e-5 normwise of the double-precision
     * product with the dequantized weights.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void eachOutputIsItsFormatsReferenceDotAndCloseToTheDoubleProduct(DType type) {
        SplittableRandom rnd = new SplittableRandom(SEED);
        Kernels kernels = Kernels.select();
        int per = type.blockElements();
        for (int trial = 0; trial < 6; trial++) {
            int k = per * (1 + rnd.nextInt(type == DType.Q8_0 || type == DType.Q4_0 ? 48 : 6));
            int m = 1 + rnd.nextInt(40);
            int n = 1 + rnd.nextInt(9);
            try (Arena arena = Arena.ofShared()) {
                Tensor w = quantized(arena, type, gaussian(rnd, m * k), m, k);
                float[] wf = dequantized(w, m, k);
                float[] x = gaussian(rnd, n * k);
                float[] out = matmul(many, x, n, k, w, m);
                MemorySegment xs = MemorySegment.ofArray(x), ws = MemorySegment.ofArray(wf);
                double err = 0, norm = 0;
                for (int r = 0; r < n; r++) {
                    for (int c = 0; c < m; c++) {
                        String where = type + " k " + k + " m " + m + " n " + n + ": row " + r + " col " + c;
                        float expected = type == DType.Q8_0 || type == DType.Q4_0
                                ? scaledDot(x, r * k, w.segment(), type.bytesFor((long) c * k), type, k, kernels.lanes())
                                : kernels.dot(xs, 4L * r * k, ws, 4L * c * k, DType.F32, k);
                        assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(out[r * m + c]), where);
                        double ref = 0;
                        for (int i = 0; i < k; i++) {
                            ref += (double) x[r * k + i] * wf[c * k + i];
                        }
                        err += (out[r * m + c] - ref) * (out[r * m + c] - ref);
                        norm += ref * ref;
                    }
                }
                assertTrue(Math.sqrt(err) <= 1e-5 * Math.sqrt(norm), type + " k " + k + ": normwise error " + Math.sqrt(err / norm));
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void aRowIsBitIdenticalAloneOrAmongOneToSixtyFourRowsOnAnyThreads(DType type) {
        SplittableRandom rnd = new SplittableRandom(SEED + 1);
        int per = type.blockElements();
        // k spans several 512-value chunks of the chunked path for the K-quants; m leaves a 4-column and a
        // single-column remainder after the panels of 8.
        int k = per == 32 ? 32 * (1 + rnd.nextInt(40)) : 256 * (3 + rnd.nextInt(3));
        int m = 8 * (1 + rnd.nextInt(5)) + 5 + rnd.nextInt(3);
        int maxRows = 64;
        try (Arena arena = Arena.ofShared()) {
            Tensor w = quantized(arena, type, gaussian(rnd, m * k), m, k);
            float[] x = gaussian(rnd, maxRows * k);
            float[][] alone = new float[maxRows][];
            for (int r = 0; r < maxRows; r++) {
                float[] row = new float[k];
                System.arraycopy(x, r * k, row, 0, k);
                alone[r] = matmul(one, row, 1, k, w, m);
            }
            for (CpuBackend b : new CpuBackend[] {one, two, many}) {
                for (int n = 1; n <= maxRows; n += b == one ? 1 : 1 + rnd.nextInt(4)) {
                    int start = rnd.nextInt(maxRows - n + 1);
                    float[] xs = new float[n * k];
                    System.arraycopy(x, start * k, xs, 0, n * k);
                    float[] out = matmul(b, xs, n, k, w, m);
                    for (int r = 0; r < n; r++) {
                        for (int c = 0; c < m; c++) {
                            assertEquals(Float.floatToRawIntBits(alone[start + r][c]), Float.floatToRawIntBits(out[r * m + c]),
                                    type + ", k " + k + " m " + m + ", " + b.name() + ": row " + (start + r) + " col " + c
                                            + " as row " + r + " of " + n);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void vectorTilesGiveTheScalarKernelsBits(DType type) {
        Kernels vector = Kernels.select();
        Kernels scalar = new ScalarKernels(vector.lanes());
        SplittableRandom rnd = new SplittableRandom(SEED + 2);
        int per = type.blockElements();
        for (int blocks : new int[] {1, 2, 5}) {
            int k = per * blocks * (per == 32 ? 3 : 1);
            try (Arena arena = Arena.ofShared()) {
                Tensor w = quantized(arena, type, gaussian(rnd, 8 * k), 8, k);
                MemorySegment x = MemorySegment.ofArray(gaussian(rnd, 4 * k));
                MemorySegment ws = w.segment();
                long wStride = type.bytesFor(k);
                for (int rows = 1; rows <= 3; rows++) {
                    float[] v = tile8(vector, rows, x, k, ws, wStride, type, new int[] {0, k});
                    float[] c = tile8(vector, rows, x, k, ws, wStride, type, blockChunks(k, per));
                    float[] s = tile8(scalar, rows, x, k, ws, wStride, type, blockChunks(k, per));
                    for (int r = 0; r < rows; r++) {
                        for (int col = 0; col < 8; col++) {
                            String where = type + " k " + k + " " + rows + " x 8, (" + r + ", " + col + ")";
                            float single = scalar.dot(x, 4L * k * r, ws, col * wStride, type, k);
                            assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(vector.dot(x, 4L * k * r, ws,
                                    col * wStride, type, k)), "dot, " + where);
                            assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(v[r * 8 + col]), where);
                            assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(c[r * 8 + col]), "block by block, " + where);
                            assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(s[r * 8 + col]), "scalar, " + where);
                        }
                    }
                }
                for (int rows = 1; rows <= 4; rows++) {
                    float[] v = new float[16], s = new float[16];
                    vector.dotTile(rows, x, 0, 4L * k, ws, 0, wStride, type, k, new float[vector.tileScratch()], v);
                    scalar.dotTile(rows, x, 0, 4L * k, ws, 0, wStride, type, k, new float[scalar.tileScratch()], s);
                    for (int i = 0; i < rows * 4; i++) {
                        assertEquals(Float.floatToRawIntBits(s[i]), Float.floatToRawIntBits(v[i]), type + " dotTile " + rows + " rows, " + i);
                    }
                }
            }
        }
    }

    private static int[] blockChunks(int k, int per) {
        int[] b = new int[k / per + 1];
        for (int i = 1; i < b.length; i++) {
            b[i] = i * per;
        }
        return b;
    }

    private static float[] tile8(Kernels kernels, int rows, MemorySegment x, int k, MemorySegment w, long wStride, DType dt,
                                 int[] bounds) {
        float[] acc = new float[24 * kernels.lanes() + 5];
        float[] out = new float[24];
        for (int i = 0; i + 1 < bounds.length; i++) {
            kernels.accumulateTile8(rows, x, 0, 4L * k, w, 0, wStride, dt, bounds[i], bounds[i + 1], acc, 5);
        }
        kernels.finishTile8(rows, x, 0, 4L * k, w, 0, wStride, dt, k, acc, 5, out);
        return out;
    }

    @Test
    void elementReadsAgreeWithBlockDecoding() {
        SplittableRandom rnd = new SplittableRandom(SEED + 3);
        for (DType type : new DType[] {DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K}) {
            int k = 2 * type.blockElements();
            try (Arena arena = Arena.ofShared()) {
                Tensor w = quantized(arena, type, gaussian(rnd, 3 * k), 3, k);
                float[] all = dequantized(w, 3, k);
                for (int r = 0; r < 3; r++) {
                    for (int i = 0; i < k; i++) {
                        assertEquals(Float.floatToRawIntBits(all[r * k + i]),
                                Float.floatToRawIntBits(QuantBlocks.element(type, w.segment(), type.bytesFor((long) r * k), i)),
                                type + " row " + r + " element " + i);
                        if (type == DType.Q8_0 || type == DType.Q4_0) { // the factored dot's quant times scale is the element
                            long row = type.bytesFor((long) r * k);
                            assertEquals(all[r * k + i], QuantBlocks.quant(type, w.segment(), row, i)
                                    * QuantBlocks.blockScale(type, w.segment(), row, i / 32), 0f, type + " quant · scale " + i);
                        }
                    }
                }
            }
        }
    }

    @Test
    void embedAndGatherRowsReadQuantizedTables() {
        SplittableRandom rnd = new SplittableRandom(SEED + 4);
        for (DType type : new DType[] {DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K}) {
            int d = 2 * type.blockElements(), vocab = 7;
            try (Arena arena = Arena.ofShared()) {
                Tensor table = quantized(arena, type, gaussian(rnd, vocab * d), vocab, d);
                float[] all = dequantized(table, vocab, d);
                int[] ids = {3, 0, 6, 3};
                Tensor out = Tensor.allocate(arena, DType.F32, ids.length, d);
                two.embed(table, ids, out);
                Tensor gathered = Tensor.allocate(arena, type, ids.length, d);
                two.gatherRows(table, ids, gathered);
                float[] got = out.toFloatArray(), again = dequantized(gathered, ids.length, d);
                for (int r = 0; r < ids.length; r++) {
                    for (int i = 0; i < d; i++) {
                        assertEquals(all[ids[r] * d + i], got[r * d + i], type + " embed row " + r);
                        assertEquals(all[ids[r] * d + i], again[r * d + i], type + " gathered row " + r);
                    }
                }
            }
        }
    }

    @Test
    void weightRowsOfPartBlocksAreRefusedInOneSentence() {
        try (Arena arena = Arena.ofShared()) {
            // 4 rows of 48 values: 6 whole Q8_0 blocks in all, but rows that split blocks.
            Tensor w = Tensor.allocate(arena, DType.Q8_0, 4, 48);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> two.matmul(Tensor.ofFloats(new float[48], 1, 48), w, Tensor.ofFloats(new float[4], 1, 4)));
            assertTrue(e.getMessage().startsWith("matmul reads q8_0 weight rows of whole blocks of 32 values"), e.getMessage());
        }
    }

    @Test
    void quantizedActivationsAreRefused() {
        // x is f32 whatever w is (docs/decisions.md: activations are not quantized to int8).
        try (Arena arena = Arena.ofShared()) {
            Tensor w = quantized(arena, DType.Q8_0, new float[32 * 8], 8, 32);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> two.matmul(w, w, Tensor.ofFloats(new float[64], 8, 8)));
            assertTrue(e.getMessage().startsWith("matmul needs f32 activations"), e.getMessage());
        }
    }
}
