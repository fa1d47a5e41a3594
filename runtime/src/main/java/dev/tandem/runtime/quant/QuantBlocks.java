package dev.tandem.runtime.quant;

import dev.tandem.runtime.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The decoding of llama.cpp's block formats ({@link DType#Q8_0}, {@link DType#Q4_0}, {@link DType#Q4_K},
 * {@link DType#Q6_K}), in plain scalar Java: the reference every quantized kernel is tested against, and
 * what reads a single value or an embedding row. Layouts as ggml's {@code block_q8_0}, {@code block_q4_0},
 * {@code block_q4_K} and {@code block_q6_K} (little-endian, no padding); each value is computed in float in
 * the order ggml's {@code dequantize_row_*} computes it.
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
