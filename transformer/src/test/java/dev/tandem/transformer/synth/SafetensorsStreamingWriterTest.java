package dev.tandem.transformer.synth;

import dev.tandem.runtime.DType;
import dev.tandem.transformer.weights.SafetensorsWriter;
import dev.tandem.transformer.weights.SafetensorsWriter.TensorInfo;
import dev.tandem.transformer.weights.WeightStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The streaming half of {@link SafetensorsWriter} (moved to main for synth). */
class SafetensorsStreamingWriterTest {

    @TempDir
    Path dir;

    private static final List<TensorInfo> TENSORS = List.of(
            new TensorInfo("a", DType.F32, new long[] {2, 3}),
            new TensorInfo("b", DType.BF16, new long[] {4}),
            new TensorInfo("empty", DType.F32, new long[] {0, 5}));

    private static ByteBuffer f32(float... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.flip();
    }

    private static ByteBuffer bf16(float... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putShort(DType.floatToBf16(x));
        }
        return b.flip();
    }

    @Test
    void streamedFileEqualsTheInMemoryOneAndLoads() throws Exception {
        Path file = dir.resolve("model.safetensors");
        try (var w = SafetensorsWriter.open(file, TENSORS, Map.of("format", "pt"))) {
            w.beginTensor("a");
            w.append(f32(1, 2));
            w.append(f32(3, 4, 5, 6));
            w.endTensor();
            w.writeTensor("b", bf16(1, -2, 3, 0.5f));
            w.writeTensor("empty", ByteBuffer.allocate(0));
            assertEquals(SafetensorsWriter.fileSize(TENSORS, Map.of("format", "pt")), w.bytesWritten());
            w.finish();
        }
        Map<String, SafetensorsWriter.Spec> same = new LinkedHashMap<>();
        same.put("a", SafetensorsWriter.f32(new long[] {2, 3}, 1, 2, 3, 4, 5, 6));
        same.put("b", SafetensorsWriter.spec(DType.BF16, new long[] {4}, 1, -2, 3, 0.5f));
        same.put("empty", SafetensorsWriter.f32(new long[] {0, 5}));
        assertArrayEquals(SafetensorsWriter.bytes(same, Map.of("format", "pt")), Files.readAllBytes(file));
        try (WeightStore s = WeightStore.open(dir)) {
            assertArrayEquals(new float[] {1, -2, 3, 0.5f}, s.get("b", 4).toFloatArray());
        }
    }

    @Test
    void misuseIsAClearErrorAndAnUnfinishedFileIsDeleted() {
        Path file = dir.resolve("x.safetensors");
        IllegalArgumentException dup = assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.open(file,
                List.of(new TensorInfo("a", DType.F32, new long[] {1}), new TensorInfo("a", DType.F32, new long[] {1})), Map.of()));
        assertEquals("tensor \"a\" is listed twice; safetensors names must be unique.", dup.getMessage());
        assertFalse(Files.exists(file));
        assertEquals("tensor \"x\" has a negative dimension in shape [2, -1].", assertThrows(IllegalArgumentException.class,
                () -> new TensorInfo("x", DType.F32, new long[] {2, -1})).getMessage());
        assertThrows(IllegalArgumentException.class, () -> new TensorInfo("__metadata__", DType.F32, new long[] {1}));
        assertThrows(IllegalArgumentException.class, () -> new TensorInfo("", DType.F32, new long[] {1}));
        assertThrows(IllegalArgumentException.class, () -> new TensorInfo("huge", DType.F32, new long[] {1L << 40, 1L << 30}));

        try (var w = SafetensorsWriter.open(file, TENSORS, Map.of())) {
            assertEquals("tensor \"b\" begun out of order: the header expects \"a\" next.",
                    assertThrows(IllegalStateException.class, () -> w.beginTensor("b")).getMessage());
            assertEquals("tensor \"zzz\" begun out of order: the header expects \"a\" next, and has no tensor of that name.",
                    assertThrows(IllegalStateException.class, () -> w.beginTensor("zzz")).getMessage());
            assertThrows(IllegalStateException.class, () -> w.append(f32(1)));
            w.beginTensor("a");
            assertEquals("tensor \"a\" holds 24 bytes, but 28 were written.",
                    assertThrows(IllegalStateException.class, () -> w.append(f32(1, 2, 3, 4, 5, 6, 7))).getMessage());
            w.append(f32(1, 2, 3));
            assertEquals("tensor \"a\" holds 24 bytes, but only 12 were written.",
                    assertThrows(IllegalStateException.class, w::endTensor).getMessage());
            w.append(f32(4, 5, 6));
            w.endTensor();
            assertEquals("only 1 of 3 tensors were written; \"b\" is next.",
                    assertThrows(IllegalStateException.class, w::finish).getMessage());
            assertEquals(true, Files.exists(file));
        }
        assertFalse(Files.exists(file), "close without finish deletes the incomplete file");
    }
}
