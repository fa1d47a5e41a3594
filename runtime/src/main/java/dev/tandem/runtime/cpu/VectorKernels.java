package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** {@link Kernels} on the Vector API at the platform's preferred width. */
final class VectorKernels implements Kernels {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    /** SHIFT_h moves lane j + h to lane j (mod L): one level of the halving reduction tree. */
    private static final VectorShuffle<Float> SHIFT_8 = L >= 16 ? VectorShuffle.iota(F, 8, 1, true) : null;
    private static final VectorShuffle<Float> SHIFT_4 = L >= 8 ? VectorShuffle.iota(F, 4, 1, true) : null;
    private static final VectorShuffle<Float> SHIFT_2 = L >= 4 ? VectorShuffle.iota(F, 2, 1, true) : null;
    private static final VectorShuffle<Float> SHIFT_1 = L >= 2 ? VectorShuffle.iota(F, 1, 1, true) : null;

    static int preferredLanes() {
        return L;
    }

    static Kernels create() {
        return new VectorKernels();
    }

    @Override
    public int lanes() {
        return L;
    }

    private static FloatVector loadF32(MemorySegment w, long off) {
        return FloatVector.fromMemorySegment(F, w, off, LE);
    }

    /** bf16 → f32 is exact: the 16 bits become the high half of the float. */
    private static FloatVector loadBf16(MemorySegment w, long off) {
        return ((IntVector) ShortVector.fromMemorySegment(S, w, off, LE).convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /**
     * The fixed halving tree: lane j + h is added to lane j for h = L/2 … 1. The shuffles are separate
     * constants, not array elements, so C2 sees them as constants and intrinsifies the rearranges.
     */
    private static float hsum(FloatVector v) {
        if (L > 16) {
            for (int h = L / 2; h > 8; h >>= 1) {
                v = v.add(v.rearrange(VectorShuffle.iota(F, h, 1, true)));
            }
        }
        if (L >= 16) {
            v = v.add(v.rearrange(SHIFT_8));
        }
        if (L >= 8) {
            v = v.add(v.rearrange(SHIFT_4));
        }
        if (L >= 4) {
            v = v.add(v.rearrange(SHIFT_2));
        }
        if (L >= 2) {
            v = v.add(v.rearrange(SHIFT_1));
        }
        return v.lane(0);
    }

    @Override
    public float streamSum(MemorySegment seg, long off, long bytes) {
        // Four independent accumulators keep several loads in flight, as a STREAM-style read does.
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        long step = 4L * L * 4;
        long end = off + bytes;
        long p = off;
        for (; p <= end - step; p += step) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, seg, p, LE));
            a1 = a1.add(FloatVector.fromMemorySegment(F, seg, p + 4L * L, LE));
            a2 = a2.add(FloatVector.fromMemorySegment(F, seg, p + 8L * L, LE));
            a3 = a3.add(FloatVector.fromMemorySegment(F, seg, p + 12L * L, LE));
        }
        float s = a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
        for (; p < end; p += 4) {
            s += seg.get(ValueLayout.JAVA_FLOAT_UNALIGNED, p);
        }
        return s;
    }

    // Each kernel has one copy per weight format, chosen once per call: a dtype test inside the loop
    // merges two vector values at a phi, which keeps C2 from intrinsifying the bf16 widening and makes
    // it box every vector (measured: 3× slower decode on a bf16 model, with a GC every few steps).

    @Override
    public float dot(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k) {
        return wt == DType.F32 ? dotF32(x, xOff, w, wOff, k) : dotBf16(x, xOff, w, wOff, k);
    }

    @Override
    public void dot1x4(MemorySegment x, long xOff, MemorySegment w, long wOff, long wStride, DType wt, int k, float[] out) {
        if (wt == DType.F32) {
            dot1x4F32(x, xOff, w, wOff, wStride, k, out);
        } else {
            dot1x4Bf16(x, xOff, w, wOff, wStride, k, out);
        }
    }

    @Override
    public void dot4x1(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, DType wt, int k, float[] out) {
        if (wt == DType.F32) {
            dot4x1F32(x, xOff, xStride, w, wOff, k, out);
        } else {
            dot4x1Bf16(x, xOff, xStride, w, wOff, k, out);
        }
    }

    private static float dotF32(MemorySegment x, long xOff, MemorySegment w, long wOff, int k) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            a0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(loadF32(w, wOff + 4L * i), a0);
            a1 = FloatVector.fromMemorySegment(F, x, xOff + 4L * (i + L), LE).fma(loadF32(w, wOff + 4L * (i + L)), a1);
        }
        if (i <= k - L) {
            a0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(loadF32(w, wOff + 4L * i), a0);
            i += L;
        }
        float s = hsum(a0.add(a1));
        return i < k ? ScalarKernels.tail(x, xOff, w, wOff, DType.F32, i, k, s) : s;
    }

    private static void dot1x4F32(MemorySegment x, long xOff, MemorySegment w, long wOff, long wStride, int k, float[] out) {
        long w0 = wOff, w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            long o0 = 4L * i, o1 = 4L * (i + L);
            FloatVector x0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE);
            FloatVector x1 = FloatVector.fromMemorySegment(F, x, xOff + 4L * (i + L), LE);
            a00 = x0.fma(loadF32(w, w0 + o0), a00);
            a01 = x1.fma(loadF32(w, w0 + o1), a01);
            a10 = x0.fma(loadF32(w, w1 + o0), a10);
            a11 = x1.fma(loadF32(w, w1 + o1), a11);
            a20 = x0.fma(loadF32(w, w2 + o0), a20);
            a21 = x1.fma(loadF32(w, w2 + o1), a21);
            a30 = x0.fma(loadF32(w, w3 + o0), a30);
            a31 = x1.fma(loadF32(w, w3 + o1), a31);
        }
        if (i <= k - L) {
            long o0 = 4L * i;
            FloatVector x0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE);
            a00 = x0.fma(loadF32(w, w0 + o0), a00);
            a10 = x0.fma(loadF32(w, w1 + o0), a10);
            a20 = x0.fma(loadF32(w, w2 + o0), a20);
            a30 = x0.fma(loadF32(w, w3 + o0), a30);
            i += L;
        }
        out[0] = hsum(a00.add(a01));
        out[1] = hsum(a10.add(a11));
        out[2] = hsum(a20.add(a21));
        out[3] = hsum(a30.add(a31));
        if (i < k) {
            for (int c = 0; c < 4; c++) {
                out[c] = ScalarKernels.tail(x, xOff, w, wOff + c * wStride, DType.F32, i, k, out[c]);
            }
        }
    }

    private static void dot4x1F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, int k, float[] out) {
        long x0o = xOff, x1o = xOff + xStride, x2o = xOff + 2 * xStride, x3o = xOff + 3 * xStride;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            long b0 = 4L * i, b1 = 4L * (i + L);
            FloatVector w0 = loadF32(w, wOff + 4L * i);
            FloatVector w1 = loadF32(w, wOff + 4L * (i + L));
            a00 = FloatVector.fromMemorySegment(F, x, x0o + b0, LE).fma(w0, a00);
            a01 = FloatVector.fromMemorySegment(F, x, x0o + b1, LE).fma(w1, a01);
            a10 = FloatVector.fromMemorySegment(F, x, x1o + b0, LE).fma(w0, a10);
            a11 = FloatVector.fromMemorySegment(F, x, x1o + b1, LE).fma(w1, a11);
            a20 = FloatVector.fromMemorySegment(F, x, x2o + b0, LE).fma(w0, a20);
            a21 = FloatVector.fromMemorySegment(F, x, x2o + b1, LE).fma(w1, a21);
            a30 = FloatVector.fromMemorySegment(F, x, x3o + b0, LE).fma(w0, a30);
            a31 = FloatVector.fromMemorySegment(F, x, x3o + b1, LE).fma(w1, a31);
        }
        if (i <= k - L) {
            long b0 = 4L * i;
            FloatVector w0 = loadF32(w, wOff + 4L * i);
            a00 = FloatVector.fromMemorySegment(F, x, x0o + b0, LE).fma(w0, a00);
            a10 = FloatVector.fromMemorySegment(F, x, x1o + b0, LE).fma(w0, a10);
            a20 = FloatVector.fromMemorySegment(F, x, x2o + b0, LE).fma(w0, a20);
            a30 = FloatVector.fromMemorySegment(F, x, x3o + b0, LE).fma(w0, a30);
            i += L;
        }
        out[0] = hsum(a00.add(a01));
        out[1] = hsum(a10.add(a11));
        out[2] = hsum(a20.add(a21));
        out[3] = hsum(a30.add(a31));
        if (i < k) {
            for (int r = 0; r < 4; r++) {
                out[r] = ScalarKernels.tail(x, xOff + r * xStride, w, wOff, DType.F32, i, k, out[r]);
            }
        }
    }

    private static float dotBf16(MemorySegment x, long xOff, MemorySegment w, long wOff, int k) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            a0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(loadBf16(w, wOff + 2L * i), a0);
            a1 = FloatVector.fromMemorySegment(F, x, xOff + 4L * (i + L), LE).fma(loadBf16(w, wOff + 2L * (i + L)), a1);
        }
        if (i <= k - L) {
            a0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(loadBf16(w, wOff + 2L * i), a0);
            i += L;
        }
        float s = hsum(a0.add(a1));
        return i < k ? ScalarKernels.tail(x, xOff, w, wOff, DType.BF16, i, k, s) : s;
    }

    private static void dot1x4Bf16(MemorySegment x, long xOff, MemorySegment w, long wOff, long wStride, int k, float[] out) {
        long w0 = wOff, w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            long o0 = 2L * i, o1 = 2L * (i + L);
            FloatVector x0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE);
            FloatVector x1 = FloatVector.fromMemorySegment(F, x, xOff + 4L * (i + L), LE);
            a00 = x0.fma(loadBf16(w, w0 + o0), a00);
            a01 = x1.fma(loadBf16(w, w0 + o1), a01);
            a10 = x0.fma(loadBf16(w, w1 + o0), a10);
            a11 = x1.fma(loadBf16(w, w1 + o1), a11);
            a20 = x0.fma(loadBf16(w, w2 + o0), a20);
            a21 = x1.fma(loadBf16(w, w2 + o1), a21);
            a30 = x0.fma(loadBf16(w, w3 + o0), a30);
            a31 = x1.fma(loadBf16(w, w3 + o1), a31);
        }
        if (i <= k - L) {
            long o0 = 2L * i;
            FloatVector x0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE);
            a00 = x0.fma(loadBf16(w, w0 + o0), a00);
            a10 = x0.fma(loadBf16(w, w1 + o0), a10);
            a20 = x0.fma(loadBf16(w, w2 + o0), a20);
            a30 = x0.fma(loadBf16(w, w3 + o0), a30);
            i += L;
        }
        out[0] = hsum(a00.add(a01));
        out[1] = hsum(a10.add(a11));
        out[2] = hsum(a20.add(a21));
        out[3] = hsum(a30.add(a31));
        if (i < k) {
            for (int c = 0; c < 4; c++) {
                out[c] = ScalarKernels.tail(x, xOff, w, wOff + c * wStride, DType.BF16, i, k, out[c]);
            }
        }
    }

    private static void dot4x1Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, int k, float[] out) {
        long x0o = xOff, x1o = xOff + xStride, x2o = xOff + 2 * xStride, x3o = xOff + 3 * xStride;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            long b0 = 4L * i, b1 = 4L * (i + L);
            FloatVector w0 = loadBf16(w, wOff + 2L * i);
            FloatVector w1 = loadBf16(w, wOff + 2L * (i + L));
            a00 = FloatVector.fromMemorySegment(F, x, x0o + b0, LE).fma(w0, a00);
            a01 = FloatVector.fromMemorySegment(F, x, x0o + b1, LE).fma(w1, a01);
            a10 = FloatVector.fromMemorySegment(F, x, x1o + b0, LE).fma(w0, a10);
            a11 = FloatVector.fromMemorySegment(F, x, x1o + b1, LE).fma(w1, a11);
            a20 = FloatVector.fromMemorySegment(F, x, x2o + b0, LE).fma(w0, a20);
            a21 = FloatVector.fromMemorySegment(F, x, x2o + b1, LE).fma(w1, a21);
            a30 = FloatVector.fromMemorySegment(F, x, x3o + b0, LE).fma(w0, a30);
            a31 = FloatVector.fromMemorySegment(F, x, x3o + b1, LE).fma(w1, a31);
        }
        if (i <= k - L) {
            long b0 = 4L * i;
            FloatVector w0 = loadBf16(w, wOff + 2L * i);
            a00 = FloatVector.fromMemorySegment(F, x, x0o + b0, LE).fma(w0, a00);
            a10 = FloatVector.fromMemorySegment(F, x, x1o + b0, LE).fma(w0, a10);
            a20 = FloatVector.fromMemorySegment(F, x, x2o + b0, LE).fma(w0, a20);
            a30 = FloatVector.fromMemorySegment(F, x, x3o + b0, LE).fma(w0, a30);
            i += L;
        }
        out[0] = hsum(a00.add(a01));
        out[1] = hsum(a10.add(a11));
        out[2] = hsum(a20.add(a21));
        out[3] = hsum(a30.add(a31));
        if (i < k) {
            for (int r = 0; r < 4; r++) {
                out[r] = ScalarKernels.tail(x, xOff + r * xStride, w, wOff, DType.BF16, i, k, out[r]);
            }
        }
    }

    @Override
    public void axpy(float a, MemorySegment v, long vOff, float[] acc, int d) {
        FloatVector av = FloatVector.broadcast(F, a);
        int i = 0;
        for (; i <= d - L; i += L) {
            av.fma(FloatVector.fromMemorySegment(F, v, vOff + 4L * i, LE), FloatVector.fromArray(F, acc, i)).intoArray(acc, i);
        }
        for (; i < d; i++) {
            acc[i] = Math.fma(a, v.get(ValueLayout.JAVA_FLOAT_UNALIGNED, vOff + 4L * i), acc[i]);
        }
    }

    @Override
    public void axpy(float a, MemorySegment v, long vOff, DType vt, float[] acc, int d) {
        if (vt == DType.F32) {
            axpy(a, v, vOff, acc, d);
        } else if (vt == DType.BF16) {
            axpyBf16(a, v, vOff, acc, d);
        } else {
            throw new IllegalArgumentException("axpy reads f32 or bf16 values, not " + vt);
        }
    }

    private static void axpyBf16(float a, MemorySegment v, long vOff, float[] acc, int d) {
        FloatVector av = FloatVector.broadcast(F, a);
        int i = 0;
        for (; i <= d - L; i += L) {
            av.fma(loadBf16(v, vOff + 2L * i), FloatVector.fromArray(F, acc, i)).intoArray(acc, i);
        }
        for (; i < d; i++) {
            acc[i] = Math.fma(a, DType.bf16ToFloat(v.get(ValueLayout.JAVA_SHORT_UNALIGNED, vOff + 2L * i)), acc[i]);
        }
    }
}
