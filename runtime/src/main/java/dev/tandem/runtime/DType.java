package dev.tandem.runtime;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;

/** Element types Tandem stores: weights in any of them, activations in {@link #F32}. */
public enum DType {
    F32(4),
    BF16(2),
    F16(2);

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
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

    /** Reads element {@code index} (not byte offset) of a little-endian segment of this type as a float. */
    public float read(MemorySegment segment, long index) {
        return switch (this) {
            case F32 -> segment.getAtIndex(F32_LE, index);
            case BF16 -> bf16ToFloat(segment.getAtIndex(I16_LE, index));
            case F16 -> Float.float16ToFloat(segment.getAtIndex(I16_LE, index));
        };
    }

    /** Writes element {@code index} of a little-endian segment of this type (rounding to nearest even). */
    public void write(MemorySegment segment, long index, float value) {
        switch (this) {
            case F32 -> segment.setAtIndex(F32_LE, index, value);
            case BF16 -> segment.setAtIndex(I16_LE, index, floatToBf16(value));
            case F16 -> segment.setAtIndex(I16_LE, index, Float.floatToFloat16(value));
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
