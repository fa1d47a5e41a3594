package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.quant.QuantBlocks;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * {@link Kernels} in plain Java, for JVMs without the Vector API. It emulates the vector lanes so
 * that its results equal {@link VectorKernels}' bit for bit at the same lane count.
 */
final class ScalarKernels implements Kernels {
    static final int DEFAULT_LANES = 8;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final int lanes;

    ScalarKernels(int lanes) {
        if (lanes < 1 || Integer.bitCount(lanes) != 1) {
            throw new IllegalArgumentException("lane count must be a power of two, got " + lanes);
        }
        this.lanes = lanes;
    }

    @Override
    public int lanes() {
        return lanes;
    }

    @Override
    public float streamSum(MemorySegment seg, long off, long bytes) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        long end = off + bytes;
        long p = off;
        for (; p <= end - 16; p += 16) {
            s0 += seg.get(F32, p);
            s1 += seg.get(F32, p + 4);
            s2 += seg.get(F32, p + 8);
            s3 += seg.get(F32, p + 12);
        }
        for (; p < end; p += 4) {
            s0 += seg.get(F32, p);
        }
        return (s0 + s1) + (s2 + s3);
    }

    @Override
    public float fmaChains(float seed, long steps) {
        float[] acc = new float[FMA_CHAINS * lanes];
        for (int j = 0; j < acc.length; j++) {
            acc[j] = seed + j / lanes; // chain j / lanes, all of its lanes alike, as the vector kernel's
        }
        float a = 0.999f, b = 1e-3f;
        for (long s = 0; s < steps; s++) {
            for (int j = 0; j < acc.length; j++) {
                acc[j] = Math.fma(acc[j], a, b);
            }
        }
        float sum = acc[0];
        for (int c = 1; c < FMA_CHAINS; c++) {
            sum += acc[c * lanes];
        }
        return sum;
    }

    /** Weight {@code i} of the row at byte {@code wOff}: f32, bf16, or a block format's value (QuantBlocks). */
    static float weight(MemorySegment w, long wOff, DType wt, int i) {
        return switch (wt) {
            case F32 -> w.get(F32, wOff + 4L * i);
            case BF16 -> DType.bf16ToFloat(w.get(I16, wOff + 2L * i));
            case Q8_0, Q4_0, Q4_K, Q6_K -> QuantBlocks.element(wt, w, wOff, i);
            case F16 -> throw new IllegalArgumentException("f16 weights are widened by the caller, not read by the kernels");
        };
    }

    /** The halving tree of VectorKernels.hsum: lane j += lane j + h, for h = lanes/2 .. 1; returns lane 0 (a is spent). */
    static float halve(float[] a) {
        for (int h = a.length / 2; h >= 1; h >>= 1) {
            for (int j = 0; j < h; j++) {
                a[j] += a[j + h];
            }
        }
        return a[0];
    }

    /** The scalar tail of the canonical dot: {@code s = fma(x[i], w[i], s)} for i in [from, k). */
    static float tail(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int from, int k, float s) {
        for (int i = from; i < k; i++) {
            s = Math.fma(x.get(F32, xOff + 4L * i), weight(w, wOff, wt, i), s);
        }
        return s;
    }

    /** Q8_0 and Q4_0: the block scale factored out of each block's sum (see {@link #accumulateScaled}). */
    static boolean scaledBlocks(DType wt) {
        return wt == DType.Q8_0 || wt == DType.Q4_0;
    }

    /**
     * The factored dot of Q8_0 and Q4_0 weights for one row and column, over blocks [kFrom/32, kTo/32) into the
     * lane accumulators {@code acc[a ... a + lanes)}: per block and lane j, p = 0, then p = fma(q, x, p) for the
     * block's elements j, j + lanes, ... in order (q the integer quant, {@link QuantBlocks#quant}), then
     * acc[a + j] = fma(p, d, acc[a + j]) with the block's scale d. Needs lanes ≤ 32 (a chunk within one block).
     */
    static void accumulateScaled(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int kFrom, int kTo,
                                 float[] acc, int a, int lanes) {
        if (lanes > 32) {
            throw new IllegalStateException(wt.lowerName() + " kernels need at most 32 lanes, not " + lanes);
        }
        for (int b = kFrom / 32, end = kTo / 32; b < end; b++) {
            float d = QuantBlocks.blockScale(wt, w, wOff, b);
            for (int j = 0; j < lanes; j++) {
                float p = 0f;
                for (int i = 32 * b + j; i < 32 * b + 32; i += lanes) {
                    p = Math.fma((float) QuantBlocks.quant(wt, w, wOff, i), x.get(F32, xOff + 4L * i), p);
                }
                acc[a + j] = Math.fma(p, d, acc[a + j]);
            }
        }
    }

    @Override
    public float dot(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k) {
        int lanes = this.lanes;
        if (scaledBlocks(wt)) {
            float[] a = new float[lanes];
            accumulateScaled(x, xOff, w, wOff, wt, 0, k - k % 32, a, 0, lanes);
            return halve(a); // k is whole blocks: no tail
        }
        float[] a = new float[lanes];
        int i = 0;
        for (; i <= k - lanes; i += lanes) {
            for (int j = 0; j < lanes; j++) {
                a[j] = Math.fma(x.get(F32, xOff + 4L * (i + j)), weight(w, wOff, wt, i + j), a[j]);
            }
        }
        return tail(x, xOff, w, wOff, wt, i, k, halve(a));
    }

    @Override
    public void dotTile(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                        DType wt, int k, float[] lanes, float[] out) {
        if (rows < 1 || rows > 4) {
            throw new IllegalArgumentException("a tile has 1 to 4 rows, not " + rows);
        }
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < 4; c++) {
                out[r * 4 + c] = dot(x, xOff + r * xStride, w, wOff + c * wStride, wt, k);
            }
        }
    }

    @Override
    public void accumulateTile8(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff,
                                long wStride, DType wt, int kFrom, int kTo, float[] acc, int at) {
        if (rows < 1 || rows > 3) {
            throw new IllegalArgumentException("an 8-column tile has 1 to 3 rows, not " + rows);
        }
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < 8; c++) {
                int a = at + (r * 8 + c) * lanes;
                long xo = xOff + r * xStride, wo = wOff + c * wStride;
                if (scaledBlocks(wt)) {
                    accumulateScaled(x, xo, w, wo, wt, kFrom, kTo, acc, a, lanes);
                    continue;
                }
                for (int i = kFrom; i < kTo; i += lanes) {
                    for (int j = 0; j < lanes; j++) {
                        acc[a + j] = Math.fma(x.get(F32, xo + 4L * (i + j)), weight(w, wo, wt, i + j), acc[a + j]);
                    }
                }
            }
        }
    }

    @Override
    public void finishTile8(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                            DType wt, int k, float[] acc, int at, float[] out) {
        int kFull = k - k % lanes;
        float[] a = new float[lanes];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < 8; c++) {
                System.arraycopy(acc, at + (r * 8 + c) * lanes, a, 0, lanes);
                out[r * 8 + c] = tail(x, xOff + r * xStride, w, wOff + c * wStride, wt, kFull, k, halve(a));
            }
        }
    }

    @Override
    public void axpy(float a, MemorySegment v, long vOff, float[] acc, int d) {
        for (int i = 0; i < d; i++) {
            acc[i] = Math.fma(a, v.get(F32, vOff + 4L * i), acc[i]);
        }
    }

    @Override
    public void axpy(float a, MemorySegment v, long vOff, DType vt, float[] acc, int d) {
        if (vt == DType.F32) {
            axpy(a, v, vOff, acc, d);
            return;
        }
        if (vt != DType.BF16) {
            throw new IllegalArgumentException("axpy reads f32 or bf16 values, not " + vt);
        }
        for (int i = 0; i < d; i++) {
            acc[i] = Math.fma(a, DType.bf16ToFloat(v.get(ValueLayout.JAVA_SHORT_UNALIGNED, vOff + 2L * i)), acc[i]);
        }
    }

    @Override
    public void layerNorm(MemorySegment x, long xOff, MemorySegment w, MemorySegment b, float eps, MemorySegment out, long outOff, int d) {
        int full = d - d % lanes;
        float x0 = x.get(F32, xOff);
        float[] a = new float[lanes];
        for (int i = 0; i < full; i += lanes) {
            for (int j = 0; j < lanes; j++) {
                a[j] += x.get(F32, xOff + 4L * (i + j)) - x0;
            }
        }
        float sum = halve(a);
        for (int i = full; i < d; i++) {
            sum += x.get(F32, xOff + 4L * i) - x0;
        }
        float mu = sum / d;
        a = new float[lanes];
        for (int i = 0; i < full; i += lanes) {
            for (int j = 0; j < lanes; j++) {
                float c = (x.get(F32, xOff + 4L * (i + j)) - x0) - mu;
                a[j] = Math.fma(c, c, a[j]);
            }
        }
        float sq = halve(a);
        for (int i = full; i < d; i++) {
            float c = (x.get(F32, xOff + 4L * i) - x0) - mu;
            sq = Math.fma(c, c, sq);
        }
        float inv = 1f / (float) Math.sqrt(sq / d + eps);
        for (int i = 0; i < d; i++) {
            float c = (x.get(F32, xOff + 4L * i) - x0) - mu;
            out.set(F32, outOff + 4L * i, Math.fma(c * inv, w.get(F32, 4L * i), b.get(F32, 4L * i)));
        }
    }

    @Override
    public void gelu(MemorySegment x, long xOff, MemorySegment out, long outOff, int count) {
        for (int i = 0; i < count; i++) {
            out.set(F32, outOff + 4L * i, FloatErf.gelu(x.get(F32, xOff + 4L * i)));
        }
    }
}
