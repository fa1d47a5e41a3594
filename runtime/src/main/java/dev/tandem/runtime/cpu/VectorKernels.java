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

    // bf16 → f32 is exact: the 16 bits become the high half of the float. Every kernel below widens
    // in place with ((IntVector) ShortVector.fromMemorySegment(...).convertShape(S2I, I, 0))
    // .lanewise(LSHL, 16).reinterpretAsFloats(), written out at each load (see the tiles' comment).

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

    @Override
    public float fmaChains(float seed, long steps) {
        FloatVector a = FloatVector.broadcast(F, 0.999f), b = FloatVector.broadcast(F, 1e-3f);
        FloatVector c0 = FloatVector.broadcast(F, seed + 0);
        FloatVector c1 = FloatVector.broadcast(F, seed + 1);
        FloatVector c2 = FloatVector.broadcast(F, seed + 2);
        FloatVector c3 = FloatVector.broadcast(F, seed + 3);
        FloatVector c4 = FloatVector.broadcast(F, seed + 4);
        FloatVector c5 = FloatVector.broadcast(F, seed + 5);
        FloatVector c6 = FloatVector.broadcast(F, seed + 6);
        FloatVector c7 = FloatVector.broadcast(F, seed + 7);
        FloatVector c8 = FloatVector.broadcast(F, seed + 8);
        FloatVector c9 = FloatVector.broadcast(F, seed + 9);
        FloatVector c10 = FloatVector.broadcast(F, seed + 10);
        FloatVector c11 = FloatVector.broadcast(F, seed + 11);
        for (long s = 0; s < steps; s++) {
            c0 = c0.fma(a, b);
            c1 = c1.fma(a, b);
            c2 = c2.fma(a, b);
            c3 = c3.fma(a, b);
            c4 = c4.fma(a, b);
            c5 = c5.fma(a, b);
            c6 = c6.fma(a, b);
            c7 = c7.fma(a, b);
            c8 = c8.fma(a, b);
            c9 = c9.fma(a, b);
            c10 = c10.fma(a, b);
            c11 = c11.fma(a, b);
        }
        return c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).add(c8).add(c9).add(c10).add(c11).lane(0);
    }

    // Each kernel has one copy per weight format, chosen once per call: a dtype test inside the loop
    // merges two vector values at a phi, which keeps C2 from intrinsifying the bf16 widening and makes
    // it box every vector (measured: 3× slower decode on a bf16 model, with a GC every few steps).

    /** What serves the block formats where {@link QuantTiles} does not (a lane count outside 8..16): same bits. */
    private static final ScalarKernels QUANT_FALLBACK = QuantTiles.SUPPORTED ? null : new ScalarKernels(L);

    @Override
    public float dot(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k) {
        if (wt.isQuantized()) {
            return dotQuant(x, xOff, w, wOff, wt, k);
        }
        return wt == DType.F32 ? dotF32(x, xOff, w, wOff, k) : dotBf16(x, xOff, w, wOff, k);
    }

    private static float dotQuant(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k) {
        if (QUANT_FALLBACK != null) {
            return QUANT_FALLBACK.dot(x, xOff, w, wOff, wt, k);
        }
        float[] lanes = new float[L];
        QuantTiles.accumulate1(x, xOff, w, wOff, wt, k, lanes);
        return hsum(FloatVector.fromArray(F, lanes, 0)); // k is whole blocks, so a multiple of L: no tail
    }

    private static float dotF32(MemorySegment x, long xOff, MemorySegment w, long wOff, int k) {
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - L; i += L) {
            FloatVector wv = FloatVector.fromMemorySegment(F, w, wOff + 4L * i, LE);
            a = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(wv, a);
        }
        float s = hsum(a);
        return i < k ? ScalarKernels.tail(x, xOff, w, wOff, DType.F32, i, k, s) : s;
    }

    private static float dotBf16(MemorySegment x, long xOff, MemorySegment w, long wOff, int k) {
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        for (; i <= k - L; i += L) {
            FloatVector wv = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + 2L * i, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).fma(wv, a);
        }
        float s = hsum(a);
        return i < k ? ScalarKernels.tail(x, xOff, w, wOff, DType.BF16, i, k, s) : s;
    }

    @Override
    public void dotTile(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                        DType wt, int k, float[] lanes, float[] out) {
        if (wt.isQuantized()) {
            // Only the last columns of a task that are not a whole panel of 8 come here: one dot each.
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < 4; c++) {
                    out[r * 4 + c] = dotQuant(x, xOff + r * xStride, w, wOff + c * wStride, wt, k);
                }
            }
            return;
        }
        int kFull = k - k % L;
        // One method per tile height and weight format: each keeps its 4·rows accumulators in
        // registers (measured: tiles of more than 16 accumulators, or more than four weight vectors
        // per step, make C2 spill or box and run 5-15× slower; docs/decisions.md).
        if (wt == DType.F32) {
            switch (rows) {
                case 4 -> tile4x4F32(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                case 3 -> tile3x4F32(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                case 2 -> tile2x4F32(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                case 1 -> tile1x4F32(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                default -> throw new IllegalArgumentException("a tile has 1 to 4 rows, not " + rows);
            }
        } else {
            switch (rows) {
                case 4 -> tile4x4Bf16(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                case 3 -> tile3x4Bf16(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                case 2 -> tile2x4Bf16(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                case 1 -> tile1x4Bf16(x, xOff, xStride, w, wOff, wStride, kFull, lanes);
                default -> throw new IllegalArgumentException("a tile has 1 to 4 rows, not " + rows);
            }
        }
        // Lanes reduced by the halving tree, then the scalar tail: the rest of the canonical order.
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < 4; c++) {
                float s = hsum(FloatVector.fromArray(F, lanes, (r * 4 + c) * L));
                out[r * 4 + c] = kFull < k
                        ? ScalarKernels.tail(x, xOff + r * xStride, w, wOff + c * wStride, wt, kFull, k, s)
                        : s;
            }
        }
    }

    @Override
    public void accumulateTile8(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff,
                                long wStride, DType wt, int kFrom, int kTo, float[] lanes, int at) {
        if (wt.isQuantized()) {
            if (QUANT_FALLBACK != null) {
                QUANT_FALLBACK.accumulateTile8(rows, x, xOff, xStride, w, wOff, wStride, wt, kFrom, kTo, lanes, at);
            } else {
                QuantTiles.accumulate8(rows, x, xOff, xStride, w, wOff, wStride, wt, kFrom, kTo, lanes, at);
            }
        } else if (wt == DType.F32) {
            switch (rows) {
                case 3 -> tile3x8F32(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at);
                case 2 -> tile2x8F32(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at);
                case 1 -> tile1x8F32(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at);
                default -> throw new IllegalArgumentException("an 8-column tile has 1 to 3 rows, not " + rows);
            }
        } else {
            switch (rows) {
                case 3 -> tile3x8Bf16(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at);
                case 2 -> tile2x8Bf16(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at);
                case 1 -> tile1x8Bf16(x, xOff, xStride, w, wOff, wStride, kFrom, kTo, lanes, at);
                default -> throw new IllegalArgumentException("an 8-column tile has 1 to 3 rows, not " + rows);
            }
        }
    }

    @Override
    public void finishTile8(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                            DType wt, int k, float[] lanes, int at, float[] out) {
        int kFull = k - k % L;
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < 8; c++) {
                float s = hsum(FloatVector.fromArray(F, lanes, at + (r * 8 + c) * L));
                out[r * 8 + c] = kFull < k
                        ? ScalarKernels.tail(x, xOff + r * xStride, w, wOff + c * wStride, wt, kFull, k, s)
                        : s;
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
            FloatVector vv = ((IntVector) ShortVector.fromMemorySegment(S, v, vOff + 2L * i, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            av.fma(vv, FloatVector.fromArray(F, acc, i)).intoArray(acc, i);
        }
        for (; i < d; i++) {
            acc[i] = Math.fma(a, DType.bf16ToFloat(v.get(ValueLayout.JAVA_SHORT_UNALIGNED, vOff + 2L * i)), acc[i]);
        }
    }

    @Override
    public void layerNorm(MemorySegment x, long xOff, MemorySegment w, MemorySegment b, float eps, MemorySegment out, long outOff, int d) {
        int full = d - d % L;
        float x0 = x.get(ValueLayout.JAVA_FLOAT_UNALIGNED, xOff);
        FloatVector shift = FloatVector.broadcast(F, x0);
        FloatVector acc = FloatVector.zero(F);
        for (int i = 0; i < full; i += L) {
            acc = acc.add(FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).sub(shift));
        }
        float sum = hsum(acc);
        for (int i = full; i < d; i++) {
            sum += x.get(ValueLayout.JAVA_FLOAT_UNALIGNED, xOff + 4L * i) - x0;
        }
        float mu = sum / d;
        FloatVector m = FloatVector.broadcast(F, mu);
        acc = FloatVector.zero(F);
        for (int i = 0; i < full; i += L) {
            FloatVector c = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).sub(shift).sub(m);
            acc = c.fma(c, acc);
        }
        float sq = hsum(acc);
        for (int i = full; i < d; i++) {
            float c = (x.get(ValueLayout.JAVA_FLOAT_UNALIGNED, xOff + 4L * i) - x0) - mu;
            sq = Math.fma(c, c, sq);
        }
        float inv = 1f / (float) Math.sqrt(sq / d + eps);
        FloatVector iv = FloatVector.broadcast(F, inv);
        for (int i = 0; i < full; i += L) {
            FloatVector c = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE).sub(shift).sub(m);
            c.mul(iv).fma(FloatVector.fromMemorySegment(F, w, 4L * i, LE), FloatVector.fromMemorySegment(F, b, 4L * i, LE))
                    .intoMemorySegment(out, outOff + 4L * i, LE);
        }
        for (int i = full; i < d; i++) {
            float c = (x.get(ValueLayout.JAVA_FLOAT_UNALIGNED, xOff + 4L * i) - x0) - mu;
            out.set(ValueLayout.JAVA_FLOAT_UNALIGNED, outOff + 4L * i, Math.fma(c * inv, w.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 4L * i),
                    b.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 4L * i)));
        }
    }

    @Override
    public void gelu(MemorySegment x, long xOff, MemorySegment out, long outOff, int count) {
        // FloatErf.gelu lane by lane, operation for operation, written out in the loop so that no vector crosses a call.
        FloatVector one = FloatVector.broadcast(F, 1f);
        int i = 0;
        for (; i <= count - L; i += L) {
            FloatVector v = FloatVector.fromMemorySegment(F, x, xOff + 4L * i, LE);
            FloatVector y = v.mul(FloatErf.SQRT_HALF);
            FloatVector a = y.abs();
            FloatVector s = a.mul(a);
            FloatVector p = FloatVector.broadcast(F, FloatErf.P[FloatErf.P.length - 1]);
            for (int k = FloatErf.P.length - 2; k >= 0; k--) {
                p = p.fma(s, FloatVector.broadcast(F, FloatErf.P[k]));
            }
            FloatVector u = a.sub(FloatErf.CENTRE);
            FloatVector q = FloatVector.broadcast(F, FloatErf.Q[FloatErf.Q.length - 1]);
            for (int k = FloatErf.Q.length - 2; k >= 0; k--) {
                q = q.fma(u, FloatVector.broadcast(F, FloatErf.Q[k]));
            }
            FloatVector r = q.min(1f).blend(a.mul(p), a.lt(FloatErf.SPLIT)).blend(one, a.compare(VectorOperators.GE, FloatErf.CUT));
            // Math.copySign(r, y): r's magnitude bits, y's sign bit.
            FloatVector erf = r.reinterpretAsInts().and(0x7fffffff).or(y.reinterpretAsInts().and(0x80000000)).reinterpretAsFloats();
            v.mul(0.5f).mul(one.add(erf)).intoMemorySegment(out, outOff + 4L * i, LE);
        }
        for (; i < count; i++) {
            out.set(ValueLayout.JAVA_FLOAT_UNALIGNED, outOff + 4L * i, FloatErf.gelu(x.get(ValueLayout.JAVA_FLOAT_UNALIGNED, xOff + 4L * i)));
        }
    }

    // The tiles, written out one per shape and weight format (rows × 4 or rows × 8 weight rows). Each
    // step loads every weight vector once and uses it for every row of the tile. The loads are
    // spelled out rather than called through a helper: C2 declined to inline a 36-byte helper in
    // the 8-load tile ("callee is too large"), and every vector it returned was then boxed
    // (measured: decode at 0.33 of the read bandwidth; docs/decisions.md).

    private static void tile4x4F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F), a22 = FloatVector.zero(F), a23 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F), a32 = FloatVector.zero(F), a33 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        long x1 = xOff + 1 * xStride, x2 = xOff + 2 * xStride, x3 = xOff + 3 * xStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 4L * i, xb = 4L * i;
            FloatVector v0 = FloatVector.fromMemorySegment(F, w, wOff + wb, LE);
            FloatVector v1 = FloatVector.fromMemorySegment(F, w, w1 + wb, LE);
            FloatVector v2 = FloatVector.fromMemorySegment(F, w, w2 + wb, LE);
            FloatVector v3 = FloatVector.fromMemorySegment(F, w, w3 + wb, LE);
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            a10 = u1.fma(v0, a10); a11 = u1.fma(v1, a11); a12 = u1.fma(v2, a12); a13 = u1.fma(v3, a13);
            FloatVector u2 = FloatVector.fromMemorySegment(F, x, x2 + xb, LE);
            a20 = u2.fma(v0, a20); a21 = u2.fma(v1, a21); a22 = u2.fma(v2, a22); a23 = u2.fma(v3, a23);
            FloatVector u3 = FloatVector.fromMemorySegment(F, x, x3 + xb, LE);
            a30 = u3.fma(v0, a30); a31 = u3.fma(v1, a31); a32 = u3.fma(v2, a32); a33 = u3.fma(v3, a33);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
        a10.intoArray(lanes, 4 * L); a11.intoArray(lanes, 5 * L); a12.intoArray(lanes, 6 * L); a13.intoArray(lanes, 7 * L);
        a20.intoArray(lanes, 8 * L); a21.intoArray(lanes, 9 * L); a22.intoArray(lanes, 10 * L); a23.intoArray(lanes, 11 * L);
        a30.intoArray(lanes, 12 * L); a31.intoArray(lanes, 13 * L); a32.intoArray(lanes, 14 * L); a33.intoArray(lanes, 15 * L);
    }

    private static void tile3x4F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F), a22 = FloatVector.zero(F), a23 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        long x1 = xOff + 1 * xStride, x2 = xOff + 2 * xStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 4L * i, xb = 4L * i;
            FloatVector v0 = FloatVector.fromMemorySegment(F, w, wOff + wb, LE);
            FloatVector v1 = FloatVector.fromMemorySegment(F, w, w1 + wb, LE);
            FloatVector v2 = FloatVector.fromMemorySegment(F, w, w2 + wb, LE);
            FloatVector v3 = FloatVector.fromMemorySegment(F, w, w3 + wb, LE);
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            a10 = u1.fma(v0, a10); a11 = u1.fma(v1, a11); a12 = u1.fma(v2, a12); a13 = u1.fma(v3, a13);
            FloatVector u2 = FloatVector.fromMemorySegment(F, x, x2 + xb, LE);
            a20 = u2.fma(v0, a20); a21 = u2.fma(v1, a21); a22 = u2.fma(v2, a22); a23 = u2.fma(v3, a23);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
        a10.intoArray(lanes, 4 * L); a11.intoArray(lanes, 5 * L); a12.intoArray(lanes, 6 * L); a13.intoArray(lanes, 7 * L);
        a20.intoArray(lanes, 8 * L); a21.intoArray(lanes, 9 * L); a22.intoArray(lanes, 10 * L); a23.intoArray(lanes, 11 * L);
    }

    private static void tile2x4F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        long x1 = xOff + 1 * xStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 4L * i, xb = 4L * i;
            FloatVector v0 = FloatVector.fromMemorySegment(F, w, wOff + wb, LE);
            FloatVector v1 = FloatVector.fromMemorySegment(F, w, w1 + wb, LE);
            FloatVector v2 = FloatVector.fromMemorySegment(F, w, w2 + wb, LE);
            FloatVector v3 = FloatVector.fromMemorySegment(F, w, w3 + wb, LE);
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            a10 = u1.fma(v0, a10); a11 = u1.fma(v1, a11); a12 = u1.fma(v2, a12); a13 = u1.fma(v3, a13);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
        a10.intoArray(lanes, 4 * L); a11.intoArray(lanes, 5 * L); a12.intoArray(lanes, 6 * L); a13.intoArray(lanes, 7 * L);
    }

    private static void tile1x4F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 4L * i, xb = 4L * i;
            FloatVector v0 = FloatVector.fromMemorySegment(F, w, wOff + wb, LE);
            FloatVector v1 = FloatVector.fromMemorySegment(F, w, w1 + wb, LE);
            FloatVector v2 = FloatVector.fromMemorySegment(F, w, w2 + wb, LE);
            FloatVector v3 = FloatVector.fromMemorySegment(F, w, w3 + wb, LE);
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
    }

    private static void tile4x4Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F), a22 = FloatVector.zero(F), a23 = FloatVector.zero(F);
        FloatVector a30 = FloatVector.zero(F), a31 = FloatVector.zero(F), a32 = FloatVector.zero(F), a33 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        long x1 = xOff + 1 * xStride, x2 = xOff + 2 * xStride, x3 = xOff + 3 * xStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 2L * i, xb = 4L * i;
            FloatVector v0 = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v1 = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v2 = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v3 = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            a10 = u1.fma(v0, a10); a11 = u1.fma(v1, a11); a12 = u1.fma(v2, a12); a13 = u1.fma(v3, a13);
            FloatVector u2 = FloatVector.fromMemorySegment(F, x, x2 + xb, LE);
            a20 = u2.fma(v0, a20); a21 = u2.fma(v1, a21); a22 = u2.fma(v2, a22); a23 = u2.fma(v3, a23);
            FloatVector u3 = FloatVector.fromMemorySegment(F, x, x3 + xb, LE);
            a30 = u3.fma(v0, a30); a31 = u3.fma(v1, a31); a32 = u3.fma(v2, a32); a33 = u3.fma(v3, a33);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
        a10.intoArray(lanes, 4 * L); a11.intoArray(lanes, 5 * L); a12.intoArray(lanes, 6 * L); a13.intoArray(lanes, 7 * L);
        a20.intoArray(lanes, 8 * L); a21.intoArray(lanes, 9 * L); a22.intoArray(lanes, 10 * L); a23.intoArray(lanes, 11 * L);
        a30.intoArray(lanes, 12 * L); a31.intoArray(lanes, 13 * L); a32.intoArray(lanes, 14 * L); a33.intoArray(lanes, 15 * L);
    }

    private static void tile3x4Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        FloatVector a20 = FloatVector.zero(F), a21 = FloatVector.zero(F), a22 = FloatVector.zero(F), a23 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        long x1 = xOff + 1 * xStride, x2 = xOff + 2 * xStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 2L * i, xb = 4L * i;
            FloatVector v0 = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v1 = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v2 = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v3 = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            a10 = u1.fma(v0, a10); a11 = u1.fma(v1, a11); a12 = u1.fma(v2, a12); a13 = u1.fma(v3, a13);
            FloatVector u2 = FloatVector.fromMemorySegment(F, x, x2 + xb, LE);
            a20 = u2.fma(v0, a20); a21 = u2.fma(v1, a21); a22 = u2.fma(v2, a22); a23 = u2.fma(v3, a23);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
        a10.intoArray(lanes, 4 * L); a11.intoArray(lanes, 5 * L); a12.intoArray(lanes, 6 * L); a13.intoArray(lanes, 7 * L);
        a20.intoArray(lanes, 8 * L); a21.intoArray(lanes, 9 * L); a22.intoArray(lanes, 10 * L); a23.intoArray(lanes, 11 * L);
    }

    private static void tile2x4Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F), a11 = FloatVector.zero(F), a12 = FloatVector.zero(F), a13 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        long x1 = xOff + 1 * xStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 2L * i, xb = 4L * i;
            FloatVector v0 = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v1 = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v2 = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v3 = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            a10 = u1.fma(v0, a10); a11 = u1.fma(v1, a11); a12 = u1.fma(v2, a12); a13 = u1.fma(v3, a13);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
        a10.intoArray(lanes, 4 * L); a11.intoArray(lanes, 5 * L); a12.intoArray(lanes, 6 * L); a13.intoArray(lanes, 7 * L);
    }

    private static void tile1x4Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFull, float[] lanes) {
        FloatVector a00 = FloatVector.zero(F), a01 = FloatVector.zero(F), a02 = FloatVector.zero(F), a03 = FloatVector.zero(F);
        long w1 = wOff + wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride;
        for (int i = 0; i < kFull; i += L) {
            long wb = 2L * i, xb = 4L * i;
            FloatVector v0 = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v1 = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v2 = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector v3 = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            a00 = u0.fma(v0, a00); a01 = u0.fma(v1, a01); a02 = u0.fma(v2, a02); a03 = u0.fma(v3, a03);
        }
        a00.intoArray(lanes, 0 * L); a01.intoArray(lanes, 1 * L); a02.intoArray(lanes, 2 * L); a03.intoArray(lanes, 3 * L);
    }

    private static void tile3x8F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFrom, int kTo, float[] lanes, int at) {
        FloatVector a00 = FloatVector.fromArray(F, lanes, at + 0 * L), a01 = FloatVector.fromArray(F, lanes, at + 1 * L);
        FloatVector a02 = FloatVector.fromArray(F, lanes, at + 2 * L), a03 = FloatVector.fromArray(F, lanes, at + 3 * L);
        FloatVector a04 = FloatVector.fromArray(F, lanes, at + 4 * L), a05 = FloatVector.fromArray(F, lanes, at + 5 * L);
        FloatVector a06 = FloatVector.fromArray(F, lanes, at + 6 * L), a07 = FloatVector.fromArray(F, lanes, at + 7 * L);
        FloatVector a10 = FloatVector.fromArray(F, lanes, at + 8 * L), a11 = FloatVector.fromArray(F, lanes, at + 9 * L);
        FloatVector a12 = FloatVector.fromArray(F, lanes, at + 10 * L), a13 = FloatVector.fromArray(F, lanes, at + 11 * L);
        FloatVector a14 = FloatVector.fromArray(F, lanes, at + 12 * L), a15 = FloatVector.fromArray(F, lanes, at + 13 * L);
        FloatVector a16 = FloatVector.fromArray(F, lanes, at + 14 * L), a17 = FloatVector.fromArray(F, lanes, at + 15 * L);
        FloatVector a20 = FloatVector.fromArray(F, lanes, at + 16 * L), a21 = FloatVector.fromArray(F, lanes, at + 17 * L);
        FloatVector a22 = FloatVector.fromArray(F, lanes, at + 18 * L), a23 = FloatVector.fromArray(F, lanes, at + 19 * L);
        FloatVector a24 = FloatVector.fromArray(F, lanes, at + 20 * L), a25 = FloatVector.fromArray(F, lanes, at + 21 * L);
        FloatVector a26 = FloatVector.fromArray(F, lanes, at + 22 * L), a27 = FloatVector.fromArray(F, lanes, at + 23 * L);
        long w1 = wOff + 1 * wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride, w4 = wOff + 4 * wStride;
        long w5 = wOff + 5 * wStride, w6 = wOff + 6 * wStride, w7 = wOff + 7 * wStride;
        long x1 = xOff + 1 * xStride, x2 = xOff + 2 * xStride;
        for (int i = kFrom; i < kTo; i += L) {
            long wb = 4L * i, xb = 4L * i;
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            FloatVector u2 = FloatVector.fromMemorySegment(F, x, x2 + xb, LE);
            FloatVector v0 = FloatVector.fromMemorySegment(F, w, wOff + wb, LE);
            a00 = u0.fma(v0, a00); a10 = u1.fma(v0, a10); a20 = u2.fma(v0, a20);
            FloatVector v1 = FloatVector.fromMemorySegment(F, w, w1 + wb, LE);
            a01 = u0.fma(v1, a01); a11 = u1.fma(v1, a11); a21 = u2.fma(v1, a21);
            FloatVector v2 = FloatVector.fromMemorySegment(F, w, w2 + wb, LE);
            a02 = u0.fma(v2, a02); a12 = u1.fma(v2, a12); a22 = u2.fma(v2, a22);
            FloatVector v3 = FloatVector.fromMemorySegment(F, w, w3 + wb, LE);
            a03 = u0.fma(v3, a03); a13 = u1.fma(v3, a13); a23 = u2.fma(v3, a23);
            FloatVector v4 = FloatVector.fromMemorySegment(F, w, w4 + wb, LE);
            a04 = u0.fma(v4, a04); a14 = u1.fma(v4, a14); a24 = u2.fma(v4, a24);
            FloatVector v5 = FloatVector.fromMemorySegment(F, w, w5 + wb, LE);
            a05 = u0.fma(v5, a05); a15 = u1.fma(v5, a15); a25 = u2.fma(v5, a25);
            FloatVector v6 = FloatVector.fromMemorySegment(F, w, w6 + wb, LE);
            a06 = u0.fma(v6, a06); a16 = u1.fma(v6, a16); a26 = u2.fma(v6, a26);
            FloatVector v7 = FloatVector.fromMemorySegment(F, w, w7 + wb, LE);
            a07 = u0.fma(v7, a07); a17 = u1.fma(v7, a17); a27 = u2.fma(v7, a27);
        }
        a00.intoArray(lanes, at + 0 * L); a01.intoArray(lanes, at + 1 * L); a02.intoArray(lanes, at + 2 * L); a03.intoArray(lanes, at + 3 * L);
        a04.intoArray(lanes, at + 4 * L); a05.intoArray(lanes, at + 5 * L); a06.intoArray(lanes, at + 6 * L); a07.intoArray(lanes, at + 7 * L);
        a10.intoArray(lanes, at + 8 * L); a11.intoArray(lanes, at + 9 * L); a12.intoArray(lanes, at + 10 * L); a13.intoArray(lanes, at + 11 * L);
        a14.intoArray(lanes, at + 12 * L); a15.intoArray(lanes, at + 13 * L); a16.intoArray(lanes, at + 14 * L); a17.intoArray(lanes, at + 15 * L);
        a20.intoArray(lanes, at + 16 * L); a21.intoArray(lanes, at + 17 * L); a22.intoArray(lanes, at + 18 * L); a23.intoArray(lanes, at + 19 * L);
        a24.intoArray(lanes, at + 20 * L); a25.intoArray(lanes, at + 21 * L); a26.intoArray(lanes, at + 22 * L); a27.intoArray(lanes, at + 23 * L);
    }

    private static void tile2x8F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFrom, int kTo, float[] lanes, int at) {
        FloatVector a00 = FloatVector.fromArray(F, lanes, at + 0 * L), a01 = FloatVector.fromArray(F, lanes, at + 1 * L);
        FloatVector a02 = FloatVector.fromArray(F, lanes, at + 2 * L), a03 = FloatVector.fromArray(F, lanes, at + 3 * L);
        FloatVector a04 = FloatVector.fromArray(F, lanes, at + 4 * L), a05 = FloatVector.fromArray(F, lanes, at + 5 * L);
        FloatVector a06 = FloatVector.fromArray(F, lanes, at + 6 * L), a07 = FloatVector.fromArray(F, lanes, at + 7 * L);
        FloatVector a10 = FloatVector.fromArray(F, lanes, at + 8 * L), a11 = FloatVector.fromArray(F, lanes, at + 9 * L);
        FloatVector a12 = FloatVector.fromArray(F, lanes, at + 10 * L), a13 = FloatVector.fromArray(F, lanes, at + 11 * L);
        FloatVector a14 = FloatVector.fromArray(F, lanes, at + 12 * L), a15 = FloatVector.fromArray(F, lanes, at + 13 * L);
        FloatVector a16 = FloatVector.fromArray(F, lanes, at + 14 * L), a17 = FloatVector.fromArray(F, lanes, at + 15 * L);
        long w1 = wOff + 1 * wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride, w4 = wOff + 4 * wStride;
        long w5 = wOff + 5 * wStride, w6 = wOff + 6 * wStride, w7 = wOff + 7 * wStride;
        long x1 = xOff + 1 * xStride;
        for (int i = kFrom; i < kTo; i += L) {
            long wb = 4L * i, xb = 4L * i;
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            FloatVector v0 = FloatVector.fromMemorySegment(F, w, wOff + wb, LE);
            a00 = u0.fma(v0, a00); a10 = u1.fma(v0, a10);
            FloatVector v1 = FloatVector.fromMemorySegment(F, w, w1 + wb, LE);
            a01 = u0.fma(v1, a01); a11 = u1.fma(v1, a11);
            FloatVector v2 = FloatVector.fromMemorySegment(F, w, w2 + wb, LE);
            a02 = u0.fma(v2, a02); a12 = u1.fma(v2, a12);
            FloatVector v3 = FloatVector.fromMemorySegment(F, w, w3 + wb, LE);
            a03 = u0.fma(v3, a03); a13 = u1.fma(v3, a13);
            FloatVector v4 = FloatVector.fromMemorySegment(F, w, w4 + wb, LE);
            a04 = u0.fma(v4, a04); a14 = u1.fma(v4, a14);
            FloatVector v5 = FloatVector.fromMemorySegment(F, w, w5 + wb, LE);
            a05 = u0.fma(v5, a05); a15 = u1.fma(v5, a15);
            FloatVector v6 = FloatVector.fromMemorySegment(F, w, w6 + wb, LE);
            a06 = u0.fma(v6, a06); a16 = u1.fma(v6, a16);
            FloatVector v7 = FloatVector.fromMemorySegment(F, w, w7 + wb, LE);
            a07 = u0.fma(v7, a07); a17 = u1.fma(v7, a17);
        }
        a00.intoArray(lanes, at + 0 * L); a01.intoArray(lanes, at + 1 * L); a02.intoArray(lanes, at + 2 * L); a03.intoArray(lanes, at + 3 * L);
        a04.intoArray(lanes, at + 4 * L); a05.intoArray(lanes, at + 5 * L); a06.intoArray(lanes, at + 6 * L); a07.intoArray(lanes, at + 7 * L);
        a10.intoArray(lanes, at + 8 * L); a11.intoArray(lanes, at + 9 * L); a12.intoArray(lanes, at + 10 * L); a13.intoArray(lanes, at + 11 * L);
        a14.intoArray(lanes, at + 12 * L); a15.intoArray(lanes, at + 13 * L); a16.intoArray(lanes, at + 14 * L); a17.intoArray(lanes, at + 15 * L);
    }

    private static void tile1x8F32(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFrom, int kTo, float[] lanes, int at) {
        FloatVector a00 = FloatVector.fromArray(F, lanes, at + 0 * L), a01 = FloatVector.fromArray(F, lanes, at + 1 * L);
        FloatVector a02 = FloatVector.fromArray(F, lanes, at + 2 * L), a03 = FloatVector.fromArray(F, lanes, at + 3 * L);
        FloatVector a04 = FloatVector.fromArray(F, lanes, at + 4 * L), a05 = FloatVector.fromArray(F, lanes, at + 5 * L);
        FloatVector a06 = FloatVector.fromArray(F, lanes, at + 6 * L), a07 = FloatVector.fromArray(F, lanes, at + 7 * L);
        long w1 = wOff + 1 * wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride, w4 = wOff + 4 * wStride;
        long w5 = wOff + 5 * wStride, w6 = wOff + 6 * wStride, w7 = wOff + 7 * wStride;
        for (int i = kFrom; i < kTo; i += L) {
            long wb = 4L * i, xb = 4L * i;
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            FloatVector v0 = FloatVector.fromMemorySegment(F, w, wOff + wb, LE);
            a00 = u0.fma(v0, a00);
            FloatVector v1 = FloatVector.fromMemorySegment(F, w, w1 + wb, LE);
            a01 = u0.fma(v1, a01);
            FloatVector v2 = FloatVector.fromMemorySegment(F, w, w2 + wb, LE);
            a02 = u0.fma(v2, a02);
            FloatVector v3 = FloatVector.fromMemorySegment(F, w, w3 + wb, LE);
            a03 = u0.fma(v3, a03);
            FloatVector v4 = FloatVector.fromMemorySegment(F, w, w4 + wb, LE);
            a04 = u0.fma(v4, a04);
            FloatVector v5 = FloatVector.fromMemorySegment(F, w, w5 + wb, LE);
            a05 = u0.fma(v5, a05);
            FloatVector v6 = FloatVector.fromMemorySegment(F, w, w6 + wb, LE);
            a06 = u0.fma(v6, a06);
            FloatVector v7 = FloatVector.fromMemorySegment(F, w, w7 + wb, LE);
            a07 = u0.fma(v7, a07);
        }
        a00.intoArray(lanes, at + 0 * L); a01.intoArray(lanes, at + 1 * L); a02.intoArray(lanes, at + 2 * L); a03.intoArray(lanes, at + 3 * L);
        a04.intoArray(lanes, at + 4 * L); a05.intoArray(lanes, at + 5 * L); a06.intoArray(lanes, at + 6 * L); a07.intoArray(lanes, at + 7 * L);
    }

    private static void tile3x8Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFrom, int kTo, float[] lanes, int at) {
        FloatVector a00 = FloatVector.fromArray(F, lanes, at + 0 * L), a01 = FloatVector.fromArray(F, lanes, at + 1 * L);
        FloatVector a02 = FloatVector.fromArray(F, lanes, at + 2 * L), a03 = FloatVector.fromArray(F, lanes, at + 3 * L);
        FloatVector a04 = FloatVector.fromArray(F, lanes, at + 4 * L), a05 = FloatVector.fromArray(F, lanes, at + 5 * L);
        FloatVector a06 = FloatVector.fromArray(F, lanes, at + 6 * L), a07 = FloatVector.fromArray(F, lanes, at + 7 * L);
        FloatVector a10 = FloatVector.fromArray(F, lanes, at + 8 * L), a11 = FloatVector.fromArray(F, lanes, at + 9 * L);
        FloatVector a12 = FloatVector.fromArray(F, lanes, at + 10 * L), a13 = FloatVector.fromArray(F, lanes, at + 11 * L);
        FloatVector a14 = FloatVector.fromArray(F, lanes, at + 12 * L), a15 = FloatVector.fromArray(F, lanes, at + 13 * L);
        FloatVector a16 = FloatVector.fromArray(F, lanes, at + 14 * L), a17 = FloatVector.fromArray(F, lanes, at + 15 * L);
        FloatVector a20 = FloatVector.fromArray(F, lanes, at + 16 * L), a21 = FloatVector.fromArray(F, lanes, at + 17 * L);
        FloatVector a22 = FloatVector.fromArray(F, lanes, at + 18 * L), a23 = FloatVector.fromArray(F, lanes, at + 19 * L);
        FloatVector a24 = FloatVector.fromArray(F, lanes, at + 20 * L), a25 = FloatVector.fromArray(F, lanes, at + 21 * L);
        FloatVector a26 = FloatVector.fromArray(F, lanes, at + 22 * L), a27 = FloatVector.fromArray(F, lanes, at + 23 * L);
        long w1 = wOff + 1 * wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride, w4 = wOff + 4 * wStride;
        long w5 = wOff + 5 * wStride, w6 = wOff + 6 * wStride, w7 = wOff + 7 * wStride;
        long x1 = xOff + 1 * xStride, x2 = xOff + 2 * xStride;
        for (int i = kFrom; i < kTo; i += L) {
            long wb = 2L * i, xb = 4L * i;
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            FloatVector u2 = FloatVector.fromMemorySegment(F, x, x2 + xb, LE);
            FloatVector v0 = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a00 = u0.fma(v0, a00); a10 = u1.fma(v0, a10); a20 = u2.fma(v0, a20);
            FloatVector v1 = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a01 = u0.fma(v1, a01); a11 = u1.fma(v1, a11); a21 = u2.fma(v1, a21);
            FloatVector v2 = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a02 = u0.fma(v2, a02); a12 = u1.fma(v2, a12); a22 = u2.fma(v2, a22);
            FloatVector v3 = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a03 = u0.fma(v3, a03); a13 = u1.fma(v3, a13); a23 = u2.fma(v3, a23);
            FloatVector v4 = ((IntVector) ShortVector.fromMemorySegment(S, w, w4 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a04 = u0.fma(v4, a04); a14 = u1.fma(v4, a14); a24 = u2.fma(v4, a24);
            FloatVector v5 = ((IntVector) ShortVector.fromMemorySegment(S, w, w5 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a05 = u0.fma(v5, a05); a15 = u1.fma(v5, a15); a25 = u2.fma(v5, a25);
            FloatVector v6 = ((IntVector) ShortVector.fromMemorySegment(S, w, w6 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a06 = u0.fma(v6, a06); a16 = u1.fma(v6, a16); a26 = u2.fma(v6, a26);
            FloatVector v7 = ((IntVector) ShortVector.fromMemorySegment(S, w, w7 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a07 = u0.fma(v7, a07); a17 = u1.fma(v7, a17); a27 = u2.fma(v7, a27);
        }
        a00.intoArray(lanes, at + 0 * L); a01.intoArray(lanes, at + 1 * L); a02.intoArray(lanes, at + 2 * L); a03.intoArray(lanes, at + 3 * L);
        a04.intoArray(lanes, at + 4 * L); a05.intoArray(lanes, at + 5 * L); a06.intoArray(lanes, at + 6 * L); a07.intoArray(lanes, at + 7 * L);
        a10.intoArray(lanes, at + 8 * L); a11.intoArray(lanes, at + 9 * L); a12.intoArray(lanes, at + 10 * L); a13.intoArray(lanes, at + 11 * L);
        a14.intoArray(lanes, at + 12 * L); a15.intoArray(lanes, at + 13 * L); a16.intoArray(lanes, at + 14 * L); a17.intoArray(lanes, at + 15 * L);
        a20.intoArray(lanes, at + 16 * L); a21.intoArray(lanes, at + 17 * L); a22.intoArray(lanes, at + 18 * L); a23.intoArray(lanes, at + 19 * L);
        a24.intoArray(lanes, at + 20 * L); a25.intoArray(lanes, at + 21 * L); a26.intoArray(lanes, at + 22 * L); a27.intoArray(lanes, at + 23 * L);
    }

    private static void tile2x8Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFrom, int kTo, float[] lanes, int at) {
        FloatVector a00 = FloatVector.fromArray(F, lanes, at + 0 * L), a01 = FloatVector.fromArray(F, lanes, at + 1 * L);
        FloatVector a02 = FloatVector.fromArray(F, lanes, at + 2 * L), a03 = FloatVector.fromArray(F, lanes, at + 3 * L);
        FloatVector a04 = FloatVector.fromArray(F, lanes, at + 4 * L), a05 = FloatVector.fromArray(F, lanes, at + 5 * L);
        FloatVector a06 = FloatVector.fromArray(F, lanes, at + 6 * L), a07 = FloatVector.fromArray(F, lanes, at + 7 * L);
        FloatVector a10 = FloatVector.fromArray(F, lanes, at + 8 * L), a11 = FloatVector.fromArray(F, lanes, at + 9 * L);
        FloatVector a12 = FloatVector.fromArray(F, lanes, at + 10 * L), a13 = FloatVector.fromArray(F, lanes, at + 11 * L);
        FloatVector a14 = FloatVector.fromArray(F, lanes, at + 12 * L), a15 = FloatVector.fromArray(F, lanes, at + 13 * L);
        FloatVector a16 = FloatVector.fromArray(F, lanes, at + 14 * L), a17 = FloatVector.fromArray(F, lanes, at + 15 * L);
        long w1 = wOff + 1 * wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride, w4 = wOff + 4 * wStride;
        long w5 = wOff + 5 * wStride, w6 = wOff + 6 * wStride, w7 = wOff + 7 * wStride;
        long x1 = xOff + 1 * xStride;
        for (int i = kFrom; i < kTo; i += L) {
            long wb = 2L * i, xb = 4L * i;
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            FloatVector u1 = FloatVector.fromMemorySegment(F, x, x1 + xb, LE);
            FloatVector v0 = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a00 = u0.fma(v0, a00); a10 = u1.fma(v0, a10);
            FloatVector v1 = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a01 = u0.fma(v1, a01); a11 = u1.fma(v1, a11);
            FloatVector v2 = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a02 = u0.fma(v2, a02); a12 = u1.fma(v2, a12);
            FloatVector v3 = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a03 = u0.fma(v3, a03); a13 = u1.fma(v3, a13);
            FloatVector v4 = ((IntVector) ShortVector.fromMemorySegment(S, w, w4 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a04 = u0.fma(v4, a04); a14 = u1.fma(v4, a14);
            FloatVector v5 = ((IntVector) ShortVector.fromMemorySegment(S, w, w5 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a05 = u0.fma(v5, a05); a15 = u1.fma(v5, a15);
            FloatVector v6 = ((IntVector) ShortVector.fromMemorySegment(S, w, w6 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a06 = u0.fma(v6, a06); a16 = u1.fma(v6, a16);
            FloatVector v7 = ((IntVector) ShortVector.fromMemorySegment(S, w, w7 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a07 = u0.fma(v7, a07); a17 = u1.fma(v7, a17);
        }
        a00.intoArray(lanes, at + 0 * L); a01.intoArray(lanes, at + 1 * L); a02.intoArray(lanes, at + 2 * L); a03.intoArray(lanes, at + 3 * L);
        a04.intoArray(lanes, at + 4 * L); a05.intoArray(lanes, at + 5 * L); a06.intoArray(lanes, at + 6 * L); a07.intoArray(lanes, at + 7 * L);
        a10.intoArray(lanes, at + 8 * L); a11.intoArray(lanes, at + 9 * L); a12.intoArray(lanes, at + 10 * L); a13.intoArray(lanes, at + 11 * L);
        a14.intoArray(lanes, at + 12 * L); a15.intoArray(lanes, at + 13 * L); a16.intoArray(lanes, at + 14 * L); a17.intoArray(lanes, at + 15 * L);
    }

    private static void tile1x8Bf16(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                                  int kFrom, int kTo, float[] lanes, int at) {
        FloatVector a00 = FloatVector.fromArray(F, lanes, at + 0 * L), a01 = FloatVector.fromArray(F, lanes, at + 1 * L);
        FloatVector a02 = FloatVector.fromArray(F, lanes, at + 2 * L), a03 = FloatVector.fromArray(F, lanes, at + 3 * L);
        FloatVector a04 = FloatVector.fromArray(F, lanes, at + 4 * L), a05 = FloatVector.fromArray(F, lanes, at + 5 * L);
        FloatVector a06 = FloatVector.fromArray(F, lanes, at + 6 * L), a07 = FloatVector.fromArray(F, lanes, at + 7 * L);
        long w1 = wOff + 1 * wStride, w2 = wOff + 2 * wStride, w3 = wOff + 3 * wStride, w4 = wOff + 4 * wStride;
        long w5 = wOff + 5 * wStride, w6 = wOff + 6 * wStride, w7 = wOff + 7 * wStride;
        for (int i = kFrom; i < kTo; i += L) {
            long wb = 2L * i, xb = 4L * i;
            FloatVector u0 = FloatVector.fromMemorySegment(F, x, xOff + xb, LE);
            FloatVector v0 = ((IntVector) ShortVector.fromMemorySegment(S, w, wOff + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a00 = u0.fma(v0, a00);
            FloatVector v1 = ((IntVector) ShortVector.fromMemorySegment(S, w, w1 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a01 = u0.fma(v1, a01);
            FloatVector v2 = ((IntVector) ShortVector.fromMemorySegment(S, w, w2 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a02 = u0.fma(v2, a02);
            FloatVector v3 = ((IntVector) ShortVector.fromMemorySegment(S, w, w3 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a03 = u0.fma(v3, a03);
            FloatVector v4 = ((IntVector) ShortVector.fromMemorySegment(S, w, w4 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a04 = u0.fma(v4, a04);
            FloatVector v5 = ((IntVector) ShortVector.fromMemorySegment(S, w, w5 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a05 = u0.fma(v5, a05);
            FloatVector v6 = ((IntVector) ShortVector.fromMemorySegment(S, w, w6 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a06 = u0.fma(v6, a06);
            FloatVector v7 = ((IntVector) ShortVector.fromMemorySegment(S, w, w7 + wb, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            a07 = u0.fma(v7, a07);
        }
        a00.intoArray(lanes, at + 0 * L); a01.intoArray(lanes, at + 1 * L); a02.intoArray(lanes, at + 2 * L); a03.intoArray(lanes, at + 3 * L);
        a04.intoArray(lanes, at + 4 * L); a05.intoArray(lanes, at + 5 * L); a06.intoArray(lanes, at + 6 * L); a07.intoArray(lanes, at + 7 * L);
    }
}
