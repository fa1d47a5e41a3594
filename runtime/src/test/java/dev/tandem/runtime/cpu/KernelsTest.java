package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The vector kernels against their plain-Java twin and against a double-precision reference. */
class KernelsTest {
    private static final long SEED = Long.getLong("tandem.test.seed", 20261126L);

    private static MemorySegment randomF32(Arena arena, SplittableRandom rnd, int n) {
        MemorySegment s = arena.allocate(4L * n, 64);
        for (int i = 0; i < n; i++) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rnd.nextDouble() * 2 - 1));
        }
        return s;
    }

    private static MemorySegment toBf16(Arena arena, MemorySegment f32, int n) {
        MemorySegment s = arena.allocate(2L * n, 64);
        for (int i = 0; i < n; i++) {
            s.setAtIndex(ValueLayout.JAVA_SHORT, i, DType.floatToBf16(f32.getAtIndex(ValueLayout.JAVA_FLOAT, i)));
        }
        return s;
    }

    @Test
    void vectorAndScalarKernelsAgreeBitForBit() {
        Kernels vector = Kernels.select();
        Kernels scalar = new ScalarKernels(vector.lanes());
        SplittableRandom rnd = new SplittableRandom(SEED);
        try (Arena arena = Arena.ofConfined()) {
            for (int k : new int[] {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 256, 688, 1000}) {
                MemorySegment x = randomF32(arena, rnd, 4 * k);
                MemorySegment w = randomF32(arena, rnd, 8 * k);
                MemorySegment wb = toBf16(arena, w, 8 * k);
                float[] vLanes = new float[vector.tileScratch()], sLanes = new float[scalar.tileScratch()];
                for (DType dt : new DType[] {DType.F32, DType.BF16}) {
                    MemorySegment ws = dt == DType.F32 ? w : wb;
                    long wStride = (long) dt.byteSize() * k;
                    for (int rows = 1; rows <= 3; rows++) {
                        // Accumulated in one call, and in chunks of one and three vector widths: same bits.
                        int full = k - k % vector.lanes();
                        float[] v8 = tile8(vector, rows, x, k, ws, wStride, dt, new int[] {0, full});
                        float[] c8 = tile8(vector, rows, x, k, ws, wStride, dt, chunks(full, vector.lanes()));
                        float[] c3 = tile8(vector, rows, x, k, ws, wStride, dt, chunks(full, 3 * vector.lanes()));
                        float[] s8 = tile8(scalar, rows, x, k, ws, wStride, dt, chunks(full, 3 * vector.lanes()));
                        for (int r = 0; r < rows; r++) {
                            for (int c = 0; c < 8; c++) {
                                float single = scalar.dot(x, 4L * k * r, ws, c * wStride, dt, k);
                                String where = "k " + k + " " + dt + " " + rows + " x 8 tile, (" + r + ", " + c + ")";
                                assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(v8[r * 8 + c]), where);
                                assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(c8[r * 8 + c]), "chunked " + where);
                                assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(c3[r * 8 + c]), "chunked " + where);
                                assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(s8[r * 8 + c]), "scalar " + where);
                            }
                        }
                    }
                    for (int rows = 1; rows <= 4; rows++) {
                        float[] v = new float[16], s = new float[16];
                        vector.dotTile(rows, x, 0, 4L * k, ws, 0, wStride, dt, k, vLanes, v);
                        scalar.dotTile(rows, x, 0, 4L * k, ws, 0, wStride, dt, k, sLanes, s);
                        for (int r = 0; r < rows; r++) {
                            for (int c = 0; c < 4; c++) {
                                String where = "seed " + SEED + " k " + k + " " + dt + " tile of " + rows + " rows, (" + r + ", " + c + ")";
                                float single = vector.dot(x, 4L * k * r, ws, c * wStride, dt, k);
                                float scalarSingle = scalar.dot(x, 4L * k * r, ws, c * wStride, dt, k);
                                assertEquals(Float.floatToRawIntBits(s[r * 4 + c]), Float.floatToRawIntBits(v[r * 4 + c]), where);
                                assertEquals(Float.floatToRawIntBits(single), Float.floatToRawIntBits(v[r * 4 + c]), "tile vs single, " + where);
                                assertEquals(Float.floatToRawIntBits(scalarSingle), Float.floatToRawIntBits(single), "scalar vs vector single, " + where);
                            }
                        }
                    }
                }
            }
        }
    }

    /** Boundaries 0 = b0 < b1 < ... = full, every chunk a multiple of {@code step}. */
    private static int[] chunks(int full, int step) {
        int count = (full + step - 1) / step;
        int[] b = new int[count + 1];
        for (int i = 1; i <= count; i++) {
            b[i] = Math.min(full, i * step);
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
    void dotFollowsTheCanonicalOrderOneAccumulatorHalvingTreeThenTail() {
        // An independent statement of the canonical order, written out per lane, for the vector kernels.
        Kernels vector = Kernels.select();
        int lanes = vector.lanes();
        SplittableRandom rnd = new SplittableRandom(SEED + 4);
        try (Arena arena = Arena.ofConfined()) {
            for (int k : new int[] {1, lanes - 1, lanes, lanes + 1, 3 * lanes + 5, 2048, 5632 + 3}) {
                if (k < 1) {
                    continue;
                }
                MemorySegment x = randomF32(arena, rnd, k);
                MemorySegment w = randomF32(arena, rnd, k);
                float[] acc = new float[lanes];
                int full = k - k % lanes;
                for (int i = 0; i < full; i++) {
                    acc[i % lanes] = Math.fma(x.getAtIndex(ValueLayout.JAVA_FLOAT, i), w.getAtIndex(ValueLayout.JAVA_FLOAT, i), acc[i % lanes]);
                }
                for (int h = lanes / 2; h >= 1; h >>= 1) {
                    for (int j = 0; j < h; j++) {
                        acc[j] += acc[j + h];
                    }
                }
                float expected = acc[0];
                for (int i = full; i < k; i++) {
                    expected = Math.fma(x.getAtIndex(ValueLayout.JAVA_FLOAT, i), w.getAtIndex(ValueLayout.JAVA_FLOAT, i), expected);
                }
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(vector.dot(x, 0, w, 0, DType.F32, k)), "k " + k);
            }
        }
    }

    @Test
    void dotMatchesDoublePrecisionReference() {
        Kernels kernels = Kernels.select();
        SplittableRandom rnd = new SplittableRandom(SEED + 1);
        try (Arena arena = Arena.ofConfined()) {
            for (int k : new int[] {5, 64, 257, 4096}) {
                MemorySegment x = randomF32(arena, rnd, k);
                MemorySegment w = randomF32(arena, rnd, k);
                double ref = 0, absSum = 0;
                for (int i = 0; i < k; i++) {
                    double p = (double) x.getAtIndex(ValueLayout.JAVA_FLOAT, i) * w.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                    ref += p;
                    absSum += Math.abs(p);
                }
                float got = kernels.dot(x, 0, w, 0, DType.F32, k);
                // float32 accumulation: error bounded by a small multiple of eps · Σ|xᵢwᵢ|.
                assertTrue(Math.abs(got - ref) <= 1e-6 * absSum + 1e-30, "k " + k + ": " + got + " vs " + ref);
            }
        }
    }

    @Test
    void axpyMatchesScalar() {
        Kernels vector = Kernels.select();
        Kernels scalar = new ScalarKernels(vector.lanes());
        SplittableRandom rnd = new SplittableRandom(SEED + 2);
        try (Arena arena = Arena.ofConfined()) {
            for (int d : new int[] {1, 16, 32, 37, 128}) {
                MemorySegment v = randomF32(arena, rnd, d);
                float[] a = new float[d], b = new float[d], init = new float[d];
                for (int i = 0; i < d; i++) {
                    a[i] = b[i] = init[i] = (float) rnd.nextDouble();
                }
                vector.axpy(0.37f, v, 0, a, d);
                scalar.axpy(0.37f, v, 0, b, d);
                for (int i = 0; i < d; i++) {
                    assertEquals(Float.floatToRawIntBits(b[i]), Float.floatToRawIntBits(a[i]));
                    float expected = Math.fma(0.37f, v.getAtIndex(ValueLayout.JAVA_FLOAT, i), init[i]);
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(a[i]));
                }
            }
        }
    }

    @Test
    void bf16AxpyMatchesScalarTwinAndFmaOfTheWidenedValue() {
        Kernels vector = Kernels.select();
        Kernels scalar = new ScalarKernels(vector.lanes());
        SplittableRandom rnd = new SplittableRandom(SEED + 3);
        try (Arena arena = Arena.ofConfined()) {
            for (int d : new int[] {1, 7, 16, 32, 37, 128}) {
                // At a nonzero byte offset, as a KV slot of a later head is read.
                MemorySegment f = randomF32(arena, rnd, d + 3);
                MemorySegment v = toBf16(arena, f, d + 3);
                float[] a = new float[d], b = new float[d], c = new float[d], init = new float[d];
                for (int i = 0; i < d; i++) {
                    a[i] = b[i] = c[i] = init[i] = (float) rnd.nextDouble();
                }
                vector.axpy(-0.61f, v, 6, DType.BF16, a, d);
                scalar.axpy(-0.61f, v, 6, DType.BF16, b, d);
                for (int i = 0; i < d; i++) {
                    float widened = DType.bf16ToFloat(v.get(ValueLayout.JAVA_SHORT_UNALIGNED, 6 + 2L * i));
                    float expected = Math.fma(-0.61f, widened, init[i]);
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(a[i]), "vector d=" + d + " i=" + i);
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(b[i]), "scalar d=" + d + " i=" + i);
                }
                // The dtype-taking overload on f32 is the plain f32 axpy.
                float[] p = init.clone();
                vector.axpy(0.37f, f, 4, DType.F32, c, d);
                vector.axpy(0.37f, f, 4, p, d);
                for (int i = 0; i < d; i++) {
                    assertEquals(Float.floatToRawIntBits(p[i]), Float.floatToRawIntBits(c[i]));
                }
            }
        }
    }

    @Test
    void layerNormVectorAndScalarAgreeBitForBitInPlaceOrNot() {
        Kernels vector = Kernels.select();
        Kernels scalar = new ScalarKernels(vector.lanes());
        SplittableRandom rnd = new SplittableRandom(SEED + 5);
        try (Arena arena = Arena.ofConfined()) {
            for (int d : new int[] {1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 384, 1000, 1536}) {
                // Rows off their mean by 0 or 5, at a byte offset of 12, as row 3 of a pass would sit.
                for (float shift : new float[] {0f, 5f}) {
                    MemorySegment x = randomF32(arena, rnd, d + 3);
                    for (int i = 3; i < d + 3; i++) {
                        x.setAtIndex(ValueLayout.JAVA_FLOAT, i, x.getAtIndex(ValueLayout.JAVA_FLOAT, i) + shift);
                    }
                    MemorySegment w = arena.allocate(4L * d), b = arena.allocate(4L * d);
                    for (int i = 0; i < d; i++) {
                        w.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rnd.nextDouble() * 2));
                        b.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rnd.nextDouble() - 0.5));
                    }
                    MemorySegment vOut = arena.allocate(4L * (d + 3)), sOut = arena.allocate(4L * (d + 3));
                    vector.layerNorm(x, 12, w, b, 1e-12f, vOut, 12, d);
                    scalar.layerNorm(x, 12, w, b, 1e-12f, sOut, 12, d);
                    MemorySegment inPlace = arena.allocate(4L * (d + 3));
                    inPlace.copyFrom(x);
                    vector.layerNorm(inPlace, 12, w, b, 1e-12f, inPlace, 12, d);
                    for (int i = 0; i < d; i++) {
                        String where = "seed " + SEED + " d " + d + " shift " + shift + " element " + i;
                        float v = vOut.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 12 + 4L * i);
                        assertEquals(Float.floatToRawIntBits(sOut.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 12 + 4L * i)),
                                Float.floatToRawIntBits(v), "scalar vs vector, " + where);
                        assertEquals(Float.floatToRawIntBits(v), Float.floatToRawIntBits(inPlace.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 12 + 4L * i)),
                                "in place, " + where);
                    }
                }
            }
        }
    }

    @Test
    void geluVectorAndScalarAgreeBitForBitOnEveryKindOfValue() {
        Kernels vector = Kernels.select();
        Kernels scalar = new ScalarKernels(vector.lanes());
        SplittableRandom rnd = new SplittableRandom(SEED + 6);
        int n = 1 << 16;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = arena.allocate(4L * (n + 1));
            float[] specials = {0f, -0f, 1f, -1f, FloatErf.SPLIT, -FloatErf.SPLIT, Math.nextDown(FloatErf.SPLIT), FloatErf.CUT,
                    -FloatErf.CUT, Math.nextDown(FloatErf.CUT), 1e-40f, -1e-40f, 1e30f, -1e30f, Float.MAX_VALUE, -Float.MAX_VALUE,
                    Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
            for (int i = 0; i <= n; i++) {
                float v = switch (i % 4) {
                    case 0 -> (float) (rnd.nextDouble() * 24 - 12);      // both polynomials and the cut
                    case 1 -> (float) (rnd.nextGaussian() * 2);          // activations as a layer makes them
                    case 2 -> (float) ((rnd.nextDouble() - 0.5) * 0x1p-10);
                    default -> specials[rnd.nextInt(specials.length)];
                };
                x.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
            }
            // At a byte offset of 4 and over a count that leaves a scalar tail.
            MemorySegment vOut = arena.allocate(4L * (n + 1)), sOut = arena.allocate(4L * (n + 1));
            vector.gelu(x, 4, vOut, 4, n - 3);
            scalar.gelu(x, 4, sOut, 4, n - 3);
            MemorySegment inPlace = arena.allocate(4L * (n + 1));
            inPlace.copyFrom(x);
            vector.gelu(inPlace, 4, inPlace, 4, n - 3);
            for (int i = 1; i <= n - 3; i++) {
                float xi = x.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                float v = vOut.getAtIndex(ValueLayout.JAVA_FLOAT, i);
                assertEquals(Float.floatToRawIntBits(FloatErf.gelu(xi)), Float.floatToRawIntBits(v), "gelu(" + xi + "), element " + i);
                assertEquals(Float.floatToRawIntBits(sOut.getAtIndex(ValueLayout.JAVA_FLOAT, i)), Float.floatToRawIntBits(v), "scalar, gelu(" + xi + ")");
                assertEquals(Float.floatToRawIntBits(v), Float.floatToRawIntBits(inPlace.getAtIndex(ValueLayout.JAVA_FLOAT, i)), "in place, gelu(" + xi + ")");
            }
            assertEquals(0f, vOut.getAtIndex(ValueLayout.JAVA_FLOAT, 0), "nothing before the offset is written");
            assertEquals(0f, vOut.getAtIndex(ValueLayout.JAVA_FLOAT, n - 2), "nothing past the count is written");
            // A NaN stays NaN in every lane (its payload is not promised).
            MemorySegment nan = arena.allocate(4L * 4 * vector.lanes());
            for (int i = 0; i < 4 * vector.lanes(); i++) {
                nan.setAtIndex(ValueLayout.JAVA_FLOAT, i, i % 3 == 0 ? Float.NaN : i);
            }
            vector.gelu(nan, 0, nan, 0, 4 * vector.lanes());
            for (int i = 0; i < 4 * vector.lanes(); i++) {
                assertEquals(i % 3 == 0, Float.isNaN(nan.getAtIndex(ValueLayout.JAVA_FLOAT, i)), "element " + i);
            }
        }
    }

    @Test
    void streamSumReadsEveryFloatOfTheRangeAndNothingElse() {
        // Small integers sum exactly in float in any order, so the expected value is exact.
        int n = 4096 + 7;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(4L * (n + 32), 64);
            for (int i = 0; i < n + 32; i++) {
                s.setAtIndex(ValueLayout.JAVA_FLOAT, i, i < 16 || i >= n + 16 ? 1000f : i % 5);
            }
            double expected = 0;
            for (int i = 16; i < n + 16; i++) {
                expected += i % 5;
            }
            for (Kernels k : new Kernels[] {Kernels.select(), new ScalarKernels(Kernels.select().lanes())}) {
                assertEquals(expected, k.streamSum(s, 64, 4L * n), 0.0, k.getClass().getSimpleName());
            }
        }
    }
}
