package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.AtomicFiles;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Writes GGUF version 3 files, as llama.cpp's {@code gguf_write_to_file} lays them out: the header, the metadata
 * in the given order, the tensor infos, padding to the alignment (32), then each tensor's bytes in the given order,
 * each padded to the alignment. Tensors are streamed: each {@link Tensor} writes its own bytes into a
 * {@link Sink} when its turn comes, so a model of any size is written with a buffer of 1 MiB besides what the
 * caller holds.
 *
 * <p>The file is written to a hidden temporary file in the target's folder, forced to disk and moved into place
 * (replacing a file there); on any failure, including a {@link Progress} that throws, the temporary file is
 * deleted and the target is left as it was.
 */
public final class GgufWriter {

    static final int VERSION = 3;
    static final int ALIGNMENT = GgufFile.DEFAULT_ALIGNMENT;
    private static final int BUFFER_BYTES = 1 << 20;

    private GgufWriter() {
    }

    /** Where a tensor writes its bytes, in order, little-endian, exactly {@link Tensor#byteSize()} of them. */
    public interface Sink {
        /** Writes the remaining bytes of {@code bytes}. */
        void put(ByteBuffer bytes) throws IOException;
    }

    /** Writes a tensor's bytes in order (rows first to last, each row's blocks or values in order). */
    @FunctionalInterface
    public interface TensorBytes {
        void writeTo(Sink sink) throws IOException;
    }

    /**
     * One tensor to write.
     *
     * @param shape Tandem's order (outermost first; the file stores it reversed)
     */
    public record Tensor(String name, DType dtype, long[] shape, TensorBytes bytes) {
        public Tensor {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(dtype, "dtype");
            Objects.requireNonNull(bytes, "bytes");
            shape = shape.clone();
            if (shape.length < 1 || shape.length > GgufFile.MAX_DIMS) {
                throw new IllegalArgumentException("tensor " + name + " has " + shape.length + " dimensions; GGUF allows 1 to "
                        + GgufFile.MAX_DIMS);
            }
            if (shape[shape.length - 1] % dtype.blockElements() != 0) {
                throw new IllegalArgumentException("tensor " + name + " has rows of " + shape[shape.length - 1]
                        + " values, not a whole number of " + dtype.lowerName() + " blocks");
            }
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public long byteSize() {
            return dtype.bytesFor(dev.tandem.runtime.Tensor.elementCount(shape));
        }
    }

    /**
     * Writes {@code file}.
     *
     * @param metadata key → value, in the order to write them ({@code general.alignment}, if given, must be u32 32)
     * @param progress sees bytes written of the file's size
     * @throws TandemException when the folder does not exist, the disk has no room, or writing fails
     */
    public static void write(Path file, Map<String, GgufValue> metadata, List<Tensor> tensors, Progress progress) {
        GgufValue alignment = metadata.get(GgufFile.ALIGNMENT_KEY);
        if (alignment != null && !alignment.equals(GgufValue.u32(ALIGNMENT))) {
            throw new IllegalArgumentException("the writer aligns to " + ALIGNMENT + ", not " + alignment.describe());
        }
        Set<String> names = new HashSet<>();
        for (Tensor t : tensors) {
            if (!names.add(t.name())) {
                throw new IllegalArgumentException("tensor " + t.name() + " is given twice");
            }
        }
        Path abs = file.toAbsolutePath().normalize();
        if (Files.isDirectory(abs)) {
            throw new TandemException("the GGUF file " + file + " is a directory; give the name of a file to write.");
        }
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new TandemException("the folder of the GGUF file " + file + " does not exist.");
        }
        byte[] head = head(metadata, tensors);
        long sum = GgufFile.alignUp(head.length, ALIGNMENT);
        for (Tensor t : tensors) {
            sum += GgufFile.alignUp(t.byteSize(), ALIGNMENT);
        }
        long total = sum;
        requireSpace(dir, total, file);
        try {
            AtomicFiles.write(abs, ch -> {
                Out out = new Out(ch, total, progress);
                out.put(ByteBuffer.wrap(head));
                out.pad();
                for (Tensor t : tensors) {
                    long before = out.written;
                    t.bytes().writeTo(out);
                    if (out.written - before != t.byteSize()) {
                        throw new IllegalStateException("tensor " + t.name() + " wrote " + (out.written - before)
                                + " bytes, but " + t.dtype().lowerName() + Arrays.toString(t.shape()) + " is " + t.byteSize());
                    }
                    out.pad();
                }
                out.flush();
            });
        } catch (IOException e) {
            throw new TandemException("cannot write the GGUF file " + file + " (" + IoErrors.reason(e) + ").", e);
        }
    }

    private static void requireSpace(Path dir, long total, Path file) {
        long free;
        try {
            free = Files.getFileStore(dir).getUsableSpace();
        } catch (IOException e) {
            return; // the write itself will say what is wrong
        }
        if (free < total) {
            throw new TandemException("the GGUF file " + file + " needs " + Progress.formatBytes(total) + ", but its folder's"
                    + " disk has " + Progress.formatBytes(free) + " free.");
        }
    }

    /** The header, metadata and tensor infos (offsets laid out back to back, each aligned). */
    private static byte[] head(Map<String, GgufValue> metadata, List<Tensor> tensors) {
        Bytes b = new Bytes();
        b.u32(GgufFile.MAGIC);
        b.u32(VERSION);
        b.u64(tensors.size());
        b.u64(metadata.size());
        for (Map.Entry<String, GgufValue> e : metadata.entrySet()) {
            b.string(e.getKey());
            b.u32(e.getValue().type().id());
            b.value(e.getValue());
        }
        long offset = 0;
        for (Tensor t : tensors) {
            b.string(t.name());
            long[] shape = t.shape();
            b.u32(shape.length);
            for (int d = shape.length - 1; d >= 0; d--) {
                b.u64(shape[d]);
            }
            b.u32(GgufFile.ggmlType(t.dtype()));
            b.u64(offset);
            offset += GgufFile.alignUp(t.byteSize(), ALIGNMENT);
        }
        return b.toByteArray();
    }

    /** A growing little-endian byte array. */
    private static final class Bytes {
        private ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);

        private ByteBuffer room(int n) {
            if (buf.remaining() < n) {
                int size = (int) Math.min(Integer.MAX_VALUE - 8, Math.max((long) buf.capacity() * 2, (long) buf.position() + n));
                ByteBuffer bigger = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
                bigger.put(buf.flip());
                buf = bigger;
            }
            return buf;
        }

        void u32(long v) {
            room(4).putInt((int) v);
        }

        void u64(long v) {
            room(8).putLong(v);
        }

        void string(String s) {
            byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
            u64(utf8.length);
            room(utf8.length).put(utf8);
        }

        void value(GgufValue v) {
            switch (v.type()) {
                case UINT8, INT8, BOOL -> room(1).put(v.type() == GgufValue.Type.BOOL ? (byte) ((Boolean) v.value() ? 1 : 0)
                        : (byte) (long) (Long) v.value());
                case UINT16, INT16 -> room(2).putShort((short) (long) (Long) v.value());
                case UINT32, INT32 -> u32((Long) v.value());
                case FLOAT32 -> room(4).putFloat((Float) v.value());
                case UINT64, INT64 -> u64((Long) v.value());
                case FLOAT64 -> room(8).putDouble((Double) v.value());
                case STRING -> string((String) v.value());
                case ARRAY -> {
                    u32(v.elementType().id());
                    u64(v.elements().size());
                    for (GgufValue e : v.elements()) {
                        value(e);
                    }
                }
            }
        }

        byte[] toByteArray() {
            return Arrays.copyOf(buf.array(), buf.position());
        }
    }

    /** The file, through a buffer, counting bytes for the checks and the progress. */
    private static final class Out implements Sink {
        private final FileChannel ch;
        private final long total;
        private final Progress progress;
        private final ByteBuffer buf = ByteBuffer.allocateDirect(BUFFER_BYTES);
        long written;

        Out(FileChannel ch, long total, Progress progress) {
            this.ch = ch;
            this.total = total;
            this.progress = progress;
        }

        @Override
        public void put(ByteBuffer bytes) throws IOException {
            written += bytes.remaining();
            while (bytes.hasRemaining()) {
                if (!buf.hasRemaining()) {
                    drain();
                }
                int n = Math.min(buf.remaining(), bytes.remaining());
                buf.put(buf.position(), bytes, bytes.position(), n);
                buf.position(buf.position() + n);
                bytes.position(bytes.position() + n);
            }
        }

        void pad() throws IOException {
            int n = (int) (GgufFile.alignUp(written, ALIGNMENT) - written);
            put(ByteBuffer.allocate(n));
        }

        private void drain() throws IOException {
            buf.flip();
            while (buf.hasRemaining()) {
                ch.write(buf);
            }
            buf.clear();
            progress.update(Math.min(total, ch.position()), total);
        }

        void flush() throws IOException {
            drain();
            progress.update(total, total);
        }
    }
}
