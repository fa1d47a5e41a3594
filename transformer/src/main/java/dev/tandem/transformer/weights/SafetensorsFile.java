package dev.tandem.transformer.weights;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Utf8Text;
import dev.tandem.runtime.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
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
 * One {@code .safetensors} file, memory-mapped read-only: an 8-byte little-endian header length, a
 * JSON header ({@code name → {dtype, shape, data_offsets}}, plus an optional {@code __metadata__}
 * string map), then the data section. Tensors are zero-copy views of the mapping; {@link #close()}
 * unmaps it, after which any view throws {@link IllegalStateException} on access.
 *
 * <p>{@link #open} validates the whole header up front, each failure a one-sentence
 * {@link TandemException} naming the file: a truncated file, a header that is not JSON, an unknown
 * dtype, a shape that does not match its byte span, offsets that are negative, reversed, past the end of
 * the data section, or overlapping another tensor. Tensors of a dtype safetensors knows but Tandem does
 * not compute with (I64, F64, U8, …) are validated too, and refused only when asked for, so a stray
 * buffer in a checkpoint does not prevent loading it.
 *
 * <p>Reads are thread-safe; closing while other threads read makes their reads fail.
 */
public final class SafetensorsFile implements WeightFile {

    /** The safetensors library's own limit on the header size. */
    static final long MAX_HEADER_BYTES = 100_000_000L;
    static final String SUPPORTED_DTYPES = "F32, BF16, F16";

    private static final ObjectMapper HEADER_MAPPER = JsonMapper.builder()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .build();
    private static final ValueLayout.OfLong U64_LE =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Element sizes of the safetensors dtypes Tandem does not compute with (validated, not served). */
    private static final Map<String, Integer> OTHER_DTYPE_SIZES = Map.ofEntries(
            Map.entry("BOOL", 1), Map.entry("U8", 1), Map.entry("I8", 1),
            Map.entry("F8_E4M3", 1), Map.entry("F8_E5M2", 1), Map.entry("F8_E8M0", 1),
            Map.entry("I16", 2), Map.entry("U16", 2),
            Map.entry("I32", 4), Map.entry("U32", 4),
            Map.entry("I64", 8), Map.entry("U64", 8), Map.entry("F64", 8), Map.entry("C64", 8));

    /**
     * A tensor's header entry; {@code begin}/{@code end} are byte offsets into the data section.
     */
    public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
        public TensorInfo {
            shape = shape.clone();
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public long byteSize() {
            return end - begin;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype
                    && Arrays.equals(shape, t.shape) && begin == t.begin && end == t.end;
        }

        @Override
        public int hashCode() {
            return (name.hashCode() * 31 + Arrays.hashCode(shape)) * 31 + Long.hashCode(begin);
        }

        @Override
        public String toString() {
            return name + ": " + dtype + Arrays.toString(shape) + " @ [" + begin + ", " + end + ")";
        }
    }

    /** dtype is null when {@code dtypeName} is a safetensors dtype Tandem does not support. */
    private record Entry(String name, String dtypeName, DType dtype, long[] shape, long begin, long end) {
    }

    private final Path path;
    private final String fileName;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;
    private final AtomicBoolean closed = new AtomicBoolean();

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, Map<String, Entry> entries,
                            Map<String, String> metadata) {
        this.path = path;
        this.fileName = path.getFileName().toString();
        this.arena = arena;
        this.data = data;
        this.entries = entries;
        this.metadata = metadata;
    }

    /**
     * Maps {@code file} and validates its header.
     *
     * @throws TandemException when the file is missing, unreadable, truncated or malformed
     */
    public static SafetensorsFile open(Path file) {
        return open(file, false);
    }

    /**
     * Maps {@code file}, validates its header and, when {@code resident}, copies the tensor data into
     * memory of its own (off the Java heap) so that reads no longer go through the file mapping: on
     * machines whose page-cache mappings get their page tables torn down and refaulted, a mapped
     * model's read rate swings from pass to pass while memory of its own reads steadily
     * (docs/decisions.md). Views are then over the copy.
     *
     * @throws TandemException when the file is missing, unreadable, truncated or malformed, or the
     *                         copy does not fit in memory
     */
    public static SafetensorsFile open(Path file, boolean resident) {
        String name = file.getFileName().toString();
        Arena arena = Arena.ofShared();
        try {
            MemorySegment whole;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size < 8) {
                    throw new TandemException(name + ": the file is " + size
                            + " bytes long, shorter than the 8-byte header length, so it is truncated.");
                }
                whole = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            }
            SafetensorsFile f = parse(file, name, arena, whole);
            return resident ? f.resident() : f;
        } catch (NoSuchFileException e) {
            arena.close();
            throw new TandemException("safetensors file not found: " + file + ".", e);
        } catch (IOException e) {
            arena.close();
            throw new TandemException(name + ": the file could not be read (" + IoErrors.reason(e) + ").", e);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * The same file with its data copied into memory allocated in this file's arena, each tensor at a
     * 64-byte boundary; f16 tensors are widened to f32 on the way (exact), so that no kernel widens
     * them again on every call. {@link #dtypeOrNull} still reports what the file stores.
     */
    private SafetensorsFile resident() {
        List<ResidentWeights.Span> spans = new ArrayList<>();
        for (Entry e : entries.values()) {
            spans.add(new ResidentWeights.Span(e.name, e.dtype, e.begin, e.end - e.begin));
        }
        ResidentWeights.Copy copy = ResidentWeights.of(arena, data, spans, fileName);
        Map<String, Entry> placed = new LinkedHashMap<>();
        for (ResidentWeights.Span to : copy.placed()) {
            Entry e = entries.get(to.name());
            placed.put(e.name, new Entry(e.name, e.dtypeName, to.dtype(), e.shape, to.offset(), to.offset() + to.bytes()));
        }
        return new SafetensorsFile(path, arena, copy.memory(), Collections.unmodifiableMap(placed), metadata);
    }

    private static SafetensorsFile parse(Path file, String name, Arena arena, MemorySegment whole) {
        long size = whole.byteSize();
        long headerLen = whole.get(U64_LE, 0);
        if (headerLen < 0 || headerLen > size - 8) {
            throw new TandemException(name + ": the header length " + Long.toUnsignedString(headerLen)
                    + " runs past the end of the file (" + size + " bytes), so the file is truncated.");
        }
        if (headerLen > MAX_HEADER_BYTES) {
            throw new TandemException(name + ": the header length " + headerLen + " exceeds the safetensors limit of "
                    + MAX_HEADER_BYTES + " bytes.");
        }
        byte[] headerBytes = whole.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        Utf8Text.requireValid(headerBytes, name + ": the header");
        JsonNode header;
        try {
            header = HEADER_MAPPER.readTree(headerBytes);
        } catch (JsonProcessingException e) {
            JsonLocation loc = e.getLocation();
            String where = loc != null && loc.getLineNr() > 0
                    ? " (line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ")" : "";
            throw new TandemException(name + ": the header is not valid JSON" + where + ".", e);
        } catch (IOException e) {
            throw new TandemException(name + ": the header is not valid JSON.", e);
        }
        if (header == null || !header.isObject()) {
            throw new TandemException(name + ": the header is not a JSON object.");
        }
        long dataStart = 8 + headerLen;
        long dataSize = size - dataStart;

        Map<String, Entry> entries = new LinkedHashMap<>();
        Map<String, String> metadata = Map.of();
        for (Map.Entry<String, JsonNode> field : header.properties()) {
            String tname = field.getKey();
            JsonNode v = field.getValue();
            if (tname.equals("__metadata__")) {
                metadata = parseMetadata(name, v);
                continue;
            }
            entries.put(tname, parseEntry(name, tname, v, dataSize));
        }
        checkOverlaps(name, entries.values());
        MemorySegment data = whole.asSlice(dataStart, dataSize);
        return new SafetensorsFile(file, arena, data, Collections.unmodifiableMap(entries), metadata);
    }

    private static Map<String, String> parseMetadata(String file, JsonNode v) {
        if (!v.isObject()) {
            throw new TandemException(file + ": __metadata__ is not a JSON object of strings.");
        }
        Map<String, String> m = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : v.properties()) {
            if (!e.getValue().isTextual()) {
                throw new TandemException(file + ": __metadata__ entry \"" + e.getKey() + "\" is not a string.");
            }
            m.put(e.getKey(), e.getValue().textValue());
        }
        return Collections.unmodifiableMap(m);
    }

    private static Entry parseEntry(String file, String tname, JsonNode v, long dataSize) {
        String where = file + ": tensor \"" + tname + "\"";
        if (!v.isObject()) {
            throw new TandemException(where + " is not described by a JSON object.");
        }
        JsonNode dt = v.get("dtype");
        if (dt == null || !dt.isTextual()) {
            throw new TandemException(where + " has no dtype string.");
        }
        String dtypeName = dt.textValue();
        DType dtype = DType.fromSafetensorsName(dtypeName);
        int elemSize;
        if (dtype != null) {
            elemSize = dtype.byteSize();
        } else if (OTHER_DTYPE_SIZES.containsKey(dtypeName)) {
            elemSize = OTHER_DTYPE_SIZES.get(dtypeName);
        } else {
            throw new TandemException(where + " has unknown dtype \"" + dtypeName + "\" (supported: "
                    + SUPPORTED_DTYPES + ").");
        }

        JsonNode sh = v.get("shape");
        if (sh == null || !sh.isArray()) {
            throw new TandemException(where + " has no shape list.");
        }
        long[] shape = new long[sh.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new TandemException(where + " has shape " + sh + ", whose dimensions must be non-negative integers.");
            }
            shape[i] = d.longValue();
        }

        JsonNode off = v.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2
                || !off.get(0).isIntegralNumber() || !off.get(1).isIntegralNumber()) {
            throw new TandemException(where + " has data_offsets " + off + ", which must be a list of two integers.");
        }
        if (!off.get(0).canConvertToLong() || !off.get(1).canConvertToLong()
                || off.get(0).longValue() < 0 || off.get(1).longValue() < 0) {
            throw new TandemException(where + " has data_offsets " + off + ", which must not be negative.");
        }
        long begin = off.get(0).longValue();
        long end = off.get(1).longValue();
        String span = "[" + begin + ", " + end + "]";
        if (end < begin) {
            throw new TandemException(where + " has data_offsets " + span + " that end before they begin.");
        }
        if (end > dataSize) {
            throw new TandemException(where + " data_offsets " + span + " run past the end of the data section ("
                    + dataSize + " bytes), so the file is truncated.");
        }
        long need;
        try {
            long numel = 1;
            for (long d : shape) {
                numel = Math.multiplyExact(numel, d);
            }
            need = Math.multiplyExact(numel, (long) elemSize);
        } catch (ArithmeticException e) {
            throw new TandemException(where + " has shape " + Arrays.toString(shape) + " too large to address.");
        }
        if (need != end - begin) {
            throw new TandemException(where + " has shape " + Arrays.toString(shape) + " of " + dtypeName + ", which is "
                    + need + " bytes, but data_offsets " + span + " span " + (end - begin) + " bytes.");
        }
        return new Entry(tname, dtypeName, dtype, shape, begin, end);
    }

    private static void checkOverlaps(String file, Iterable<Entry> all) {
        List<Entry> sorted = new ArrayList<>();
        for (Entry e : all) {
            if (e.end > e.begin) {
                sorted.add(e);
            }
        }
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        for (int i = 1; i < sorted.size(); i++) {
            Entry a = sorted.get(i - 1);
            Entry b = sorted.get(i);
            if (b.begin < a.end) {
                throw new TandemException(file + ": tensors \"" + a.name + "\" [" + a.begin + ", " + a.end + "] and \""
                        + b.name + "\" [" + b.begin + ", " + b.end + "] overlap in the data section.");
            }
        }
    }

    @Override
    public Path path() {
        return path;
    }

    /** Tensor names in header order. */
    @Override
    public Set<String> names() {
        return entries.keySet();
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    /** The {@code __metadata__} strings (empty when the header has none). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * The header entry of {@code name}.
     *
     * @throws TandemException when the file has no such tensor or its dtype is not F32, BF16 or F16
     */
    public TensorInfo info(String name) {
        Entry e = supported(name);
        return new TensorInfo(e.name, e.dtype, e.shape, e.begin, e.end);
    }

    /** The safetensors dtype name of {@code name} ("F32", "I64", …), including ones Tandem cannot serve. */
    public String dtypeName(String name) {
        return entry(name).dtypeName;
    }

    /**
     * A zero-copy view of tensor {@code name} over the mapping; valid until {@link #close()}.
     *
     * @throws TandemException       when the file has no such tensor or its dtype is not F32, BF16 or F16
     * @throws IllegalStateException after {@link #close()}
     */
    @Override
    public Tensor tensor(String name) {
        Entry e = supported(name);
        if (closed.get()) {
            throw new IllegalStateException(fileName + " is closed");
        }
        return Tensor.of(e.dtype, data.asSlice(e.begin, e.end - e.begin), e.shape);
    }

    private Entry entry(String name) {
        Entry e = entries.get(name);
        if (e == null) {
            throw new TandemException(fileName + ": there is no tensor \"" + name + "\".");
        }
        return e;
    }

    private Entry supported(String name) {
        Entry e = entry(name);
        if (e.dtype == null) {
            throw new TandemException(fileName + ": tensor \"" + name + "\" has dtype \"" + e.dtypeName
                    + "\", which Tandem does not support (supported: " + SUPPORTED_DTYPES + ").");
        }
        return e;
    }

    @Override
    public long storedBytes(String name) {
        Entry e = entries.get(name);
        return e == null || e.dtype == null ? 0 : (e.end - e.begin) / e.dtype.byteSize() * storedType(name).byteSize();
    }

    /** The dtype the file stores {@code name} in (a resident f16 tensor is served as f32). */
    @Override
    public DType storedType(String name) {
        Entry e = entries.get(name);
        return e == null ? null : DType.fromSafetensorsName(e.dtypeName);
    }

    public boolean isClosed() {
        return closed.get();
    }

    /** Unmaps the file; idempotent. Views handed out earlier throw {@link IllegalStateException} afterwards. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + path + ", " + entries.size() + " tensors]";
    }
}
