package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Writes safetensors files (and sharded indexes).
 *
 * <p>Two ways in:
 * <ul>
 *   <li>In memory, from {@code name → (dtype, shape, values)} ({@link #write(Path, Map)}), for small
 *       synthetic checkpoints in tests and, through {@link #writeRaw} and {@link #bytes}, broken ones:
 * <pre>{@code
 * Map<String, SafetensorsWriter.Spec> t = new LinkedHashMap<>();
 * t.put("model.norm.weight", SafetensorsWriter.spec(DType.BF16, new long[] {4}, 1, 2, 3, 4));
 * SafetensorsWriter.write(dir.resolve("model.safetensors"), t);
 * }</pre>
 *   <li>Streaming, for files of any size ({@link #open}): the header is written up front from the
 *       names, dtypes and shapes, then each tensor's bytes in header order through
 *       {@link StreamingWriter#beginTensor}, {@link StreamingWriter#append} and
 *       {@link StreamingWriter#endTensor}; nothing but the caller's buffers is held in memory.
 * <pre>{@code
 * try (var w = SafetensorsWriter.open(file, List.of(new TensorInfo("model.norm.weight", DType.F32, new long[] {4})), Map.of())) {
 *     w.writeTensor("model.norm.weight", buffer);   // 16 bytes, little-endian
 *     w.finish();                                   // checks every tensor was written, fsyncs, closes
 * }
 * }</pre>
 * </ul>
 *
 * Tensors are laid out in the given order, back to back from offset 0; the header is padded with
 * spaces to a multiple of 8 bytes, as the safetensors library does.
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
        List<Object[]> entries = new ArrayList<>(tensors.size());
        long offset = 0;
        for (Map.Entry<String, Spec> e : tensors.entrySet()) {
            Spec s = e.getValue();
            long end = offset + s.byteSize();
            entries.add(new Object[] {e.getKey(), s.dtype(), s.shape(), offset, end});
            offset = end;
        }
        return header(entries, metadata);
    }

    /** Entries are {name, dtype, shape, begin, end}. */
    private static String header(List<Object[]> entries, Map<String, String> metadata) {
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
        for (Object[] e : entries) {
            h.append(first ? "" : ",").append(quote((String) e[0])).append(":{\"dtype\":\"").append(((DType) e[1]).name())
                    .append("\",\"shape\":").append(Arrays.toString((long[]) e[2]).replace(" ", ""))
                    .append(",\"data_offsets\":[").append(e[3]).append(',').append(e[4]).append("]}");
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
                    default -> throw new IllegalArgumentException("safetensors holds f32, bf16 or f16, not " + s.dtype().lowerName());
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

    // ------------------------------------------------------------------------------------------------
    // Streaming

    /**
     * One tensor of a streamed file: its name, dtype and shape (its bytes come later).
     *
     * @throws IllegalArgumentException for an empty or reserved name, a negative dimension, or a size
     *                                  beyond {@code Long.MAX_VALUE} bytes
     */
    public record TensorInfo(String name, DType dtype, long[] shape) {
        public TensorInfo {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(dtype, "dtype");
            shape = shape.clone();
            if (name.isEmpty()) {
                throw new IllegalArgumentException("a safetensors tensor name must not be empty.");
            }
            if (name.equals("__metadata__")) {
                throw new IllegalArgumentException("\"__metadata__\" is reserved in safetensors and cannot name a tensor.");
            }
            long n = 1;
            for (long d : shape) {
                if (d < 0) {
                    throw new IllegalArgumentException("tensor \"" + name + "\" has a negative dimension in shape "
                            + Arrays.toString(shape) + ".");
                }
                try {
                    n = Math.multiplyExact(n, d);
                    Math.multiplyExact(n, (long) dtype.byteSize());
                } catch (ArithmeticException e) {
                    throw new IllegalArgumentException("tensor \"" + name + "\" of shape " + Arrays.toString(shape)
                            + " is too large for a file.");
                }
            }
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public long elementCount() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }

        public long byteSize() {
            return elementCount() * dtype.byteSize();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype && Arrays.equals(shape, t.shape);
        }

        @Override
        public int hashCode() {
            return Objects.hash(name, dtype, Arrays.hashCode(shape));
        }

        @Override
        public String toString() {
            return name + " " + dtype + Arrays.toString(shape);
        }
    }

    /**
     * The JSON header for {@code tensors} laid out in list order (before padding).
     *
     * @throws IllegalArgumentException when two tensors share a name or the data would exceed
     *                                  {@code Long.MAX_VALUE} bytes
     */
    public static String headerJson(List<TensorInfo> tensors, Map<String, String> metadata) {
        Set<String> seen = new HashSet<>();
        List<Object[]> entries = new ArrayList<>(tensors.size());
        long offset = 0;
        for (TensorInfo t : tensors) {
            if (!seen.add(t.name())) {
                throw new IllegalArgumentException("tensor \"" + t.name() + "\" is listed twice; safetensors names must be unique.");
            }
            long end;
            try {
                end = Math.addExact(offset, t.byteSize());
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("the tensors add up to more bytes than a file can hold.");
            }
            entries.add(new Object[] {t.name(), t.dtype(), t.shape, offset, end});
            offset = end;
        }
        return header(entries, metadata);
    }

    /** The size of the file {@link #open} writes for {@code tensors} and {@code metadata}. */
    public static long fileSize(List<TensorInfo> tensors, Map<String, String> metadata) {
        long data = 0;
        for (TensorInfo t : tensors) {
            data += t.byteSize();
        }
        return 8 + paddedHeaderLength(headerJson(tensors, metadata)) + data;
    }

    private static int paddedHeaderLength(String headerJson) {
        return (headerJson.getBytes(StandardCharsets.UTF_8).length + 7) / 8 * 8;
    }

    /**
     * Creates (or truncates) {@code file}, writes the header for {@code tensors} and returns a writer
     * that takes their bytes in list order.
     *
     * @throws IllegalArgumentException when the tensor list is invalid (see {@link #headerJson(List, Map)})
     * @throws TandemException          when the file cannot be created or written
     */
    public static StreamingWriter open(Path file, List<TensorInfo> tensors, Map<String, String> metadata) {
        String header = headerJson(tensors, metadata);
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new TandemException("could not create " + file + " (" + e.getMessage() + ").", e);
        }
        StreamingWriter w = new StreamingWriter(file, ch, List.copyOf(tensors));
        try {
            byte[] h = header.getBytes(StandardCharsets.UTF_8);
            int padded = paddedHeaderLength(header);
            ByteBuffer b = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
            b.putLong(padded).put(h);
            while (b.hasRemaining()) {
                b.put((byte) ' ');
            }
            b.flip();
            w.writeFully(b);
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    /**
     * Takes the tensors' bytes in header order. Not thread-safe: one thread writes. Every misuse (a
     * tensor out of order, more or fewer bytes than its shape holds, a missing tensor at
     * {@link #finish()}) is an {@link IllegalStateException} naming the tensor and the byte counts.
     * {@link #close()} without a successful {@link #finish()} deletes the incomplete file.
     */
    public static final class StreamingWriter implements AutoCloseable {
        private final Path file;
        private final FileChannel channel;
        private final List<TensorInfo> tensors;
        private int next;            // index of the next tensor to begin
        private TensorInfo current;  // tensor being written, or null between tensors
        private long currentWritten;
        private long written;        // bytes in the file so far, header included
        private boolean finished;
        private boolean closed;

        private StreamingWriter(Path file, FileChannel channel, List<TensorInfo> tensors) {
            this.file = file;
            this.channel = channel;
            this.tensors = tensors;
        }

        public Path file() {
            return file;
        }

        public List<TensorInfo> tensors() {
            return tensors;
        }

        /** Bytes written to the file so far, header included. */
        public long bytesWritten() {
            return written;
        }

        /** The name of the tensor {@link #beginTensor} expects next, or null when all were begun. */
        public String nextTensorName() {
            return next < tensors.size() ? tensors.get(next).name() : null;
        }

        /** Starts tensor {@code name}, which must be the next one in header order. */
        public void beginTensor(String name) {
            checkOpen();
            if (current != null) {
                throw new IllegalStateException("tensor \"" + name + "\" begun while \"" + current.name()
                        + "\" is unfinished (" + currentWritten + " of " + current.byteSize() + " bytes written).");
            }
            if (next >= tensors.size()) {
                throw new IllegalStateException("tensor \"" + name + "\" begun after all " + tensors.size()
                        + " tensors of the header were written.");
            }
            TensorInfo t = tensors.get(next);
            if (!t.name().equals(name)) {
                boolean known = tensors.stream().anyMatch(x -> x.name().equals(name));
                throw new IllegalStateException("tensor \"" + name + "\" begun out of order: the header expects \""
                        + t.name() + "\" next" + (known ? "" : ", and has no tensor of that name") + ".");
            }
            current = t;
            currentWritten = 0;
            next++;
        }

        /** Appends all remaining bytes of {@code data} to the current tensor. */
        public void append(ByteBuffer data) {
            checkOpen();
            if (current == null) {
                throw new IllegalStateException("append outside a tensor: call beginTensor first (next expected: "
                        + (nextTensorName() == null ? "none" : "\"" + nextTensorName() + "\"") + ").");
            }
            long n = data.remaining();
            if (currentWritten + n > current.byteSize()) {
                throw new IllegalStateException("tensor \"" + current.name() + "\" holds " + current.byteSize()
                        + " bytes, but " + (currentWritten + n) + " were written.");
            }
            writeFully(data);
            currentWritten += n;
        }

        /** Ends the current tensor, which must have received exactly its byte size. */
        public void endTensor() {
            checkOpen();
            if (current == null) {
                throw new IllegalStateException("endTensor without a tensor begun.");
            }
            if (currentWritten != current.byteSize()) {
                throw new IllegalStateException("tensor \"" + current.name() + "\" holds " + current.byteSize()
                        + " bytes, but only " + currentWritten + " were written.");
            }
            current = null;
        }

        /** {@link #beginTensor}, {@link #append} and {@link #endTensor} in one call. */
        public void writeTensor(String name, ByteBuffer data) {
            beginTensor(name);
            append(data);
            endTensor();
        }

        /**
         * Checks that every tensor was written in full, forces the file to the storage device and
         * closes it.
         */
        public void finish() {
            checkOpen();
            if (current != null) {
                throw new IllegalStateException("tensor \"" + current.name() + "\" is unfinished (" + currentWritten
                        + " of " + current.byteSize() + " bytes written).");
            }
            if (next < tensors.size()) {
                throw new IllegalStateException("only " + next + " of " + tensors.size() + " tensors were written; \""
                        + tensors.get(next).name() + "\" is next.");
            }
            try {
                channel.force(true);
                channel.close();
            } catch (IOException e) {
                throw new TandemException("could not write " + file + " (" + e.getMessage() + ").", e);
            }
            finished = true;
            closed = true;
        }

        /** Closes the file; unless {@link #finish()} succeeded, deletes it. Idempotent. */
        @Override
        public void close() {
            if (closed) {
                return;
            }
            closed = true;
            try {
                channel.close();
            } catch (IOException ignored) {
                // deleting it below is what matters
            }
            if (!finished) {
                try {
                    Files.deleteIfExists(file);
                } catch (IOException ignored) {
                    // the caller's cleanup of the directory gets another try
                }
            }
        }

        private void checkOpen() {
            if (closed) {
                throw new IllegalStateException("the safetensors writer for " + file + " is closed.");
            }
        }

        private void writeFully(ByteBuffer b) {
            try {
                while (b.hasRemaining()) {
                    written += channel.write(b);
                }
            } catch (IOException e) {
                throw new TandemException("could not write " + file + " (" + e.getMessage() + ").", e);
            }
        }
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
