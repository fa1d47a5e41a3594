package dev.tandem.transformer.weights;

import java.util.List;
import java.util.Objects;

/**
 * One GGUF metadata value with its type, so that a value read is written back as the same type (llama.cpp
 * reads {@code general.alignment} only as a u32, {@code tokenizer.ggml.token_type} only as i32s, …). Integers of
 * every width are held in a {@code long} (a u64 above {@link Long#MAX_VALUE} as its two's-complement bits), f32 in a
 * {@code Float}, f64 in a {@code Double}; an array holds its elements, all of {@link #elementType()}.
 *
 * @param type        the value's own type
 * @param value       {@code Long}, {@code Float}, {@code Double}, {@code Boolean}, {@code String}, or a {@code List<GgufValue>}
 * @param elementType the type of every element of an array; null for a scalar
 */
public record GgufValue(Type type, Object value, Type elementType) {

    /** GGUF's value types, by their id in the file. */
    public enum Type {
        UINT8(1), INT8(1), UINT16(2), INT16(2), UINT32(4), INT32(4), FLOAT32(4), BOOL(1), STRING(8), ARRAY(12),
        UINT64(8), INT64(8), FLOAT64(8);

        /** The name in messages: {@code u32}, {@code f32}, {@code string}, … */
        public String shortName() {
            return switch (this) {
                case UINT8 -> "u8";
                case INT8 -> "i8";
                case UINT16 -> "u16";
                case INT16 -> "i16";
                case UINT32 -> "u32";
                case INT32 -> "i32";
                case FLOAT32 -> "f32";
                case UINT64 -> "u64";
                case INT64 -> "i64";
                case FLOAT64 -> "f64";
                case BOOL -> "bool";
                case STRING -> "string";
                case ARRAY -> "array";
            };
        }

        /** The fewest bytes a value of this type takes in a file (a string: its length; an array: its header). */
        final int minBytes;

        Type(int minBytes) {
            this.minBytes = minBytes;
        }

        public int id() {
            return ordinal();
        }

        /** The type with id {@code id}, or null when GGUF has none. */
        public static Type ofId(long id) {
            return id >= 0 && id < values().length ? values()[(int) id] : null;
        }

        boolean isInteger() {
            return this != FLOAT32 && this != FLOAT64 && this != BOOL && this != STRING && this != ARRAY;
        }
    }

    public GgufValue {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(value, "value");
        boolean fits = switch (type) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> value instanceof Long;
            case FLOAT32 -> value instanceof Float;
            case FLOAT64 -> value instanceof Double;
            case BOOL -> value instanceof Boolean;
            case STRING -> value instanceof String;
            case ARRAY -> value instanceof List<?> && elementType != null;
        };
        if (!fits || (type != Type.ARRAY && elementType != null)) {
            throw new IllegalArgumentException("a " + type + " value cannot hold " + value.getClass().getSimpleName());
        }
        if (type == Type.ARRAY) {
            List<?> list = List.copyOf((List<?>) value);
            for (Object o : list) {
                if (!(o instanceof GgufValue g) || g.type != elementType) {
                    throw new IllegalArgumentException("an array of " + elementType + " holds " + o);
                }
            }
            value = list;
        }
    }

    public static GgufValue u8(int v) {
        return new GgufValue(Type.UINT8, (long) (v & 0xff), null);
    }

    public static GgufValue i8(int v) {
        return new GgufValue(Type.INT8, (long) (byte) v, null);
    }

    public static GgufValue u16(int v) {
        return new GgufValue(Type.UINT16, (long) (v & 0xffff), null);
    }

    public static GgufValue i16(int v) {
        return new GgufValue(Type.INT16, (long) (short) v, null);
    }

    public static GgufValue u32(long v) {
        return new GgufValue(Type.UINT32, v & 0xffffffffL, null);
    }

    public static GgufValue i32(int v) {
        return new GgufValue(Type.INT32, (long) v, null);
    }

    public static GgufValue u64(long v) {
        return new GgufValue(Type.UINT64, v, null);
    }

    public static GgufValue i64(long v) {
        return new GgufValue(Type.INT64, v, null);
    }

    public static GgufValue f32(float v) {
        return new GgufValue(Type.FLOAT32, v, null);
    }

    public static GgufValue f64(double v) {
        return new GgufValue(Type.FLOAT64, v, null);
    }

    public static GgufValue bool(boolean v) {
        return new GgufValue(Type.BOOL, v, null);
    }

    public static GgufValue string(String v) {
        return new GgufValue(Type.STRING, v, null);
    }

    public static GgufValue array(Type elementType, List<GgufValue> elements) {
        return new GgufValue(Type.ARRAY, elements, elementType);
    }

    public static GgufValue strings(List<String> values) {
        return array(Type.STRING, values.stream().map(GgufValue::string).toList());
    }

    public static GgufValue i32s(int[] values) {
        return array(Type.INT32, java.util.Arrays.stream(values).mapToObj(GgufValue::i32).toList());
    }

    public static GgufValue f32s(float[] values) {
        GgufValue[] out = new GgufValue[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = f32(values[i]);
        }
        return array(Type.FLOAT32, List.of(out));
    }

    /** An integer of any width, or null when this is not one. */
    public Long integerOrNull() {
        return type.isInteger() ? (Long) value : null;
    }

    /** A number of any type as a double, or null when this is not a number. */
    public Double numberOrNull() {
        return switch (type) {
            case FLOAT32 -> (double) (Float) value;
            case FLOAT64 -> (Double) value;
            case UINT64 -> {
                long v = (Long) value;
                yield v >= 0 ? (double) v : (v >>> 1) * 2.0 + (v & 1); // above Long.MAX_VALUE
            }
            default -> type.isInteger() ? (double) (Long) value : null;
        };
    }

    /** The elements of an array (empty for a scalar). */
    @SuppressWarnings("unchecked")
    public List<GgufValue> elements() {
        return type == Type.ARRAY ? (List<GgufValue>) value : List.of();
    }

    /** For messages: {@code u32 32}, {@code string "llama"}, {@code array of 32000 string}. */
    public String describe() {
        return switch (type) {
            case ARRAY -> "an array of " + elements().size() + " " + elementType.shortName();
            case STRING -> "the string \"" + value + "\"";
            case UINT64 -> "u64 " + Long.toUnsignedString((Long) value);
            default -> type.shortName() + " " + value;
        };
    }
}
