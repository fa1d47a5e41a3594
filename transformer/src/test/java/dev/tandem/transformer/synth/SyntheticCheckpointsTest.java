package dev.tandem.transformer.synth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.weights.SafetensorsWriter.TensorInfo;
import dev.tandem.transformer.weights.WeightStore;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SyntheticCheckpointsTest {

    @TempDir
    Path tmp;

    /** A tiny config of each family, with every optional module switched on somewhere. */
    static String config(String type, boolean tied, String extra) {
        return """
                {"model_type": "%s", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                 "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                 "tie_word_embeddings": %s %s}
                """.formatted(type, tied, extra);
    }

    static final Map<String, String> FAMILIES = Map.of(
            "llama-biases", config("llama", false, ", \"attention_bias\": true, \"mlp_bias\": true"),
            "mistral", config("mistral", false, ""),
            "qwen2-tied", config("qwen2", true, ""),
            "qwen3", config("qwen3", true, ""));

    private static SyntheticCheckpoints.Spec spec(String family, DType dtype, long seed) {
        return SyntheticCheckpoints.Spec.ofConfigJson(family, FAMILIES.get(family), dtype, seed);
    }

    @Test
    void shapesHaveThePublishedParameterCounts() {
        assertEquals(List.of("tinyllama-1.1b", "qwen2.5-0.5b", "smollm2-135m"), SyntheticCheckpoints.shapeNames());
        Map<String, Long> expected = Map.of("tinyllama-1.1b", 1_100_048_384L, "qwen2.5-0.5b", 494_032_768L,
                "smollm2-135m", 134_515_008L);
        for (String shape : SyntheticCheckpoints.shapeNames()) {
            var s = SyntheticCheckpoints.Spec.ofShape(shape, DType.BF16, 0);
            assertEquals(expected.get(shape), SyntheticCheckpoints.parameterCount(s.config()), shape);
            long data = SyntheticCheckpoints.tensors(s).stream().mapToLong(TensorInfo::byteSize).sum();
            assertEquals(2 * expected.get(shape), data, shape);
            long total = SyntheticCheckpoints.totalBytes(s);
            assertTrue(total > data && total < data + 20_000_000, shape + ": " + total);
        }
        ModelConfig tiny = SyntheticCheckpoints.Spec.ofShape("tinyllama-1.1b", DType.F32, 0).config();
        assertEquals(List.of(2048, 5632, 22, 32, 4, 64, 32000, 2048), List.of(tiny.hiddenSize(), tiny.intermediateSize(),
                tiny.numLayers(), tiny.numHeads(), tiny.numKvHeads(), tiny.headDim(), tiny.vocabSize(), tiny.maxPositionEmbeddings()));
        assertFalse(tiny.tieWordEmbeddings());
        ModelConfig qwen = SyntheticCheckpoints.Spec.ofShape("qwen2.5-0.5b", DType.F32, 0).config();
        assertTrue(qwen.qkvBias() && qwen.tieWordEmbeddings() && qwen.slidingWindow() == null);
        assertEquals(1e6, qwen.ropeTheta());
        ModelConfig smol = SyntheticCheckpoints.Spec.ofShape("smollm2-135m", DType.F32, 0).config();
        assertTrue(smol.tieWordEmbeddings() && !smol.qkvBias());
        assertEquals(List.of(576, 1536, 30, 9, 3, 64, 49152, 8192), List.of(smol.hiddenSize(), smol.intermediateSize(),
                smol.numLayers(), smol.numHeads(), smol.numKvHeads(), smol.headDim(), smol.vocabSize(), smol.maxPositionEmbeddings()));
        assertEquals(100000.0, smol.ropeTheta());
    }

    @Test
    void unknownShapeListsTheKnownOnes() {
        TandemException e = assertThrows(TandemException.class,
                () -> SyntheticCheckpoints.Spec.ofShape("gpt-5", DType.BF16, 0));
        assertEquals("unknown shape \"gpt-5\" (known shapes: tinyllama-1.1b, qwen2.5-0.5b, smollm2-135m).", e.getMessage());
    }

    @Test
    void badConfigsAreRejectedNamingTheFile() throws Exception {
        Path f = tmp.resolve("my-config.json");
        Files.writeString(f, "{\"model_type\": \"gpt2\"}");
        TandemException e = assertThrows(TandemException.class, () -> SyntheticCheckpoints.Spec.ofConfigFile(f, DType.F32, 0));
        assertTrue(e.getMessage().startsWith(f + ": model_type \"gpt2\" is not supported"), e.getMessage());
        Files.writeString(f, "{\"model_type\": ");
        e = assertThrows(TandemException.class, () -> SyntheticCheckpoints.Spec.ofConfigFile(f, DType.F32, 0));
        assertTrue(e.getMessage().startsWith(f + " is not valid JSON"), e.getMessage());
        e = assertThrows(TandemException.class,
                () -> SyntheticCheckpoints.Spec.ofConfigFile(tmp.resolve("missing.json"), DType.F32, 0));
        assertTrue(e.getMessage().startsWith("config file not found: "), e.getMessage());
        e = assertThrows(TandemException.class, () -> SyntheticCheckpoints.Spec.ofConfigJson("small",
                config("llama", true, "").replace("\"vocab_size\": 300", "\"vocab_size\": 257"), DType.F32, 0));
        assertTrue(e.getMessage().startsWith("small: vocab_size is 257, but a synthetic checkpoint needs at least 258"),
                e.getMessage());
    }

    @Test
    void everyFamilyLoadsAndRunsAForwardPass() throws Exception {
        for (String family : FAMILIES.keySet()) {
            for (DType dtype : new DType[] {DType.F32, DType.BF16, DType.F16}) { // what safetensors holds
                var s = spec(family, dtype, 7);
                Path out = tmp.resolve(family + "-" + dtype.lowerName());
                var r = SyntheticCheckpoints.write(s, out, false, Progress.NONE);
                assertEquals(out, r.directory());
                assertEquals(SyntheticCheckpoints.totalBytes(s), r.bytes());
                long onDisk;
                try (Stream<Path> files = Files.list(out)) {
                    List<Path> list = files.toList();
                    assertEquals(4, list.size(), list.toString());
                    onDisk = 0;
                    for (Path p : list) {
                        onDisk += Files.size(p);
                    }
                }
                assertEquals(r.bytes(), onDisk);

                JsonNode cfg = new ObjectMapper().readTree(out.resolve("config.json").toFile());
                assertEquals(299, cfg.get("bos_token_id").asInt());
                assertEquals(299, cfg.get("eos_token_id").asInt());
                JsonNode gen = new ObjectMapper().readTree(out.resolve("generation_config.json").toFile());
                assertEquals(299, gen.get("eos_token_id").asInt());

                try (LanguageModel m = ModelLoader.load(out)) {
                    assertEquals(dtype, m.weightDType(), family);
                    assertEquals(SyntheticCheckpoints.parameterCount(m.config()), m.parameterCount(), family);
                    assertEquals(300, m.tokenizer().vocabSize());
                    assertEquals(List.of(299), m.config().eosTokenIds());
                    try (KvSequence seq = m.newSequence()) {
                        int[] ids = m.tokenizer().encode(" hello world");
                        float[] logits = m.forward(Batch.of(Batch.Entry.continuation(seq, ids))).lastLogits(0);
                        assertEquals(300, logits.length);
                        for (float v : logits) {
                            assertTrue(Float.isFinite(v) && Math.abs(v) < 10, family + " " + v);
                        }
                    }
                }
            }
        }
    }

    @Test
    void weightsHaveTheDocumentedDistribution() throws Exception {
        Path out = tmp.resolve("dist");
        SyntheticCheckpoints.write(spec("llama-biases", DType.F32, 3), out, false, Progress.NONE);
        try (WeightStore w = WeightStore.open(out)) {
            for (String name : w.names()) {
                Tensor t = w.get(name);
                float[] v = t.toFloatArray();
                if (name.endsWith("norm.weight")) {
                    for (float x : v) {
                        assertEquals(1f, x, name);
                    }
                } else if (name.endsWith(".bias")) {
                    for (float x : v) {
                        assertEquals(0f, x, name);
                    }
                } else {
                    double sum = 0, sq = 0;
                    float a = WeightFill.HALF_WIDTH;
                    for (float x : v) {
                        assertTrue(x >= -a && x < a, name + " " + x);
                        sum += x;
                        sq += (double) x * x;
                    }
                    double mean = sum / v.length, std = Math.sqrt(sq / v.length - mean * mean);
                    assertEquals(0, mean, 0.003, name);
                    assertEquals(0.02, std, 0.002, name);
                }
            }
        }
    }

    @Test
    void bytesDependOnTheSeedOnlyNotOnThreads() throws Exception {
        // Large enough for several chunks and several buffers per tensor.
        String json = """
                {"model_type": "llama", "vocab_size": 20000, "hidden_size": 512, "intermediate_size": 1024,
                 "num_hidden_layers": 1, "num_attention_heads": 8, "num_key_value_heads": 8, "tie_word_embeddings": false}
                """;
        var s = SyntheticCheckpoints.Spec.ofConfigJson("det", json, DType.F32, 11);
        Path a = tmp.resolve("a"), b = tmp.resolve("b"), c = tmp.resolve("c");
        SyntheticCheckpoints.write(s, a, false, Progress.NONE, 1);
        SyntheticCheckpoints.write(s, b, false, Progress.NONE, 3);
        SyntheticCheckpoints.write(s.withSeed(12), c, false, Progress.NONE, 2);
        for (String f : SyntheticCheckpoints.FILES) {
            assertEquals(-1L, Files.mismatch(a.resolve(f), b.resolve(f)), f);
        }
        assertNotEquals(-1L, Files.mismatch(a.resolve("model.safetensors"), c.resolve("model.safetensors")));
        // bf16 values are the f32 values rounded.
        Path d = tmp.resolve("d");
        SyntheticCheckpoints.write(s.withDType(DType.BF16), d, false, Progress.NONE, 2);
        try (WeightStore f32 = WeightStore.open(a); WeightStore bf16 = WeightStore.open(d)) {
            float[] x = f32.get("lm_head.weight").toFloatArray(), y = bf16.get("lm_head.weight").toFloatArray();
            for (int i = 0; i < x.length; i += 997) {
                assertEquals(DType.bf16ToFloat(DType.floatToBf16(x[i])), y[i]);
            }
        }
    }

    @Test
    void progressIsMonotoneAndEndsAtTheTotal() {
        var s = spec("qwen3", DType.BF16, 0);
        List<long[]> calls = new ArrayList<>();
        SyntheticCheckpoints.write(s, tmp.resolve("p"), false, (done, total) -> calls.add(new long[] {done, total}));
        long total = SyntheticCheckpoints.totalBytes(s);
        long last = -1;
        for (long[] c : calls) {
            assertEquals(total, c[1]);
            assertTrue(c[0] >= last && c[0] <= total);
            last = c[0];
        }
        assertEquals(0, calls.getFirst()[0]);
        assertEquals(total, last);
    }

    @Test
    void aFailureMidWriteLeavesNothingBehind() throws Exception {
        var s = spec("llama-biases", DType.F32, 0);
        long total = SyntheticCheckpoints.totalBytes(s);
        Path out = tmp.resolve("fail");
        RuntimeException boom = new IllegalStateException("injected");
        RuntimeException e = assertThrows(IllegalStateException.class, () -> SyntheticCheckpoints.write(s, out, false,
                (done, t) -> {
                    if (done > total / 2) {
                        throw boom;
                    }
                }));
        assertEquals(boom, e);
        assertFalse(Files.exists(out));
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(List.of(), left.toList());
        }
    }

    @Test
    void anExistingDirectoryIsKeptUnlessReplaced() throws Exception {
        var s = spec("mistral", DType.BF16, 0);
        Path out = tmp.resolve("exists");
        Files.createDirectories(out);
        Files.writeString(out.resolve("config.json"), "old");
        TandemException e = assertThrows(TandemException.class, () -> SyntheticCheckpoints.write(s, out, false, Progress.NONE));
        assertEquals("the output directory " + out + " already exists and was left as it is (use --force to replace it).",
                e.getMessage());
        assertEquals("old", Files.readString(out.resolve("config.json")));

        // A failed replacement keeps the old directory too.
        assertThrows(IllegalStateException.class, () -> SyntheticCheckpoints.write(s, out, true, (d, t) -> {
            if (d > t / 2) {
                throw new IllegalStateException("injected");
            }
        }));
        assertEquals("old", Files.readString(out.resolve("config.json")));

        SyntheticCheckpoints.write(s, out, true, Progress.NONE);
        assertTrue(Files.readString(out.resolve("config.json")).contains("\"mistral\""));
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(List.of(out), left.toList(), "no .partial or .old directory left");
        }

        // Something that is not a checkpoint is never replaced.
        Path home = tmp.resolve("home");
        Files.createDirectories(home.resolve("documents"));
        e = assertThrows(TandemException.class, () -> SyntheticCheckpoints.write(s, home, true, Progress.NONE));
        assertTrue(e.getMessage().startsWith("refusing to replace " + home), e.getMessage());
        assertTrue(Files.isDirectory(home.resolve("documents")));
        Path file = tmp.resolve("file");
        Files.writeString(file, "x");
        e = assertThrows(TandemException.class, () -> SyntheticCheckpoints.write(s, file, true, Progress.NONE));
        assertTrue(e.getMessage().contains("is not a directory"), e.getMessage());
    }

    @Test
    void refusesWhenTheDiskIsTooSmall() {
        String json = """
                {"model_type": "llama", "vocab_size": 1000, "hidden_size": 1048576, "intermediate_size": 4194304,
                 "num_hidden_layers": 1000, "num_attention_heads": 16}
                """;
        var s = SyntheticCheckpoints.Spec.ofConfigJson("huge", json, DType.F32, 0);
        TandemException e = assertThrows(TandemException.class,
                () -> SyntheticCheckpoints.write(s, tmp.resolve("huge"), false, Progress.NONE));
        assertTrue(e.getMessage().startsWith("not enough free space in " + tmp + ": the checkpoint needs "), e.getMessage());
        assertTrue(e.getMessage().matches(".* needs [0-9.]+ [PE]B but only [0-9.]+ [kMGT]?B is available\\."), e.getMessage());
        assertFalse(Files.exists(tmp.resolve("huge")));
    }

    @Test
    void tensorNamesAreHuggingFaces() {
        List<String> names = SyntheticCheckpoints.tensors(spec("qwen3", DType.F32, 0)).stream().map(TensorInfo::name).toList();
        assertTrue(names.contains("model.layers.1.self_attn.q_norm.weight"));
        assertTrue(names.contains("model.layers.1.self_attn.k_norm.weight"));
        assertFalse(names.contains("lm_head.weight"));
        List<String> llama = SyntheticCheckpoints.tensors(spec("llama-biases", DType.F32, 0)).stream().map(TensorInfo::name).toList();
        assertEquals("model.embed_tokens.weight", llama.getFirst());
        assertEquals("lm_head.weight", llama.getLast());
        for (String n : new String[] {"q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias"}) {
            assertTrue(llama.contains("model.layers.0.self_attn." + n), n);
        }
        assertTrue(llama.contains("model.layers.0.mlp.down_proj.bias"));
        List<String> qwen2 = SyntheticCheckpoints.tensors(spec("qwen2-tied", DType.F32, 0)).stream().map(TensorInfo::name).toList();
        assertTrue(qwen2.contains("model.layers.0.self_attn.q_proj.bias"));
        assertFalse(qwen2.contains("model.layers.0.self_attn.o_proj.bias"));
        assertArrayEquals(new long[] {300, 64}, SyntheticCheckpoints.tensors(spec("qwen2-tied", DType.F32, 0)).getFirst().shape());
    }
}
