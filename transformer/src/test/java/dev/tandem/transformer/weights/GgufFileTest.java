package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** GGUF files: what {@link GgufWriter} writes {@link GgufFile} reads back, and every malformed file is one sentence. */
class GgufFileTest {

    @TempDir
    Path dir;

    /** Metadata of every value type, arrays of scalars, strings and arrays included. */
    static Map<String, GgufValue> everyType() {
        Map<String, GgufValue> m = new LinkedHashMap<>();
        m.put("t.u8", GgufValue.u8(250));
        m.put("t.i8", GgufValue.i8(-7));
        m.put("t.u16", GgufValue.u16(65000));
        m.put("t.i16", GgufValue.i16(-30000));
        m.put("t.u32", GgufValue.u32(4_000_000_000L));
        m.put("t.i32", GgufValue.i32(-2_000_000_000));
        m.put("t.f32", GgufValue.f32(1.5e-5f));
        m.put("t.bool", GgufValue.bool(true));
        m.put("t.string", GgufValue.string("héllo ▁ wörld 🙂"));
        m.put("t.u64", GgufValue.u64(-1L));
        m.put("t.i64", GgufValue.i64(Long.MIN_VALUE));
        m.put("t.f64", GgufValue.f64(Math.PI));
        m.put("t.strings", GgufValue.strings(List.of("a", "", "<0x0A>", "Ġthe")));
        m.put("t.i32s", GgufValue.i32s(new int[] {1, 3, 6}));
        m.put("t.f32s", GgufValue.f32s(new float[] {-1f, 0.5f}));
        m.put("t.nested", GgufValue.array(GgufValue.Type.ARRAY, List.of(
                GgufValue.array(GgufValue.Type.UINT8, List.of(GgufValue.u8(1), GgufValue.u8(2))),
                GgufValue.array(GgufValue.Type.BOOL, List.of()))));
        return m;
    }

    private static GgufWriter.Tensor f32(String name, long[] shape, float... values) {
        return new GgufWriter.Tensor(name, DType.F32, shape, sink -> {
            ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : values) {
                b.putFloat(v);
            }
            sink.put(b.flip());
        });
    }

    private static GgufWriter.Tensor raw(String name, DType dtype, long[] shape, byte[] bytes) {
        return new GgufWriter.Tensor(name, dtype, shape, sink -> sink.put(ByteBuffer.wrap(bytes)));
    }

    private Path valid() {
        Path f = dir.resolve("m.gguf");
        byte[] q8 = new byte[2 * 34];
        q8[0] = 0x00;
        q8[1] = 0x3c; // d = 1.0 (f16)
        for (int j = 0; j < 32; j++) {
            q8[2 + j] = (byte) (j - 16);
        }
        GgufWriter.write(f, everyType(), List.of(
                f32("a.weight", new long[] {2, 3}, 1, 2, 3, 4, 5, 6),
                f32("norm", new long[] {3}, 0.5f, -0.5f, 7),
                raw("h.weight", DType.F16, new long[] {1, 2}, new byte[] {0x00, 0x3c, 0x00, (byte) 0xc0}),
                raw("q.weight", DType.Q8_0, new long[] {2, 32}, q8)), dev.tandem.runtime.Progress.NONE);
        return f;
    }

    @Test
    void metadataOfEveryTypeAndTensorsRoundTrip() {
        Path f = valid();
        for (boolean resident : new boolean[] {false, true}) {
            try (GgufFile g = GgufFile.open(f, resident)) {
                assertEquals(3, g.version());
                assertEquals(everyType(), g.metadata());
                assertEquals(List.of("a.weight", "norm", "h.weight", "q.weight"), List.copyOf(g.names()));
                Tensor a = g.tensor("a.weight");
                assertArrayEquals(new long[] {2, 3}, a.shape());
                assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, a.toFloatArray());
                assertArrayEquals(new float[] {0.5f, -0.5f, 7}, g.tensor("norm").toFloatArray());
                assertArrayEquals(new float[] {1, -2}, g.tensor("h.weight").toFloatArray());
                assertEquals(resident ? DType.F32 : DType.F16, g.tensor("h.weight").dtype());
                assertEquals(DType.F16, g.storedType("h.weight"));
                Tensor q = g.tensor("q.weight");
                assertEquals(DType.Q8_0, q.dtype());
                assertArrayEquals(new long[] {2, 32}, q.shape());
                assertEquals(-16f, q.getFloat(0));
                assertEquals(15f, q.getFloat(31));
                assertEquals(0f, q.getFloat(32));
                assertEquals(0, g.info("q.weight").offset() % 32);
            }
        }
    }

    @Test
    void writingFailsCleanlyAndLeavesNothingBehind() throws IOException {
        Path f = dir.resolve("m.gguf");
        Files.writeString(f, "old");
        RuntimeException stop = new RuntimeException("stop");
        assertThrows(RuntimeException.class, () -> GgufWriter.write(f, Map.of(),
                List.of(f32("a", new long[] {1 << 19}, new float[1 << 19])), (done, total) -> {
                    throw stop;
                }));
        assertEquals("old", Files.readString(f));
        try (var files = Files.list(dir)) {
            assertEquals(List.of(f), files.toList());
        }
        assertThrows(IllegalStateException.class, () -> GgufWriter.write(f, Map.of(),
                List.of(new GgufWriter.Tensor("short", DType.F32, new long[] {4}, sink -> sink.put(ByteBuffer.allocate(8)))),
                dev.tandem.runtime.Progress.NONE));
        assertEquals("old", Files.readString(f));
    }

    // ---- malformed files: each is one sentence naming the file and the cause ----

    private static TandemException reject(Path file, String... parts) {
        TandemException e = assertThrows(TandemException.class, () -> GgufFile.open(file).close());
        String m = e.getMessage();
        assertTrue(m.startsWith(file.getFileName() + ":"), () -> "message does not start with the file name: " + m);
        for (String p : parts) {
            assertTrue(m.contains(p), () -> "message lacks \"" + p + "\": " + m);
        }
        assertTrue(m.endsWith(".") && !m.contains("\n"), () -> "not one sentence: " + m);
        return e;
    }

    /** A hand-built file: header fields, then whatever the case needs. */
    private static final class Raw {
        final ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);

        Raw header(int version, long tensors, long kvs) {
            b.putInt(GgufFile.MAGIC).putInt(version).putLong(tensors).putLong(kvs);
            return this;
        }

        Raw string(String s) {
            byte[] u = s.getBytes(StandardCharsets.UTF_8);
            b.putLong(u.length).put(u);
            return this;
        }

        Raw tensor(String name, long[] ne, int type, long offset) {
            string(name).putInt(ne.length);
            for (long d : ne) {
                b.putLong(d);
            }
            b.putInt(type).putLong(offset);
            return this;
        }

        Raw putInt(int v) {
            b.putInt(v);
            return this;
        }

        Raw putLong(long v) {
            b.putLong(v);
            return this;
        }

        /** Pads to the 32-byte data section and adds {@code bytes} of data. */
        Raw data(int bytes) {
            while (b.position() % 32 != 0) {
                b.put((byte) 0);
            }
            b.put(new byte[bytes]);
            return this;
        }

        byte[] bytes() {
            byte[] out = new byte[b.position()];
            b.flip().get(out);
            return out;
        }
    }

    private Path file(byte[] bytes) throws IOException {
        Path f = dir.resolve("bad.gguf");
        Files.write(f, bytes);
        return f;
    }

    private Path file(Consumer<Raw> build) throws IOException {
        Raw r = new Raw();
        build.accept(r);
        return file(r.bytes());
    }

    @Test
    void truncatedFilesAreRefused() throws IOException {
        byte[] whole = Files.readAllBytes(valid());
        reject(file(new byte[] {'G', 'G'}), "too short", "GGUF magic");
        for (int cut : new int[] {6, 20, 30, 200, whole.length - 40}) {
            byte[] part = java.util.Arrays.copyOf(whole, cut);
            reject(file(part), "truncated");
        }
    }

    @Test
    void wrongMagicAndUnsupportedVersionsAreRefused() throws IOException {
        reject(file("PK\u0003\u0004 this is a zip file".getBytes(StandardCharsets.ISO_8859_1)), "not a GGUF file");
        reject(file(r -> r.header(1, 0, 0)), "GGUF version 1 is not supported", "versions 2 and 3", "converted again");
        reject(file(r -> r.header(4, 0, 0)), "GGUF version 4 is not supported");
        try (GgufFile v2 = GgufFile.open(file(r -> r.header(2, 0, 0)))) {
            assertEquals(2, v2.version());
        }
    }

    @Test
    void absurdCountsAndLengthsAreRefusedBeforeAnyAllocation() throws IOException {
        reject(file(r -> r.header(3, Long.MAX_VALUE, 0)), "the tensor count is 9223372036854775807", "bytes left");
        reject(file(r -> r.header(3, 0, -1L)), "the metadata count is 18446744073709551615");
        reject(file(r -> r.header(3, 0, 1).putLong(1L << 40).putLong(0)), "the length of metadata key 0 is 1099511627776 bytes");
        reject(file(r -> r.header(3, 0, 1).string("k").putInt(GgufValue.Type.ARRAY.id()).putInt(0).putLong(1L << 40)),
                "the length of metadata \"k\"", "bytes left");
        reject(file(r -> r.header(3, 0, 1).string("k").putInt(13)), "value type 13, which GGUF does not define");
        reject(file(r -> r.header(3, 0, 1).string("k").putInt(GgufValue.Type.STRING.id()).putLong(2).putInt(0xfffe)),
                "metadata \"k\" is not valid UTF-8");
    }

    @Test
    void badTensorsAreRefused() throws IOException {
        reject(file(r -> r.header(3, 1, 0).tensor("w", new long[] {4, 2}, 16, 0).data(64)),
                "tensor \"w\" has ggml type 16 (iq2_xxs), which Tandem does not support", "q4_k");
        reject(file(r -> r.header(3, 1, 0).tensor("w", new long[] {4, 2}, 77, 0).data(64)), "ggml type 77,");
        reject(file(r -> r.header(3, 1, 0).tensor("w", new long[] {4, 2}, 0, 0).data(16)),
                "tensor \"w\" (32 bytes at offset 0", "lies past the end of the file", "truncated");
        reject(file(r -> r.header(3, 1, 0).tensor("w", new long[] {4, 2}, 0, 16).data(64)),
                "offset 16", "not a multiple of the alignment 32");
        reject(file(r -> r.header(3, 2, 0).tensor("w", new long[] {4}, 0, 0).tensor("w", new long[] {4}, 0, 32).data(64)),
                "tensor name \"w\" appears twice");
        reject(file(r -> r.header(3, 1, 0).tensor("w", new long[] {48, 2}, GgufFile.ggmlType(DType.Q8_0), 0).data(256)),
                "rows of 48 values, not a whole number of q8_0 blocks (32 values each)");
        reject(file(r -> r.header(3, 1, 0).tensor("w", new long[] {1L << 40, 1L << 40}, 0, 0).data(64)), "too large to address");
        reject(file(r -> r.header(3, 1, 0).tensor("w", new long[] {1, 1, 1, 1, 1}, 0, 0).data(64)), "5 dimensions");
        reject(file(r -> r.header(3, 2, 0).tensor("a", new long[] {16}, 0, 0).tensor("b", new long[] {4}, 0, 32).data(96)),
                "tensors \"a\" and \"b\" overlap");
        reject(file(r -> r.header(3, 0, 1).string(GgufFile.ALIGNMENT_KEY).putInt(GgufValue.Type.UINT32.id()).putInt(24)),
                "general.alignment is u32 24, but must be a u32 power of two");
    }

    @Test
    void aMissingFileIsOneSentence() {
        TandemException e = assertThrows(TandemException.class, () -> GgufFile.open(dir.resolve("none.gguf")));
        assertEquals("GGUF file not found: " + dir.resolve("none.gguf") + ".", e.getMessage());
        assertFalse(e.getMessage().contains("Exception"));
    }
}
