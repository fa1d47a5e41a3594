package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.ModelConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static dev.tandem.transformer.weights.SafetensorsWriter.ramp;
import static dev.tandem.transformer.weights.SafetensorsWriter.spec;
import static dev.tandem.transformer.weights.SafetensorsWriter.tensors;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WeightStoreTest {

    @TempDir
    Path dir;

    private static void assertMessage(TandemException e, String... parts) {
        String m = e.getMessage();
        for (String p : parts) {
            assertTrue(m.contains(p), () -> "message lacks \"" + p + "\": " + m);
        }
        assertTrue(m.endsWith(".") && !m.contains("\n"), () -> "not one sentence: " + m);
    }

    // ---------------------------------------------------------------- the repository's model

    @Test
    void bardLWeightsAllHaveTheShapesItsConfigImplies() {
        Path model = TestModels.model("bard-l");
        ModelConfig c = ModelConfig.load(model);
        long h = c.hiddenSize();
        long q = (long) c.numHeads() * c.headDim();
        long kv = (long) c.numKvHeads() * c.headDim();
        long ff = c.intermediateSize();
        try (WeightStore w = WeightStore.open(model)) {
            assertEquals(DType.F32, w.dominantDType());
            assertEquals(3 + 9 * c.numLayers(), w.names().size());
            w.get("model.embed_tokens.weight", c.vocabSize(), h);
            w.get("lm_head.weight", c.vocabSize(), h);
            for (int i = 0; i < c.numLayers(); i++) {
                String p = "model.layers." + i + ".";
                w.get(p + "input_layernorm.weight", h);
                w.get(p + "post_attention_layernorm.weight", h);
                w.get(p + "self_attn.q_proj.weight", q, h);
                w.get(p + "self_attn.k_proj.weight", kv, h);
                w.get(p + "self_attn.v_proj.weight", kv, h);
                w.get(p + "self_attn.o_proj.weight", h, q);
                w.get(p + "mlp.gate_proj.weight", ff, h);
                w.get(p + "mlp.up_proj.weight", ff, h);
                w.get(p + "mlp.down_proj.weight", h, ff);
                assertTrue(w.find(p + "self_attn.q_proj.bias", q).isEmpty(), "bard has no biases");
            }
            // values read with Python's struct module from the same file
            Tensor norm = w.get("model.norm.weight", h);
            assertEquals(1067605578, Float.floatToRawIntBits(norm.getFloat(0)));
            assertEquals(1067573171, Float.floatToRawIntBits(norm.getFloat(h - 1)));
            Tensor emb = w.get("model.embed_tokens.weight", c.vocabSize(), h);
            assertEquals(3141708841L, Integer.toUnsignedLong(Float.floatToRawIntBits(emb.getFloat(0))));
            assertEquals(3155897049L, Integer.toUnsignedLong(Float.floatToRawIntBits(emb.getFloat(emb.numel() - 1))));
            Tensor down = w.get("model.layers.5.mlp.down_proj.weight", h, ff);
            assertEquals(1016865546, Float.floatToRawIntBits(down.getFloat(0)));
        }
    }

    @Test
    void closeUnmapsEveryShardAndIsIdempotent() {
        WeightStore w = WeightStore.open(TestModels.model("bard-s"));
        MemorySegment seg = w.get("model.norm.weight", 64).segment();
        assertTrue(seg.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 0) != 0f);
        w.close();
        w.close();
        assertThrows(IllegalStateException.class, () -> seg.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 0));
        assertThrows(IllegalStateException.class, () -> w.get("model.norm.weight"));
    }

    @Test
    void concurrentReadersSeeTheSameTensors() throws Exception {
        try (WeightStore w = WeightStore.open(TestModels.model("bard-m"));
             ExecutorService pool = Executors.newFixedThreadPool(4)) {
            List<Future<Double>> sums = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                sums.add(pool.submit(() -> {
                    double s = 0;
                    for (String n : w.names()) {
                        Tensor x = w.get(n);
                        s += x.getFloat(0) + x.getFloat(x.numel() - 1);
                    }
                    return s;
                }));
            }
            double first = sums.getFirst().get();
            for (Future<Double> f : sums) {
                assertEquals(first, f.get());
            }
        }
    }

    // ---------------------------------------------------------------- synthetic checkpoints

    @Test
    void shapeMismatchNamesTheFileTheTensorAndBothShapes() {
        SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors(
                "model.layers.0.self_attn.q_proj.weight", ramp(DType.F32, new long[] {256, 256}, 0, 1)));
        try (WeightStore w = WeightStore.open(dir)) {
            TandemException e = assertThrows(TandemException.class,
                    () -> w.get("model.layers.0.self_attn.q_proj.weight", 512, 256));
            assertEquals("model.safetensors: tensor \"model.layers.0.self_attn.q_proj.weight\" has shape [256, 256] "
                    + "but config.json implies [512, 256].", e.getMessage());
            assertThrows(TandemException.class, () -> w.find("model.layers.0.self_attn.q_proj.weight", 256));
            assertEquals(65535f, w.get("model.layers.0.self_attn.q_proj.weight").getFloat(65535), "no shape: no check");
        }
    }

    @Test
    void missingTensorNamesTheTensorAndTheDirectoryWhileFindIsEmpty() {
        SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors("w", spec(DType.F32, new long[] {1}, 1f)));
        try (WeightStore w = WeightStore.open(dir)) {
            TandemException e = assertThrows(TandemException.class, () -> w.get("model.norm.weight", 4));
            assertMessage(e, "tensor \"model.norm.weight\"", dir.toString(), "model.safetensors");
            assertTrue(w.find("model.norm.bias", 4).isEmpty());
            assertTrue(w.contains("w"));
            assertFalse(w.contains("model.norm.weight"));
        }
    }

    @Test
    void directoryWithoutWeightsNamesBothFiles() {
        TandemException e = assertThrows(TandemException.class, () -> WeightStore.open(dir));
        assertMessage(e, dir.toString(), "model.safetensors", "model.safetensors.index.json");
        Path nowhere = dir.resolve("absent");
        assertEquals("model directory not found: " + nowhere + ".",
                assertThrows(TandemException.class, () -> WeightStore.open(nowhere)).getMessage());
    }

    @Test
    void shardedIndexWithAMissingShardNamesIt() {
        SafetensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"),
                tensors("a", spec(DType.F32, new long[] {1}, 1f)));
        SafetensorsWriter.writeIndex(dir.resolve("model.safetensors.index.json"), Map.of(
                "a", "model-00001-of-00002.safetensors", "b", "model-00002-of-00002.safetensors"));
        TandemException e = assertThrows(TandemException.class, () -> WeightStore.open(dir));
        assertMessage(e, "model.safetensors.index.json", "\"model-00002-of-00002.safetensors\"", "\"b\"");
    }

    @Test
    void indexedTensorAbsentFromItsShardNamesBoth() {
        SafetensorsWriter.write(dir.resolve("model-00001-of-00001.safetensors"),
                tensors("a", spec(DType.F32, new long[] {1}, 1f)));
        SafetensorsWriter.writeIndex(dir.resolve("model.safetensors.index.json"), Map.of(
                "a", "model-00001-of-00001.safetensors", "lm_head.weight", "model-00001-of-00001.safetensors"));
        TandemException e = assertThrows(TandemException.class, () -> WeightStore.open(dir));
        assertMessage(e, "\"lm_head.weight\"", "\"model-00001-of-00001.safetensors\"");
    }

    @Test
    void malformedIndexIsReportedByName() throws IOException {
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": ");
        assertMessage(assertThrows(TandemException.class, () -> WeightStore.open(dir)),
                "model.safetensors.index.json", "not valid JSON");
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"metadata\": {}}");
        assertMessage(assertThrows(TandemException.class, () -> WeightStore.open(dir)),
                "model.safetensors.index.json", "weight_map");
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": {\"a\": \"../x.safetensors\"}}");
        assertMessage(assertThrows(TandemException.class, () -> WeightStore.open(dir)),
                "model.safetensors.index.json", "../x.safetensors");
        // A name no file can have: the path API's own exception before.
        Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"weight_map\": {\"a\": \"x\\u0000.safetensors\"}}");
        assertMessage(assertThrows(TandemException.class, () -> WeightStore.open(dir)),
                "model.safetensors.index.json", "\"x\\u0000.safetensors\"", "not a file inside the model directory");
        // Invalid UTF-8, even in a part the parser would skip.
        Files.write(dir.resolve("model.safetensors.index.json"), new byte[] {'{', '"', 'm', '"', ':', '"', (byte) 0xC3, '"', '}'});
        assertMessage(assertThrows(TandemException.class, () -> WeightStore.open(dir)),
                "model.safetensors.index.json is not valid UTF-8 at line 1, byte 7 of the line");
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"}) // what safetensors holds
    void shardedCheckpointReadsTheRightValuesAcrossShards(DType dtype) {
        float[] embed = {0.5f, -1.0f, 2.0f, -0.25f, 3.5f, 1.0f, -2.5f, 0.75f};   // exact in F32, BF16 and F16
        float[] norm = {1.0f, 1.5f, -0.5f, 2.0f};
        float[] head = {-3.0f, 0.125f, 4.0f, -0.0625f, 8.0f, 0.5f, -1.25f, 6.0f};
        SafetensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), tensors(
                "model.embed_tokens.weight", spec(dtype, new long[] {2, 4}, embed),
                "model.norm.weight", spec(dtype, new long[] {4}, norm)));
        SafetensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), tensors(
                "lm_head.weight", spec(dtype, new long[] {2, 4}, head)));
        SafetensorsWriter.writeIndex(dir.resolve("model.safetensors.index.json"), Map.of(
                "model.embed_tokens.weight", "model-00001-of-00002.safetensors",
                "model.norm.weight", "model-00001-of-00002.safetensors",
                "lm_head.weight", "model-00002-of-00002.safetensors"));
        try (WeightStore w = WeightStore.open(dir)) {
            assertEquals(dtype, w.dominantDType());
            assertEquals(3, w.names().size());
            Tensor e = w.get("model.embed_tokens.weight", 2, 4);
            Tensor n = w.get("model.norm.weight", 4);
            Tensor l = w.get("lm_head.weight", 2, 4);
            assertEquals(dtype, e.dtype());
            assertArrayEquals(embed, e.toFloatArray());
            assertArrayEquals(norm, n.toFloatArray());
            assertArrayEquals(head, l.toFloatArray());
            assertEquals(dir.resolve("model-00002-of-00002.safetensors"), w.fileOf("lm_head.weight").orElseThrow());
            TandemException m = assertThrows(TandemException.class, () -> w.get("lm_head.weight", 4, 2));
            assertTrue(m.getMessage().startsWith("model-00002-of-00002.safetensors: tensor \"lm_head.weight\""),
                    m.getMessage());
        }
    }

    @Test
    void dominantDTypeIsTheOneHoldingTheMostBytes() {
        SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors(
                "norm", ramp(DType.F32, new long[] {8}, 1, 0),
                "proj", ramp(DType.BF16, new long[] {8, 8}, 0, 0.5f)));
        try (WeightStore w = WeightStore.open(dir)) {
            assertEquals(DType.BF16, w.dominantDType());
        }
    }

    @Test
    void singleFileIsPreferredOverTheIndex() {
        SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors("only", spec(DType.F16, new long[] {1}, 2f)));
        SafetensorsWriter.writeIndex(dir.resolve("model.safetensors.index.json"), Map.of("x", "missing.safetensors"));
        try (WeightStore w = WeightStore.open(dir)) {
            assertEquals(2f, w.get("only", 1).getFloat(0));
        }
    }
}
