package dev.tandem.runtime.quant;

import dev.tandem.runtime.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The decoding of llama.cpp's block formats ({@link DType#Q8_0}, {@link DType#Q4_0}, {@link DType#Q4_K},
 * {@link DType#Q6_K}), in plain scalar Java: the reference every quantized kernel is tested against, and
 * what reads a single value or an embedding row. Layouts as ggml's {@code block_q8_0}, {@code block_q4_0},
 * {@code block_q4_K} and {@code block_q6_K} (little-endian, no padding); each value is computed in float in
 * the order ggml's {@code dequantize_row_*} computes it (as the C is written, with no multiply-add contracted).
 *
 * <p>{@link #quantize} writes blocks: Q8_0 and Q4_0 bit for bit as ggml's {@code quantize_row_q8_0_ref} and
 * {@code quantize_row_q4_0_ref}; Q4_K and Q6_K with the scale searches of {@code quantize_row_q4_K_ref}
 * ({@code make_qkx2_quants}) and {@code quantize_row_q6_K_ref} ({@code make_qx_quants}), transcribed operation for
 * operation in float (ggml's C may be compiled with multiply-adds contracted, so a K-quant block can differ from
 * llama.cpp's in a rounding; it is a valid block of the same search either way).
 */
public final class QuantBlocks {

    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    private QuantBlocks() {
    }

    /** The value at element {@code index} of a row-major run of {@code type} blocks starting at byte 0 of {@code seg}. */
    public static float read(DType type, MemorySegment seg, long index) {
        int per = type.blockElements();
        float[] block = new float[per];
        dequantizeBlock(type, seg, index / per * type.blockBytes(), block, 0);
        return block[(int) (index % per)];
    }

    /**
     * Decodes {@code count} values (a whole number of blocks) starting at byte {@code off} of {@code seg} into
     * {@code out[outOff ...]}.
     */
    public static void dequantize(DType type, MemorySegment seg, long off, float[] out, int outOff, int count) {
        int per = type.blockElements();
        if (count % per != 0) {
            throw new IllegalArgumentException(count + " values are not a whole number of " + type.lowerName() + " blocks");
        }
        for (int b = 0; b < count / per; b++) {
            dequantizeBlock(type, seg, off + (long) b * type.blockBytes(), out, outOff + b * per);
        }
    }

    /**
     * The integer quant of element {@code i} of the Q8_0 or Q4_0 row that starts at byte {@code rowOff}: q for Q8_0,
     * q − 8 for Q4_0, so that the element is {@code quant · blockScale} exactly (the kernels' factored dot, which sums
     * quant · x over a block before it multiplies by the scale).
     */
    public static int quant(DType type, MemorySegment seg, long rowOff, int i) {
        return switch (type) {
            case Q8_0 -> seg.get(ValueLayout.JAVA_BYTE, rowOff + 34L * (i >>> 5) + 2 + (i & 31));
            case Q4_0 -> {
                int q = u8(seg, rowOff + 18L * (i >>> 5) + 2 + (i & 15));
                yield ((i & 31) < 16 ? q & 0xf : q >>> 4) - 8;
            }
            default -> throw new IllegalArgumentException(type.lowerName() + " has no single block scale");
        };
    }

    /** Block {@code b}'s scale d of the Q8_0 or Q4_0 row that starts at byte {@code rowOff}, as a float (exact). */
    public static float blockScale(DType type, MemorySegment seg, long rowOff, int b) {
        return switch (type) {
            case Q8_0 -> half(seg, rowOff + 34L * b);
            case Q4_0 -> half(seg, rowOff + 18L * b);
            default -> throw new IllegalArgumentException(type.lowerName() + " has no single block scale");
        };
    }

    /**
     * Element {@code i} of the row of {@code type} blocks that starts at byte {@code rowOff}: the float
     * {@link #dequantizeBlock} gives it, computed alone (the scalar kernels' weight read).
     */
    public static float element(DType type, MemorySegment seg, long rowOff, int i) {
        switch (type) {
            case Q8_0 -> {
                long off = rowOff + 34L * (i >>> 5);
                return seg.get(ValueLayout.JAVA_BYTE, off + 2 + (i & 31)) * half(seg, off);
            }
            case Q4_0 -> {
                long off = rowOff + 18L * (i >>> 5);
                int j = i & 31;
                int q = u8(seg, off + 2 + (j & 15));
                return ((j < 16 ? q & 0xf : q >>> 4) - 8) * half(seg, off);
            }
            case Q4_K -> {
                long off = rowOff + 144L * (i >>> 8);
                int e = i & 255, g = e >>> 6, within = e & 63, is = 2 * g + (within >>> 5);
                int q = u8(seg, off + 16 + 32L * g + (within & 31));
                float d1 = half(seg, off) * q4kScale(seg, off + 4, is), m1 = half(seg, off + 2) * q4kMin(seg, off + 4, is);
                return d1 * (within < 32 ? q & 0xf : q >>> 4) - m1;
            }
            case Q6_K -> {
                long off = rowOff + 210L * (i >>> 8);
                int e = i & 255, n = e >>> 7, quarter = (e & 127) >>> 5, l = e & 31;
                long ql = off + 64L * n, qh = off + 128 + 32L * n, sc = off + 192 + 8L * n;
                int lo = u8(seg, ql + l + (quarter & 1) * 32);
                lo = quarter < 2 ? lo & 0xf : lo >>> 4;
                int q = (lo | ((u8(seg, qh + l) >>> (2 * quarter)) & 3) << 4) - 32;
                return half(seg, off + 208) * seg.get(ValueLayout.JAVA_BYTE, sc + l / 16 + 2 * quarter) * q;
            }
            default -> throw new IllegalArgumentException(type.lowerName() + " is not a block format");
        }
    }

    /** Decodes the one block at byte {@code off} into {@code out[outOff ... outOff + blockElements)}. */
    public static void dequantizeBlock(DType type, MemorySegment seg, long off, float[] out, int outOff) {
        switch (type) {
            case Q8_0 -> q8_0(seg, off, out, outOff);
            case Q4_0 -> q4_0(seg, off, out, outOff);
            case Q4_K -> q4_K(seg, off, out, outOff);
            case Q6_K -> q6_K(seg, off, out, outOff);
            default -> throw new IllegalArgumentException(type.lowerName() + " is not a block format");
        }
    }

    /**
     * Quantizes {@code src[srcOff ... srcOff + count)} ({@code count} a whole number of blocks) into blocks of
     * {@code type} written at byte {@code dstOff} of {@code dst}: {@code type.bytesFor(count)} bytes. A row of a
     * quantized weight tensor is one such call (rows are whole blocks).
     *
     * @throws IllegalArgumentException when a value is NaN or infinite, when a block's values are too large for its
     *                                  f16 scale, when {@code count} is not a whole number of blocks, or when
     *                                  {@code type} is not a block format
     */
    public static void quantize(DType type, float[] src, int srcOff, int count, MemorySegment dst, long dstOff) {
        if (!type.isQuantized()) {
            throw new IllegalArgumentException(type.lowerName() + " is not a block format");
        }
        int per = type.blockElements();
        if (count % per != 0) {
            throw new IllegalArgumentException(count + " values are not a whole number of " + type.lowerName() + " blocks ("
                    + per + " values each)");
        }
        for (int i = srcOff; i < srcOff + count; i++) {
            if (!Float.isFinite(src[i])) {
                throw new IllegalArgumentException("cannot quantize value " + (i - srcOff) + " (" + src[i] + ") to "
                        + type.lowerName() + ": block formats hold finite values only");
            }
        }
        float limit = switch (type) {
            // The largest magnitude whose block scale fits f16 (65504): d = amax/127, amax/8, about amax/63 for
            // Q4_K's min, amax/(32·128) for Q6_K (its searches square and cube values, so they must stay far from
            // float's range too).
            case Q8_0 -> 65504f * 127;
            case Q4_0 -> 65504f * 8;
            case Q4_K -> 65504f * 63;
            default -> 65504f * 127 * 31;
        };
        for (int b = 0; b < count / per; b++) {
            int from = srcOff + b * per;
            long at = dstOff + (long) b * type.blockBytes();
            for (int j = from; j < from + per; j++) {
                if (Math.abs(src[j]) > limit) {
                    scale(Float.POSITIVE_INFINITY, type, src, from);
                }
            }
            switch (type) {
                case Q8_0 -> quantizeQ8_0(src, from, dst, at);
                case Q4_0 -> quantizeQ4_0(src, from, dst, at);
                case Q4_K -> quantizeQ4_K(src, from, dst, at);
                case Q6_K -> quantizeQ6_K(src, from, dst, at);
                default -> throw new AssertionError(type);
            }
        }
    }

    /** The f16 bits of scale {@code d}, refusing one that overflows f16 (values too large for the format). */
    private static short scale(float d, DType type, float[] src, int from) {
        short h = Float.floatToFloat16(d);
        if (Float.isInfinite(Float.float16ToFloat(h))) {
            float amax = 0;
            for (int j = 0; j < type.blockElements(); j++) {
                amax = Math.max(amax, Math.abs(src[from + j]));
            }
            throw new IllegalArgumentException("a " + type.lowerName() + " block with values up to " + amax
                    + " in magnitude needs a scale beyond f16's range (65504)");
        }
        return h;
    }

    /** C's {@code roundf}: to nearest, halves away from zero (exact: a float plus 0.5 is exact in double). */
    private static int roundf(float v) {
        double r = Math.floor(Math.abs((double) v) + 0.5);
        return (int) (v < 0 ? -r : r);
    }

    /** ggml's {@code nearest_int}: round to nearest, ties to even, through the float's bits (|v| ≤ 4194303). */
    static int nearestInt(float v) {
        float val = v + 12582912.f;
        return (Float.floatToRawIntBits(val) & 0x007fffff) - 0x00400000;
    }

    private static void quantizeQ8_0(float[] x, int from, MemorySegment y, long at) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = Math.max(amax, Math.abs(x[from + j]));
        }
        float d = amax / ((1 << 7) - 1);
        float id = d != 0 ? 1.0f / d : 0.0f;
        y.set(I16, at, scale(d, DType.Q8_0, x, from));
        for (int j = 0; j < 32; j++) {
            y.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) roundf(x[from + j] * id));
        }
    }

    private static void quantizeQ4_0(float[] x, int from, MemorySegment y, long at) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++) {
            float v = x[from + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = max / -8;
        float id = d != 0 ? 1.0f / d : 0.0f;
        y.set(I16, at, scale(d, DType.Q4_0, x, from));
        for (int j = 0; j < 16; j++) {
            float x0 = x[from + j] * id;
            float x1 = x[from + 16 + j] * id;
            int xi0 = Math.min(15, (byte) (int) (x0 + 8.5f));
            int xi1 = Math.min(15, (byte) (int) (x1 + 8.5f));
            y.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) (xi0 | (xi1 << 4)));
        }
    }

    private static final float GROUP_MAX_EPS = 1e-15f;

    /**
     * ggml's {@code make_qkx2_quants}: an affine scale and min for {@code n} values of {@code x[from ...]} with
     * levels 0..nmax, searched over {@code nstep + 1} candidate scales by weighted squared error; writes the levels
     * to {@code L[lOff ...]}, the min (negated, ≥ 0) to {@code theMin[mOff]}, and returns the scale.
     */
    private static float makeQkx2Quants(int n, int nmax, float[] x, int from, float[] weights, byte[] L, int lOff,
                                        float[] theMin, int mOff, byte[] laux, float rmin, float rdelta, int nstep) {
        float min = x[from], max = x[from];
        float sumW = weights[0];
        float sumX = sumW * x[from];
        for (int i = 1; i < n; ++i) {
            if (x[from + i] < min) min = x[from + i];
            if (x[from + i] > max) max = x[from + i];
            float w = weights[i];
            sumW += w;
            sumX += w * x[from + i];
        }
        if (min > 0) min = 0;
        if (max == min) {
            for (int i = 0; i < n; ++i) L[lOff + i] = 0;
            theMin[mOff] = -min;
            return 0.f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestMad = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearestInt(iscale * (x[from + i] - min));
            L[lOff + i] = (byte) Math.max(0, Math.min(nmax, l));
            float diff = scale * L[lOff + i] + min - x[from + i];
            diff = diff * diff;
            bestMad += weights[i] * diff;
        }
        for (int is = 0; is <= nstep; ++is) {
            iscale = (rmin + rdelta * is + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXl = 0;
            for (int i = 0; i < n; ++i) {
                int l = nearestInt(iscale * (x[from + i] - min));
                l = Math.max(0, Math.min(nmax, l));
                laux[i] = (byte) l;
                float w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * x[from + i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0) {
                float thisScale = (sumW * sumXl - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXl) / D;
                if (thisMin > 0) {
                    thisMin = 0;
                    thisScale = sumXl / sumL2;
                }
                float mad = 0;
                for (int i = 0; i < n; ++i) {
                    float diff = thisScale * laux[i] + thisMin - x[from + i];
                    diff = diff * diff;
                    mad += weights[i] * diff;
                }
                if (mad < bestMad) {
                    System.arraycopy(laux, 0, L, lOff, n);
                    bestMad = mad;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin[mOff] = -min;
        return scale;
    }

    private static void quantizeQ4_K(float[] x, int from, MemorySegment y, long at) {
        byte[] L = new byte[256];
        byte[] laux = new byte[32];
        float[] weights = new float[32];
        float[] mins = new float[8];
        float[] scales = new float[8];
        float maxScale = 0, maxMin = 0;
        for (int j = 0; j < 8; ++j) {
            float sumX2 = 0;
            for (int l = 0; l < 32; ++l) sumX2 += x[from + 32 * j + l] * x[from + 32 * j + l];
            float avX = (float) Math.sqrt(sumX2 / 32);
            for (int l = 0; l < 32; ++l) weights[l] = avX + Math.abs(x[from + 32 * j + l]);
            scales[j] = makeQkx2Quants(32, 15, x, from + 32 * j, weights, L, 32 * j, mins, j, laux, -1.f, 0.1f, 20);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        float invScale = maxScale > 0 ? 63.f / maxScale : 0.f;
        float invMin = maxMin > 0 ? 63.f / maxMin : 0.f;
        byte[] sc = new byte[12];
        for (int j = 0; j < 8; ++j) {
            int ls = Math.min(63, nearestInt(invScale * scales[j]) & 0xff);
            int lm = Math.min(63, nearestInt(invMin * mins[j]) & 0xff);
            if (j < 4) {
                sc[j] = (byte) ls;
                sc[j + 4] = (byte) lm;
            } else {
                sc[j + 4] = (byte) ((ls & 0xF) | ((lm & 0xF) << 4));
                sc[j - 4] |= (byte) ((ls >> 4) << 6);
                sc[j] |= (byte) ((lm >> 4) << 6);
            }
        }
        short dBits = scale(maxScale / 63.f, DType.Q4_K, x, from);
        short dminBits = scale(maxMin / 63.f, DType.Q4_K, x, from);
        y.set(I16, at, dBits);
        y.set(I16, at + 2, dminBits);
        MemorySegment.copy(sc, 0, y, ValueLayout.JAVA_BYTE, at + 4, 12);
        float dAll = Float.float16ToFloat(dBits), dminAll = Float.float16ToFloat(dminBits);
        for (int j = 0; j < 8; ++j) {
            float d = dAll * q4kScale(y, at + 4, j);
            if (d == 0) continue;
            float dm = dminAll * q4kMin(y, at + 4, j);
            for (int ii = 0; ii < 32; ++ii) {
                int l = nearestInt((x[from + 32 * j + ii] + dm) / d);
                L[32 * j + ii] = (byte) Math.max(0, Math.min(15, l));
            }
        }
        long q = at + 16;
        for (int j = 0; j < 256; j += 64) {
            for (int l = 0; l < 32; ++l) {
                y.set(ValueLayout.JAVA_BYTE, q + l, (byte) (L[j + l] | (L[j + l + 32] << 4)));
            }
            q += 32;
        }
    }

    /**
     * ggml's {@code make_qx_quants} with {@code rmse_type} 1 (weights x²) and no importance: a symmetric scale for
     * {@code n} values with levels −nmax..nmax−1, the best of 19 candidates by weighted squared error; writes the
     * levels plus nmax to {@code L[lOff ...]} and returns the scale.
     */
    private static float makeQxQuants(int n, int nmax, float[] x, int from, byte[] L, int lOff) {
        float max = 0, amax = 0;
        for (int i = 0; i < n; ++i) {
            float ax = Math.abs(x[from + i]);
            if (ax > amax) {
                amax = ax;
                max = x[from + i];
            }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int i = 0; i < n; ++i) L[lOff + i] = 0;
            return 0.f;
        }
        float iscale = -nmax / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearestInt(iscale * x[from + i]);
            l = Math.max(-nmax, Math.min(nmax - 1, l));
            L[lOff + i] = (byte) (l + nmax);
            float w = x[from + i] * x[from + i];
            sumlx += w * x[from + i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
        float best = scale * sumlx;
        for (int is = -9; is <= 9; ++is) {
            if (is == 0) continue;
            iscale = -(nmax + 0.1f * is) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; ++i) {
                int l = nearestInt(iscale * x[from + i]);
                l = Math.max(-nmax, Math.min(nmax - 1, l));
                float w = x[from + i] * x[from + i];
                sumlx += w * x[from + i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2) {
                for (int i = 0; i < n; ++i) {
                    int l = nearestInt(iscale * x[from + i]);
                    L[lOff + i] = (byte) (nmax + Math.max(-nmax, Math.min(nmax - 1, l)));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    private static void quantizeQ6_K(float[] x, int from, MemorySegment y, long at) {
        byte[] L = new byte[256];
        float[] scales = new float[16];
        float maxScale = 0, maxAbsScale = 0;
        for (int ib = 0; ib < 16; ++ib) {
            float scale = makeQxQuants(16, 32, x, from + 16 * ib, L, 16 * ib);
            scales[ib] = scale;
            float abs = Math.abs(scale);
            if (abs > maxAbsScale) {
                maxAbsScale = abs;
                maxScale = scale;
            }
        }
        if (maxAbsScale < GROUP_MAX_EPS) {
            y.asSlice(at, 210).fill((byte) 0);
            return;
        }
        float iscale = -128.f / maxScale;
        short dBits = scale(1 / iscale, DType.Q6_K, x, from);
        y.set(I16, at + 208, dBits);
        byte[] sc = new byte[16];
        for (int ib = 0; ib < 16; ++ib) {
            sc[ib] = (byte) Math.min(127, nearestInt(iscale * scales[ib]));
        }
        MemorySegment.copy(sc, 0, y, ValueLayout.JAVA_BYTE, at + 192, 16);
        float dAll = Float.float16ToFloat(dBits);
        for (int j = 0; j < 16; ++j) {
            float d = dAll * sc[j];
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearestInt(x[from + 16 * j + ii] / d);
                l = Math.max(-32, Math.min(31, l));
                L[16 * j + ii] = (byte) (l + 32);
            }
        }
        long ql = at, qh = at + 128;
        for (int j = 0; j < 256; j += 128) {
            for (int l = 0; l < 32; ++l) {
                int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                y.set(ValueLayout.JAVA_BYTE, ql + l, (byte) (q1 | (q3 << 4)));
                y.set(ValueLayout.JAVA_BYTE, ql + l + 32, (byte) (q2 | (q4 << 4)));
                y.set(ValueLayout.JAVA_BYTE, qh + l, (byte) ((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2)
                        | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6)));
            }
            ql += 64;
            qh += 32;
        }
    }

    static float half(MemorySegment seg, long off) {
        return Float.float16ToFloat(seg.get(I16, off));
    }

    private static int u8(MemorySegment seg, long off) {
        return seg.get(ValueLayout.JAVA_BYTE, off) & 0xff;
    }

    private static void q8_0(MemorySegment seg, long off, float[] out, int o) {
        float d = half(seg, off);
        for (int j = 0; j < 32; j++) {
            out[o + j] = seg.get(ValueLayout.JAVA_BYTE, off + 2 + j) * d;
        }
    }

    private static void q4_0(MemorySegment seg, long off, float[] out, int o) {
        float d = half(seg, off);
        for (int j = 0; j < 16; j++) {
            int q = u8(seg, off + 2 + j);
            out[o + j] = ((q & 0xf) - 8) * d;
            out[o + j + 16] = ((q >>> 4) - 8) * d;
        }
    }

    /**
     * Sub-block {@code j}'s 6-bit scale (low int) and min (high int) of a Q4_K block whose twelve scale bytes start
     * at {@code s}: ggml's {@code get_scale_min_k4}.
     */
    public static int q4kScale(MemorySegment seg, long s, int j) {
        return j < 4 ? u8(seg, s + j) & 63 : (u8(seg, s + j + 4) & 0xf) | ((u8(seg, s + j - 4) >>> 6) << 4);
    }

    /** Sub-block {@code j}'s 6-bit min of a Q4_K block (see {@link #q4kScale}). */
    public static int q4kMin(MemorySegment seg, long s, int j) {
        return j < 4 ? u8(seg, s + j + 4) & 63 : (u8(seg, s + j + 4) >>> 4) | ((u8(seg, s + j) >>> 6) << 4);
    }

    private static void q4_K(MemorySegment seg, long off, float[] out, int o) {
        float d = half(seg, off), dmin = half(seg, off + 2);
        long scales = off + 4, qs = off + 16;
        for (int j = 0, is = 0; j < 256; j += 64, is += 2) {
            float d1 = d * q4kScale(seg, scales, is), m1 = dmin * q4kMin(seg, scales, is);
            float d2 = d * q4kScale(seg, scales, is + 1), m2 = dmin * q4kMin(seg, scales, is + 1);
            for (int l = 0; l < 32; l++) {
                int q = u8(seg, qs + l);
                out[o + j + l] = d1 * (q & 0xf) - m1;
                out[o + j + 32 + l] = d2 * (q >>> 4) - m2;
            }
            qs += 32;
        }
    }

    private static void q6_K(MemorySegment seg, long off, float[] out, int o) {
        long ql = off, qh = off + 128, sc = off + 192;
        float d = half(seg, off + 208);
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int h = u8(seg, qh + l);
                int lo0 = u8(seg, ql + l), lo1 = u8(seg, ql + l + 32);
                int q1 = ((lo0 & 0xf) | ((h & 3) << 4)) - 32;
                int q2 = ((lo1 & 0xf) | (((h >>> 2) & 3) << 4)) - 32;
                int q3 = ((lo0 >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
                int q4 = ((lo1 >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
                out[o + n + l] = d * seg.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                out[o + n + l + 32] = d * seg.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                out[o + n + l + 64] = d * seg.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                out[o + n + l + 96] = d * seg.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
            }
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}
