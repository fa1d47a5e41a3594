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
import java.nio.ByteOrder;

/** {@link Kernels} on the Vector API at the platform's preferred width. */
final class VectorKernels implements Kernels {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    /** SHIFTS[h] moves lane j + h to lane j (mod L): one level of the halving reduction tree. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static final VectorShuffle<Float>[] SHIFTS = new VectorShuffle[L];

    static {
        for (int h = L / 2; h >= 1; h >>= 1) {
            SHIFTS[h] = VectorShuffle.iota(F, h, 1, true);
        }
    }

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

    private static FloatVector load(MemorySegment w, long off, DType wt) {
        if (wt == DType.F32) {
            return FloatVector.fromMemorySegment(F, w, off, LE);
        }
        // bf16 → f32 is exact: the 16 bits become the high half of the float.
        return ((IntVector) ShortVector.fromMemorySegment(S, w, off, LE).convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static float hsum(FloatVector v) {
        for (int h = L / 2; h >= 1; h >>= 1) {
            v = v.add(v.rearrange(SHIFTS[h]));
        }
        return v.lane(0);
    }

    @Override
    public float dot(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k) {
        int ws = wt.byteSize();
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            a0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(load(w, wOff + (long) ws * i, wt), a0);
            a1 = FloatVector.fromMemorySegment(F, x, xOff + 4L * (i + L), LE).fma(load(w, wOff + (long) ws * (i + L), wt), a1);
        }
        if (i <= k - L) {
            a0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(load(w, wOff + (long) ws * i, wt), a0);
            i += L;
        }
        float s = hsum(a0.add(a1));
        return i < k ? ScalarKernels.tail(x, xOff, w, wOff, wt, i, k, s) : s;
    }

    @Override
    public void dot1x4(MemorySegment x, long xOff, MemorySegment w, long wOff, long wStride, DType wt, int k, float[] out) {
        int ws = wt.byteSize();
        long w0 = wOff, w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            long o0 = (long) ws * i, o1 = (long) ws * (i + L);
            FloatVector x0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE);
            FloatVector x1 = FloatVector.fromMemorySegment(F, x, xOff + 4L * (i + L), LE);
            a00 = x0.fma(load(w, w0 + o0, wt), a00);
            a01 = x1.fma(load(w, w0 + o1, wt), a01);
            a10 = x0.fma(load(w, w1 + o0, wt), a10);
            a11 = x1.fma(load(w, w1 + o1, wt), a11);
            a20 = x0.fma(load(w, w2 + o0, wt), a20);
            a21 = x1.fma(load(w, w2 + o1, wt), a21);
            a30 = x0.fma(load(w, w3 + o0, wt), a30);
            a31 = x1.fma(load(w, w3 + o1, wt), a31);
        }
        if (i <= k - L) {
            long o0 = (long) ws * i;
            FloatVector x0 = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE);
            a00 = x0.fma(load(w, w0 + o0, wt), a00);
            a10 = x0.fma(load(w, w1 + o0, wt), a10);
            a20 = x0.fma(load(w, w2 + o0, wt), a20);
            a30 = x0.fma(load(w, w3 + o0, wt), a30);
            i += L;
        }
        out[0] = hsum(a00.add(a01));
        out[1] = hsum(a10.add(a11));
        out[2] = hsum(a20.add(a21));
        out[3] = hsum(a30.add(a31));
        if (i < k) {
            tail1x4(x, xOff, w, wOff, wStride, wt, i, k, out);
        }
    }

    @Override
    public void dot4x1(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, DType wt, int k, float[] out) {
        int ws = wt.byteSize();
        long x0o = xOff, x1o = xOff + xStride, x2o = xOff + 2 * xStride, x3o = xOff + 3 * xStride;
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - 2 * L; i += 2 * L) {
            long b0 = 4L * i, b1 = 4L * (i + L);
            FloatVector w0 = load(w, wOff + (long) ws * i, wt);
            FloatVector w1 = load(w, wOff + (long) ws * (i + L), wt);
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
            FloatVector w0 = load(w, wOff + (long) ws * i, wt);
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
                out[r] = ScalarKernels.tail(x, xOff + r * xStride, w, wOff, wt, i, k, out[r]);
            }
        }
    }

    private static void tail1x4(MemorySegment x, long xOff, MemorySegment w, long wOff, long wStride, DType wt,
                                int from, int k, float[] out) {
        for (int c = 0; c < 4; c++) {
            out[c] = ScalarKernels.tail(x, xOff, w, wOff + c * wStride, wt, from, k, out[c]);
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
            acc[i] = Math.fma(a, v.get(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, vOff + 4L * i), acc[i]);
        }
    }
}
