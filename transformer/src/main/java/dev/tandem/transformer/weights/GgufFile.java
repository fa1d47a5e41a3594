package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One GGUF file (llama.cpp's checkpoint format, versions 2 and 3), memory-mapped read-only: the magic
 * {@code GGUF}, a u32 version, u64 tensor and metadata counts, the metadata (key → typed value), the tensor
 * infos (name, dimensions innermost first, ggml type, offset into the data section), then the data section at
 * the next multiple of {@code general.alignment} (32 when absent). Everything is little-endian.
 *
 * <p>Tensors are served under their GGUF names with Tandem shapes: GGUF's dimensions reversed, so a matrix of
 * {@code ne = [in, out]} is {@code {out, in}}, rows of {@code in} values. The ggml types Tandem computes with are
 * F32, F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K; {@link GgufCheckpoint} maps the tensors to the names the model
 * asks for.
 *
 * <p>{@link #open} validates everything up front, each failure one {@link TandemException} sentence naming the
 * file: a truncated file, a wrong magic, a version other than 2 or 3, counts or string lengths larger than the
 * file could hold, unknown value or tensor types, a tensor whose data lies past the end of the file, an offset
 * that is not a multiple of the alignment, a duplicate tensor name, a row that is not a whole number of blocks,
 * overlapping tensors.
 *
 * <p>Reads are thread-safe; closing while other threads read makes their reads fail.
 */
public final class GgufFile implements AutoCloseable {

    static final int MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
    public static final int DEFAULT_ALIGNMENT = 32;
    public static final String ALIGNMENT_KEY = "general.alignment";
    /** ggml's GGML_MAX_DIMS. */
    static final int MAX_DIMS = 4;
    /** Arrays of arrays nest this deep at most: no writer nests at all, and a deeper nesting would only exhaust the stack. */
    static final int MAX_NESTING = 8;
    /** The longest array read: far above any vocabulary or merge list (a few hundred thousand), far below what would exhaust memory. */
    static final long MAX_ARRAY = 1 << 24;
    static final String SUPPORTED_TYPES = "f32, f16, bf16, q8_0, q4_0, q4_k, q6_k";

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** ggml's type names by id (ggml.c {@code type_traits}), for naming a type Tandem cannot read. */
    private static final Map<Integer, String> GGML_TYPE_NAMES = Map.ofEntries(
            Map.entry(0, "f32"), Map.entry(1, "f16"), Map.entry(2, "q4_0"), Map.entry(3, "q4_1"), Map.entry(6, "q5_0"),
            Map.entry(7, "q5_1"), Map.entry(8, "q8_0"), Map.entry(9, "q8_1"), Map.entry(10, "q2_K"), Map.entry(11, "q3_K"),
            Map.entry(12, "q4_K"), Map.entry(13, "q5_K"), Map.entry(14, "q6_K"), Map.entry(15, "q8_K"),
            Map.entry(16, "iq2_xxs"), Map.entry(17, "iq2_xs"), Map.entry(18, "iq3_xxs"), Map.entry(19, "iq1_s"),
            Map.entry(20, "iq4_nl"), Map.entry(21, "iq3_s"), Map.entry(22, "iq2_s"), Map.entry(23, "iq4_xs"),
            Map.entry(24, "i8"), Map.entry(25, "i16"), Map.entry(26, "i32"), Map.entry(27, "i64"), Map.entry(28, "f64"),
            Map.entry(29, "iq1_m"), Map.entry(30, "bf16"), Map.entry(34, "tq1_0"), Map.entry(35, "tq2_0"),
            Map.entry(39, "mxfp4"));

    /** The ggml type id of {@code dtype} (GGUF's tensor type field). */
    public static int ggmlType(DType dtype) {
        return switch (dtype) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 8;
            case Q4_K -> 12;
            case Q6_K -> 14;
            case BF16 -> 30;
        };
    }

    /** The DType of ggml type {@code id}, or null when Tandem has none. */
    static DType dtypeOfGgmlType(long id) {
        for (DType d : DType.values()) {
            if (ggmlType(d) == id) {
                return d;
            }
        }
        return null;
    }

    /**
     * A tensor's info: its Tandem shape (GGUF's dimensions reversed) and its bytes, {@code offset} from the start
     * of the data section.
     */
    public record TensorInfo(String name, DType dtype, long[] shape, long offset, long byteSize) {
        public TensorInfo {
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        /** Values in a row: the innermost dimension. */
        public long rowWidth() {
            return shape[shape.length - 1];
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype && Arrays.equals(shape, t.shape)
                    && offset == t.offset && byteSize == t.byteSize;
        }

        @Override
        public int hashCode() {
            return (name.hashCode() * 31 + Arrays.hashCode(shape)) * 31 + Long.hashCode(offset);
        }

        @Override
        public String toString() {
            return name + ": " + dtype.lowerName() + Arrays.toString(shape) + " @ " + offset;
        }
    }

    private final Path path;
    private final String fileName;
    private final int version;
    private final Arena arena;
    /** The data section (or, resident, the copy of it); offsets of {@link #infos} are into it. */
    private final MemorySegment data;
    private final Map<String, GgufValue> metadata;
    private final Map<String, TensorInfo> infos;
    /** What the file stores per tensor (a resident f16 tensor is served as f32). */
    private final Map<String, DType> stored;
    private final AtomicBoolean closed = new AtomicBoolean();

    private GgufFile(Path path, int version, Arena arena, MemorySegment data, Map<String, GgufValue> metadata,
                     Map<String, TensorInfo> infos, Map<String, DType> stored) {
        this.path = path;
        this.fileName = path.getFileName().toString();
        this.version = version;
        this.arena = arena;
        this.data = data;
        this.metadata = metadata;
        this.infos = infos;
        this.stored = stored;
    }

    /**
     * Maps {@code file} and validates it.
     *
     * @throws TandemException when the file is missing, unreadable, truncated or malformed
     */
    public static GgufFile open(Path file) {
        return open(file, false);
    }

    /**
     * Maps {@code file}, validates it and, when {@code resident}, copies the tensor data into memory of its own
     * (f16 widened to f32, f32 and bf16 checked for NaN and infinity), as {@link SafetensorsFile#open(Path, boolean)}
     * does and for the same reason (docs/decisions.md).
     *
     * @throws TandemException when the file is missing, unreadable, truncated or malformed, or the copy does not fit
     */
    public static GgufFile open(Path file, boolean resident) {
        String name = file.getFileName().toString();
        Arena arena = Arena.ofShared();
        try {
            MemorySegment whole;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                whole = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            }
            GgufFile f = new Parser(file, name, whole).parse(arena);
            return resident ? f.resident() : f;
        } catch (NoSuchFileException e) {
            arena.close();
            throw new TandemException("GGUF file not found: " + file + ".", e);
        } catch (IOException e) {
            arena.close();
            throw new TandemException(name + ": the file could not be read (" + IoErrors.reason(e) + ").", e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Reads the file front to back; every read checks that the bytes are there. */
    private static final class Parser {
        private final Path file;
        private final String name;
        private final MemorySegment whole;
        private final long size;
        private long pos;

        Parser(Path file, String name, MemorySegment whole) {
            this.file = file;
            this.name = name;
            this.whole = whole;
            this.size = whole.byteSize();
        }

        GgufFile parse(Arena arena) {
            if (size < 4) {
                throw new TandemException(name + ": the file is " + size + " bytes long, too short to hold the GGUF magic,"
                        + " so it is truncated or not a GGUF file.");
            }
            int magic = whole.get(U32, 0);
            if (magic != MAGIC) {
                throw new TandemException(name + ": the file does not begin with the GGUF magic (\"GGUF\"), so it is not a"
                        + " GGUF file.");
            }
            pos = 4;
            long version = u32("the version");
            if (version != 2 && version != 3) {
                throw new TandemException(name + ": GGUF version " + version + " is not supported (Tandem reads versions 2"
                        + " and 3" + (version == 1 ? "; version 1 files come from before August 2023 and must be converted"
                        + " again" : "") + ").");
            }
            long tensorCount = count("the tensor count", 8 + 4 + 4 + 8 + 8);
            long kvCount = count("the metadata count", 8 + 4 + 1);

            Map<String, GgufValue> metadata = new LinkedHashMap<>();
            for (long i = 0; i < kvCount; i++) {
                String key = string("metadata key " + i);
                long typeId = u32("the type of metadata \"" + key + "\"");
                GgufValue.Type type = GgufValue.Type.ofId(typeId);
                if (type == null) {
                    throw fail("metadata \"" + key + "\" has value type " + typeId + ", which GGUF does not define");
                }
                GgufValue v = value(type, "metadata \"" + key + "\"", 0);
                if (metadata.put(key, v) != null) {
                    throw fail("metadata key \"" + key + "\" appears twice");
                }
            }
            long alignment = alignment(metadata.get(ALIGNMENT_KEY));

            record Raw(String name, long[] ne, long type, long offset) {
            }
            List<Raw> raws = new ArrayList<>();
            for (long i = 0; i < tensorCount; i++) {
                String tname = string("the name of tensor " + i);
                String where = "tensor \"" + tname + "\"";
                long nDims = u32("the dimension count of " + where);
                if (nDims < 1 || nDims > MAX_DIMS) {
                    throw fail(where + " has " + nDims + " dimensions (GGUF allows 1 to " + MAX_DIMS + ")");
                }
                long[] ne = new long[(int) nDims];
                for (int d = 0; d < ne.length; d++) {
                    ne[d] = u64("dimension " + d + " of " + where);
                    if (ne[d] < 0) {
                        throw fail(where + " has dimension " + d + " of " + Long.toUnsignedString(ne[d])
                                + ", too large to address");
                    }
                }
                long type = u32("the type of " + where);
                long offset = u64("the offset of " + where);
                raws.add(new Raw(tname, ne, type, offset));
            }
            long dataStart = alignUp(pos, alignment);

            Map<String, TensorInfo> infos = new LinkedHashMap<>();
            Map<String, DType> stored = new LinkedHashMap<>();
            for (Raw r : raws) {
                String where = "tensor \"" + r.name + "\"";
                if (infos.containsKey(r.name)) {
                    throw fail("tensor name \"" + r.name + "\" appears twice");
                }
                DType dtype = dtypeOfGgmlType(r.type);
                if (dtype == null) {
                    String known = GGML_TYPE_NAMES.get((int) Math.min(r.type, Integer.MAX_VALUE));
                    throw fail(where + " has ggml type " + r.type + (known == null ? "" : " (" + known + ")")
                            + ", which Tandem does not support (supported: " + SUPPORTED_TYPES + ")");
                }
                if (r.ne[0] % dtype.blockElements() != 0) {
                    throw fail(where + " has rows of " + r.ne[0] + " values, not a whole number of " + dtype.lowerName()
                            + " blocks (" + dtype.blockElements() + " values each)");
                }
                long bytes;
                try {
                    bytes = dtype.bytesFor(Tensor.elementCount(r.ne));
                } catch (ArithmeticException e) {
                    throw fail(where + " has dimensions " + Arrays.toString(r.ne) + ", too large to address");
                }
                if (Long.remainderUnsigned(r.offset, alignment) != 0) {
                    throw fail(where + " begins at offset " + Long.toUnsignedString(r.offset)
                            + " of the data section, which is not a multiple of the alignment " + alignment);
                }
                if (r.offset < 0 || r.offset > size - dataStart || bytes > size - dataStart - r.offset) {
                    throw fail(where + " (" + bytes + " bytes at offset " + Long.toUnsignedString(r.offset)
                            + " of the data section, which begins at byte " + dataStart + ") lies past the end of the file ("
                            + size + " bytes), so the file is truncated");
                }
                long[] shape = new long[r.ne.length];
                for (int d = 0; d < shape.length; d++) {
                    shape[d] = r.ne[r.ne.length - 1 - d];
                }
                infos.put(r.name, new TensorInfo(r.name, dtype, shape, r.offset, bytes));
                stored.put(r.name, dtype);
            }
            checkOverlaps(infos.values());
            MemorySegment data = dataStart <= size ? whole.asSlice(dataStart) : whole.asSlice(size);
            return new GgufFile(file, (int) version, arena, data, Collections.unmodifiableMap(metadata),
                    Collections.unmodifiableMap(infos), Collections.unmodifiableMap(stored));
        }

        private long alignment(GgufValue v) {
            if (v == null) {
                return DEFAULT_ALIGNMENT;
            }
            Long a = v.type() == GgufValue.Type.UINT32 ? v.integerOrNull() : null;
            if (a == null || a == 0 || Long.bitCount(a) != 1) {
                throw fail(ALIGNMENT_KEY + " is " + v.describe() + ", but must be a u32 power of two");
            }
            return a;
        }

        private void checkOverlaps(Iterable<TensorInfo> all) {
            List<TensorInfo> sorted = new ArrayList<>();
            for (TensorInfo t : all) {
                if (t.byteSize() > 0) {
                    sorted.add(t);
                }
            }
            sorted.sort(Comparator.comparingLong(TensorInfo::offset));
            for (int i = 1; i < sorted.size(); i++) {
                TensorInfo a = sorted.get(i - 1);
                TensorInfo b = sorted.get(i);
                if (b.offset() < a.offset() + a.byteSize()) {
                    throw fail("tensors \"" + a.name() + "\" and \"" + b.name() + "\" overlap in the data section");
                }
            }
        }

        private TandemException fail(String detail) {
            return new TandemException(name + ": " + detail + ".");
        }

        private void need(long bytes, String what) {
            if (bytes > size - pos) {
                throw fail("the file ends in " + what + " (byte " + pos + " of " + size + "), so it is truncated");
            }
        }

        private long u32(String what) {
            need(4, what);
            long v = whole.get(U32, pos) & 0xffffffffL;
            pos += 4;
            return v;
        }

        private long u64(String what) {
            need(8, what);
            long v = whole.get(U64, pos);
            pos += 8;
            return v;
        }

        /** A u64 count of items of at least {@code minBytes} each, which the rest of the file must be able to hold. */
        private long count(String what, long minBytes) {
            long n = u64(what);
            if (n < 0 || n > (size - pos) / minBytes) {
                throw fail(what + " is " + Long.toUnsignedString(n) + ", more than the " + (size - pos)
                        + " bytes left in the file can hold, so the file is truncated or corrupt");
            }
            return n;
        }

        private String string(String what) {
            long len = u64("the length of " + what);
            if (len < 0 || len > size - pos) {
                throw fail("the length of " + what + " is " + Long.toUnsignedString(len) + " bytes, more than the "
                        + (size - pos) + " bytes left in the file, so the file is truncated or corrupt");
            }
            ByteBuffer bytes = whole.asSlice(pos, len).asByteBuffer();
            pos += len;
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes).toString();
            } catch (CharacterCodingException e) {
                throw fail(what + " is not valid UTF-8");
            }
        }

        private GgufValue value(GgufValue.Type type, String what, int depth) {
            return switch (type) {
                case UINT8 -> GgufValue.u8(bytes(1, what));
                case INT8 -> GgufValue.i8(bytes(1, what));
                case UINT16 -> GgufValue.u16(bytes(2, what));
                case INT16 -> GgufValue.i16(bytes(2, what));
                case UINT32 -> GgufValue.u32(u32(what));
                case INT32 -> GgufValue.i32((int) u32(what));
                case FLOAT32 -> GgufValue.f32(Float.intBitsToFloat((int) u32(what)));
                case BOOL -> {
                    int b = bytes(1, what);
                    if (b > 1) {
                        throw fail(what + " is a bool of value " + b + ", neither 0 nor 1");
                    }
                    yield GgufValue.bool(b == 1);
                }
                case STRING -> GgufValue.string(string(what));
                case UINT64 -> GgufValue.u64(u64(what));
                case INT64 -> GgufValue.i64(u64(what));
                case FLOAT64 -> GgufValue.f64(Double.longBitsToDouble(u64(what)));
                case ARRAY -> {
                    if (depth >= MAX_NESTING) {
                        throw fail(what + " nests arrays more than " + MAX_NESTING + " deep");
                    }
                    long typeId = u32("the element type of " + what);
                    GgufValue.Type element = GgufValue.Type.ofId(typeId);
                    if (element == null) {
                        throw fail(what + " is an array of type " + typeId + ", which GGUF does not define");
                    }
                    long n = count("the length of " + what, element.minBytes);
                    if (n > MAX_ARRAY) {
                        throw fail(what + " is an array of " + n + " values, more than Tandem reads (" + MAX_ARRAY + ")");
                    }
                    GgufValue[] items = new GgufValue[(int) n];
                    for (int i = 0; i < items.length; i++) {
                        items[i] = value(element, what + "[" + i + "]", depth + 1);
                    }
                    yield GgufValue.array(element, Arrays.asList(items));
                }
            };
        }

        /** A little-endian unsigned value of 1 or 2 bytes. */
        private int bytes(int n, String what) {
            need(n, what);
            int v = n == 1 ? whole.get(ValueLayout.JAVA_BYTE, pos) & 0xff
                    : whole.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), pos) & 0xffff;
            pos += n;
            return v;
        }
    }

    static long alignUp(long at, long alignment) {
        return (at + alignment - 1) / alignment * alignment;
    }

    /** The same file with its tensors copied into memory of its own, each at a 64-byte boundary. */
    private GgufFile resident() {
        List<ResidentWeights.Span> spans = new ArrayList<>();
        for (TensorInfo t : infos.values()) {
            spans.add(new ResidentWeights.Span(t.name(), t.dtype(), t.offset(), t.byteSize()));
        }
        ResidentWeights.Copy copy = ResidentWeights.of(arena, data, spans, fileName);
        Map<String, TensorInfo> placed = new LinkedHashMap<>();
        for (ResidentWeights.Span to : copy.placed()) {
            placed.put(to.name(), new TensorInfo(to.name(), to.dtype(), infos.get(to.name()).shape, to.offset(), to.bytes()));
        }
        return new GgufFile(path, version, arena, copy.memory(), metadata, Collections.unmodifiableMap(placed), stored);
    }

    public Path path() {
        return path;
    }

    /** 2 or 3. */
    public int version() {
        return version;
    }

    /** Every metadata entry in file order. */
    public Map<String, GgufValue> metadata() {
        return metadata;
    }

    /** Tensor names in file order. */
    public Set<String> names() {
        return infos.keySet();
    }

    public boolean contains(String name) {
        return infos.containsKey(name);
    }

    /**
     * The info of tensor {@code name} (as served: a resident f16 tensor is f32).
     *
     * @throws TandemException when the file has no such tensor
     */
    public TensorInfo info(String name) {
        TensorInfo t = infos.get(name);
        if (t == null) {
            throw new TandemException(fileName + ": there is no tensor \"" + name + "\".");
        }
        return t;
    }

    /** The type the file stores {@code name} in, or null when it has no such tensor. */
    public DType storedType(String name) {
        return stored.get(name);
    }

    /**
     * A view of tensor {@code name}, valid until {@link #close()}.
     *
     * @throws TandemException       when the file has no such tensor
     * @throws IllegalStateException after {@link #close()}
     */
    public Tensor tensor(String name) {
        TensorInfo t = info(name);
        if (closed.get()) {
            throw new IllegalStateException(fileName + " is closed");
        }
        return Tensor.of(t.dtype(), data.asSlice(t.offset(), t.byteSize()), t.shape);
    }

    public boolean isClosed() {
        return closed.get();
    }

    /** Unmaps the file (and frees a resident copy); idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "GgufFile[" + path + ", v" + version + ", " + metadata.size() + " metadata, " + infos.size() + " tensors]";
    }
}
