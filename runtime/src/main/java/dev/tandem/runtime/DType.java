package dev.tandem.runtime;

import dev.tandem.runtime.quant.QuantBlocks;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;

/**
 * Element types Tandem stores: weights in any of them, activations in {@link #F32}. The quantized types
 * ({@link #Q8_0}, {@link #Q4_0}, {@link #Q4_K}, {@link #Q6_K}, llama.cpp's block formats) hold a row as
 * blocks of {@link #blockElements()} values in {@link #blockBytes()} bytes each; a tensor of them has rows
 * of a whole number of blocks, and its memory is sized by {@link #bytesFor}, never by an element size.
 */
public enum DType {
    F32(4, 1),
    BF16(2, 1),
    F16(2, 1),
    /** 32 values: an f16 scale d and 32 int8 q; value = d·q. */
    Q8_0(34, 32),
    /** 32 values: an f16 scale d and 16 bytes of 4-bit q (element j in the low nibble of byte j, j + 16 in the high); value = d·(q − 8). */
    Q4_0(18, 32),
    /** 256 values in 8 sub-blocks of 32: f16 d and dmin, twelve bytes of 6-bit sub-block scales and mins, 128 bytes of 4-bit q; value = d·sc·q − dmin·m. */
    Q4_K(144, 256),
    /** 256 values in 16 sub-blocks of 16: 128 bytes of low 4 bits, 64 of high 2 bits, 16 int8 scales, an f16 d; value = d·sc·(q − 32). */
    Q6_K(210, 256);

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final int blockBytes;
    private final int blockElements;

    DType(int blockBytes, int blockElements) {
        this.blockBytes = blockBytes;
        this.blockElements = blockElements;
    }

    /** True for the block formats, whose elements have no size of their own. */
    public boolean isQuantized() {
        return blockElements > 1;
    }

    /**
     * Bytes of one element.
     *
     * @throws IllegalStateException for a quantized type ({@link #bytesFor} sizes those)
     */
    public int byteSize() {
        if (blockElements > 1) {
            throw new IllegalStateException(lowerName() + " stores blocks of " + blockElements + " values, not elements of their own size");
        }
        return blockBytes;
    }

    /** Bytes of one block (of one element for the unquantized types). */
    public int blockBytes() {
        return blockBytes;
    }

    /** Values per block: 1 for f32, bf16 and f16. */
    public int blockElements() {
        return blockElements;
    }

    /**
     * Bytes that {@code elements} values take.
     *
     * @throws IllegalArgumentException when a quantized type's count is not a whole number of blocks
     * @throws ArithmeticException      when the size does not fit in a long
     */
    public long bytesFor(long elements) {
        if (elements % blockElements != 0) {
            throw new IllegalArgumentException(elements + " values are not a whole number of " + lowerName() + " blocks ("
                    + blockElements + " values each)");
        }
        return Math.multiplyExact(elements / blockElements, (long) blockBytes);
    }

    /** The name safetensors uses ("F32", "BF16", "F16"), or null when the name is not one of ours. */
    public static DType fromSafetensorsName(String name) {
        return switch (name) {
            case "F32" -> F32;
            case "BF16" -> BF16;
            case "F16" -> F16;
            default -> null;
        };
    }

    /**
     * Reads element {@code index} (not byte offset) of a little-endian segment of this type as a float; a
     * quantized type decodes the element's block ({@link QuantBlocks}), so reading many elements this way is slow.
     */
    public float read(MemorySegment segment, long index) {
        return switch (this) {
            case F32 -> segment.getAtIndex(F32_LE, index);
            case BF16 -> bf16ToFloat(segment.getAtIndex(I16_LE, index));
            case F16 -> Float.float16ToFloat(segment.getAtIndex(I16_LE, index));
            case Q8_0, Q4_0, Q4_K, Q6_K -> QuantBlocks.read(this, segment, index);
        };
    }

    /**
     * Writes element {@code index} of a little-endian segment of this type (rounding to nearest even).
     *
     * @throws UnsupportedOperationException for a quantized type (blocks are written whole, by {@link QuantBlocks#quantize})
     */
    public void write(MemorySegment segment, long index, float value) {
        switch (this) {
            case F32 -> segment.setAtIndex(F32_LE, index, value);
            case BF16 -> segment.setAtIndex(I16_LE, index, floatToBf16(value));
            case F16 -> segment.setAtIndex(I16_LE, index, Float.floatToFloat16(value));
            case Q8_0, Q4_0, Q4_K, Q6_K -> throw new UnsupportedOperationException(
                    lowerName() + " values are written a whole block at a time (QuantBlocks.quantize), not one by one");
        }
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** float → bfloat16 with round-to-nearest-even, NaN kept a (quiet) NaN. */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    public String lowerName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
