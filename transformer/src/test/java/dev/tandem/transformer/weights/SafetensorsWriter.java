package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Test utility: writes safetensors files (and sharded indexes) from {@code name → (dtype, shape,
 * values)}, for synthetic checkpoints and, through {@link #writeRaw} and {@link #bytes}, for broken ones.
 *
 * <pre>{@code
 * Map<String, SafetensorsWriter.Spec> t = new LinkedHashMap<>();
 * t.put("model.norm.weight", SafetensorsWriter.spec(DType.BF16, new long[] {4}, 1, 2, 3, 4));
 * SafetensorsWriter.write(dir.resolve("model.safetensors"), t);
 * }</pre>
 *
 * Tensors are laid out in map order (use a {@link LinkedHashMap}), back to back from offset 0; the
 * header is padded with spaces to a multiple of 8 bytes, as the safetensors library does.
 */
public final class SafetensorsWriter {
    private SafetensorsWriter() {
    }

    /** One tensor: its dtype, shape and values (converted to the dtype, rounding to nearest even). */
    public record Spec(DType dtype, long[] shape, float[] values) {
        public Spec {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            if (n != values.length) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " holds " + n
                        + " values, got " + values.length);
            }
        }

        public int byteSize() {
            return values.length * dtype.byteSize();
        }
    }

    public static Spec spec(DType dtype, long[] shape, float... values) {
        return new Spec(dtype, shape, values);
    }

    /** An F32 tensor. */
    public static Spec f32(long[] shape, float... values) {
        return new Spec(DType.F32, shape, values);
    }

    /** A tensor of {@code shape} whose element {@code i} is {@code start + i * step}. */
    public static Spec ramp(DType dtype, long[] shape, float start, float step) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = start + i * step;
        }
        return new Spec(dtype, shape, v);
    }

    /** Writes {@code tensors} to {@code file}. */
    public static void write(Path file, Map<String, Spec> tensors) {
        write(file, tensors, Map.of());
    }

    /** Writes {@code tensors} with a {@code __metadata__} map (omitted when empty). */
    public static void write(Path file, Map<String, Spec> tensors, Map<String, String> metadata) {
        try {
            Files.write(file, bytes(tensors, metadata));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The whole file as bytes (to cut, patch or write elsewhere). */
    public static byte[] bytes(Map<String, Spec> tensors, Map<String, String> metadata) {
        return raw(headerJson(tensors, metadata), data(tensors));
    }

    /** The JSON header {@link #write} would use (before padding). */
    public static String headerJson(Map<String, Spec> tensors, Map<String, String> metadata) {
        StringBuilder h = new StringBuilder("{");
        boolean first = true;
        if (!metadata.isEmpty()) {
            h.append("\"__metadata__\":{");
            boolean f = true;
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                h.append(f ? "" : ",").append(quote(m.getKey())).append(':').append(quote(m.getValue()));
                f = false;
            }
            h.append('}');
            first = false;
        }
        long offset = 0;
        for (Map.Entry<String, Spec> e : tensors.entrySet()) {
            Spec s = e.getValue();
            long end = offset + s.byteSize();
            h.append(first ? "" : ",").append(quote(e.getKey())).append(":{\"dtype\":\"").append(s.dtype().name())
                    .append("\",\"shape\":").append(Arrays.toString(s.shape()).replace(" ", ""))
                    .append(",\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
            offset = end;
            first = false;
        }
        return h.append('}').toString();
    }

    /** The data section {@link #write} would use: values little-endian, in map order. */
    public static byte[] data(Map<String, Spec> tensors) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Spec s : tensors.values()) {
            ByteBuffer b = ByteBuffer.allocate(s.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : s.values()) {
                switch (s.dtype()) {
                    case F32 -> b.putFloat(v);
                    case BF16 -> b.putShort(DType.floatToBf16(v));
                    case F16 -> b.putShort(Float.floatToFloat16(v));
                }
            }
            out.writeBytes(b.array());
        }
        return out.toByteArray();
    }

    /** A file from any header text and data bytes: the header length is written as given, padded to 8. */
    public static byte[] raw(String headerJson, byte[] data) {
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        int padded = (header.length + 7) / 8 * 8;
        ByteBuffer b = ByteBuffer.allocate(8 + padded + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(padded);
        b.put(header);
        for (int i = header.length; i < padded; i++) {
            b.put((byte) ' ');
        }
        b.put(data);
        return b.array();
    }

    /** Writes {@link #raw} to {@code file} (for hand-made, possibly invalid headers). */
    public static void writeRaw(Path file, String headerJson, byte[] data) {
        try {
            Files.write(file, raw(headerJson, data));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes a {@code model.safetensors.index.json} with {@code weight_map} (tensor → shard file name). */
    public static void writeIndex(Path file, Map<String, String> weightMap) {
        StringBuilder s = new StringBuilder("{\"metadata\":{\"total_size\":0},\"weight_map\":{");
        boolean first = true;
        for (Map.Entry<String, String> e : weightMap.entrySet()) {
            s.append(first ? "" : ",").append(quote(e.getKey())).append(':').append(quote(e.getValue()));
            first = false;
        }
        try {
            Files.writeString(file, s.append("}}").toString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Convenience: a {@link LinkedHashMap} of alternating names and specs. */
    public static Map<String, Spec> tensors(Object... nameSpecPairs) {
        Map<String, Spec> m = new LinkedHashMap<>();
        for (int i = 0; i < nameSpecPairs.length; i += 2) {
            m.put((String) nameSpecPairs[i], (Spec) nameSpecPairs[i + 1]);
        }
        return m;
    }

    private static String quote(String s) {
        StringBuilder q = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> q.append("\\\"");
                case '\\' -> q.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        q.append(String.format("\\u%04x", (int) c));
                    } else {
                        q.append(c);
                    }
                }
            }
        }
        return q.append('"').toString();
    }
}
