package dev.tandem.transformer.synth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.weights.WeightStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PaddedCheckpointsTest {

    /**
     * Largest allowed |logit(padded) − logit(source)| for f32 output, relative to the row's logit scale
     * max(1, max |logit|) (bard-s's logits reach about 12, so about 1e-4 absolute; measured: under 7e-6
     * absolute). The two models differ only in the rounding of the scaled norm weights and eps, and in
     * where zeros enter the dot products, which reorders their sums.
     */
    static final double F32_TOLERANCE = 1e-5;

    @TempDir
    Path tmp;

    /**
     * bard-s (hidden 64, 4 heads over 2 KV heads, head_dim 16, MLP 176, 2 layers) grown to hidden 192:
     * 12 query heads over 3 KV heads, so a group of 4 (bard-s: 2), one KV head more, d/D = 1/3 (no exact
     * √), two all-zero layers. The shape's own vocabulary and head count are not used.
     */
    static final String BARD_S_SHAPE = """
            {"model_type": "llama", "vocab_size": 32000, "hidden_size": 192, "intermediate_size": 320,
             "num_hidden_layers": 4, "num_attention_heads": 6, "num_key_value_heads": 3}
            """;

    private PaddedCheckpoints.Spec bardS(DType dtype) {
        return PaddedCheckpoints.Spec.ofConfigJson(TestModels.model("bard-s"), "small-shape", BARD_S_SHAPE, dtype);
    }

    /** Logits at every row of prompt + continuation, in one prefill pass. */
    static List<float[]> logits(LanguageModel m, int[] prompt, int[] continuation) {
        int[] ids = IntStream.concat(IntStream.of(prompt), IntStream.of(continuation)).toArray();
        try (KvSequence seq = m.newSequence()) {
            ForwardResult r = m.forward(Batch.of(Batch.Entry.continuationAllLogits(seq, ids)));
            List<float[]> rows = new ArrayList<>();
            for (int i = 0; i < r.rows(0); i++) {
                rows.add(r.logits(0, i));
            }
            return rows;
        }
    }

    /** Greedy decoding through the KV cache, one token a step. */
    static int[] greedy(LanguageModel m, int[] prompt, int steps) {
        int[] got = new int[steps];
        try (KvSequence seq = m.newSequence()) {
            float[] logits = m.forward(Batch.of(Batch.Entry.continuation(seq, prompt))).lastLogits(0);
            for (int step = 0; step < steps; step++) {
                got[step] = TestModels.argmax(logits);
                if (step + 1 < steps) {
                    logits = m.forward(Batch.of(Batch.Entry.continuation(seq, got[step]))).lastLogits(0);
                }
            }
        }
        return got;
    }

    static double maxAbsDiff(List<float[]> a, List<float[]> b) {
        assertEquals(a.size(), b.size());
        double max = 0;
        for (int r = 0; r < a.size(); r++) {
            assertEquals(a.get(r).length, b.get(r).length);
            for (int i = 0; i < a.get(r).length; i++) {
                max = Math.max(max, Math.abs(a.get(r)[i] - b.get(r)[i]));
            }
        }
        return max;
    }

    /**
     * The largest |a − b| over a row divided by that row's logit scale, max(1, max |a|), over all rows:
     * what {@link #F32_TOLERANCE} bounds.
     */
    static double maxScaledDiff(List<float[]> a, List<float[]> b) {
        double worst = 0;
        for (int r = 0; r < a.size(); r++) {
            double scale = 1;
            for (float v : a.get(r)) {
                scale = Math.max(scale, Math.abs(v));
            }
            worst = Math.max(worst, maxAbsDiff(List.of(a.get(r)), List.of(b.get(r))) / scale);
        }
        return worst;
    }

    @Test
    void paddedBardSHasBardSLogitsAndGoldenGreedyPath() throws Exception {
        Path source = TestModels.model("bard-s");
        PaddedCheckpoints.Spec spec = bardS(DType.F32);
        Path out = tmp.resolve("padded");
        SyntheticCheckpoints.Result r = PaddedCheckpoints.write(spec, out, false, Progress.NONE);

        JsonNode c = new ObjectMapper().readTree(out.resolve("config.json").toFile());
        assertEquals(2048, c.get("vocab_size").asInt(), "the source's vocabulary");
        assertEquals(192, c.get("hidden_size").asInt());
        assertEquals(320, c.get("intermediate_size").asInt());
        assertEquals(4, c.get("num_hidden_layers").asInt());
        assertEquals(12, c.get("num_attention_heads").asInt(), "hidden / the source's head_dim");
        assertEquals(3, c.get("num_key_value_heads").asInt());
        assertEquals(16, c.get("head_dim").asInt());
        assertEquals(1e-5 * 64 / 192, c.get("rms_norm_eps").asDouble(), 1e-20);
        assertEquals(2047, c.get("eos_token_id").asInt());
        assertEquals("float32", c.get("torch_dtype").asText());
        assertEquals(-1L, Files.mismatch(source.resolve("tokenizer.json"), out.resolve("tokenizer.json")));
        assertFalse(Files.exists(out.resolve("generation_config.json")), "bard-s has none to copy");

        try (LanguageModel small = ModelLoader.load(source); LanguageModel big = ModelLoader.load(out)) {
            assertEquals(r.parameterCount(), big.parameterCount());
            assertEquals(PaddedCheckpoints.parameterCount(spec), big.parameterCount());
            for (TestModels.GoldenCase g : TestModels.goldenCases(source)) {
                List<float[]> a = logits(small, g.promptIds(), g.greedyIds()), b = logits(big, g.promptIds(), g.greedyIds());
                double diff = maxScaledDiff(a, b);
                System.out.printf("%s: padded vs bard-s, max abs logit difference %.3g, relative to the logit scale %.3g%n",
                        g.prompt().replace("\n", " "), maxAbsDiff(a, b), diff);
                assertTrue(diff <= F32_TOLERANCE, g.prompt() + ": max |logit difference| / scale " + diff);
                assertArrayEquals(g.greedyIds(), greedy(big, g.promptIds(), g.greedyIds().length), g.prompt());
            }
        }
    }

    /**
     * The family checkpoints cover what bard-s lacks: q/k/v/o and MLP biases with llama3 RoPE (llama,
     * bf16), head_dim ≠ hidden/heads with one KV head (mistral), tied embeddings with qkv biases (qwen2),
     * q/k norms from an f16 source (qwen3). Each grows to one more KV head, twice the group, a wider MLP
     * and one more layer.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-bf16", "mistral", "qwen2-tied", "qwen3-f16"})
    void everyFamilyPadsToTheSameFunction(String family) throws Exception {
        Path source = Path.of(PaddedCheckpointsTest.class.getResource("/families/" + family).toURI());
        ModelConfig s = ModelConfig.load(source);
        int heads = 2 * s.groupSize() * (s.numKvHeads() + 1);
        String shape = """
                {"model_type": "llama", "hidden_size": %d, "intermediate_size": %d, "num_hidden_layers": %d,
                 "num_attention_heads": %d, "num_key_value_heads": %d}
                """.formatted(heads * s.headDim(), s.intermediateSize() + 40, s.numLayers() + 1, heads, s.numKvHeads() + 1);
        var spec = PaddedCheckpoints.Spec.ofConfigJson(source, family + "-shape", shape, DType.F32);
        Path out = tmp.resolve(family);
        PaddedCheckpoints.write(spec, out, false, Progress.NONE);
        try (LanguageModel small = ModelLoader.load(source); LanguageModel big = ModelLoader.load(out)) {
            assertEquals(s.modelType(), big.config().modelType());
            assertEquals(s.tieWordEmbeddings(), big.config().tieWordEmbeddings());
            assertEquals(s.ropeScaling(), big.config().ropeScaling());
            assertEquals(s.eosTokenIds(), big.config().eosTokenIds());
            TestModels.GoldenCase g = TestModels.goldenCases(source).getFirst();
            List<float[]> a = logits(small, g.promptIds(), g.greedyIds()), b = logits(big, g.promptIds(), g.greedyIds());
            double diff = maxScaledDiff(a, b);
            System.out.printf("%s: padded vs source, max abs logit difference %.3g, relative to the logit scale %.3g%n",
                    family, maxAbsDiff(a, b), diff);
            assertTrue(diff <= F32_TOLERANCE, family + ": max |logit difference| / scale " + diff);
        }
    }

    @Test
    void bf16OutputIsTheF32PaddingRoundedToNearestEven() throws Exception {
        Path f32 = tmp.resolve("f32"), bf16 = tmp.resolve("bf16"), bf16Again = tmp.resolve("bf16-1-thread");
        PaddedCheckpoints.write(bardS(DType.F32), f32, false, Progress.NONE);
        PaddedCheckpoints.write(bardS(DType.BF16), bf16, false, Progress.NONE, 3);
        PaddedCheckpoints.write(bardS(DType.BF16), bf16Again, false, Progress.NONE, 1);
        assertEquals(-1L, Files.mismatch(bf16.resolve("model.safetensors"), bf16Again.resolve("model.safetensors")),
                "the bytes do not depend on the thread count");
        try (WeightStore a = WeightStore.open(f32); WeightStore b = WeightStore.open(bf16)) {
            assertEquals(a.names(), b.names());
            for (String name : a.names()) {
                Tensor y = b.get(name);
                assertEquals(DType.BF16, y.dtype());
                float[] x = a.get(name).toFloatArray();
                short[] got = y.segment().toArray(ValueLayout.JAVA_SHORT);
                for (int i = 0; i < x.length; i++) {
                    if (DType.floatToBf16(x[i]) != got[i]) {
                        throw new AssertionError(name + "[" + i + "]: " + x[i] + " → " + DType.bf16ToFloat(got[i]));
                    }
                }
            }
        }
        // Rounding the weights to bf16 (8 significant bits) moves bard-s's logits (about ±12) by under 0.1.
        try (LanguageModel small = ModelLoader.load(TestModels.model("bard-s")); LanguageModel big = ModelLoader.load(bf16)) {
            for (TestModels.GoldenCase g : TestModels.goldenCases(TestModels.model("bard-s"))) {
                List<float[]> a = logits(small, g.promptIds(), new int[0]), b = logits(big, g.promptIds(), new int[0]);
                double diff = maxAbsDiff(a, b);
                System.out.printf("%s: bf16 padding, max abs logit difference %.3g%n", g.prompt().replace("\n", " "), diff);
                assertTrue(diff < 0.25, g.prompt() + ": max |logit difference| " + diff);
            }
        }
    }

    @Test
    void shapesThatCannotHoldTheSourceAreRefusedNamingTheField() {
        Path source = TestModels.model("bard-s");
        String cannot = "cannot pad " + source + " to shape: ";
        String[][] cases = {
                {"32, 176, 2, 2, 2", "its hidden_size 32 is smaller than the source's 64."},
                {"72, 176, 2, 4, 2", "its hidden_size 72 is not a multiple of the source's head_dim 16."},
                {"128, 100, 2, 4, 2", "its intermediate_size 100 is smaller than the source's 176."},
                {"128, 176, 1, 4, 2", "its num_hidden_layers 1 is fewer than the source's 2."},
                {"128, 176, 2, 4, 1", "its num_key_value_heads 1 is fewer than the source's 2."},
                {"80, 176, 2, 4, 2", "its hidden_size 80 makes 5 query heads of the source's head_dim 16,"
                        + " not a multiple of its num_key_value_heads 2."},
                {"64, 176, 2, 4, 4", "its 4 query heads over num_key_value_heads 4 make groups of 1, smaller than"
                        + " the source's groups of 2 (num_attention_heads / num_key_value_heads)."},
        };
        for (String[] c : cases) {
            String[] v = c[0].split(", ");
            String json = """
                    {"model_type": "llama", "hidden_size": %s, "intermediate_size": %s, "num_hidden_layers": %s,
                     "num_attention_heads": %s, "num_key_value_heads": %s}
                    """.formatted((Object[]) v);
            TandemException e = assertThrows(TandemException.class,
                    () -> PaddedCheckpoints.Spec.ofConfigJson(source, "shape", json, DType.F32), c[0]);
            assertEquals(cannot + c[1], e.getMessage());
        }
    }

    @Test
    void aBadSourceGetsTheLoadersSentenceAndNothingIsWritten() throws Exception {
        Path missing = tmp.resolve("nope");
        TandemException e = assertThrows(TandemException.class,
                () -> PaddedCheckpoints.Spec.ofShape(missing, "tinyllama-1.1b", DType.BF16));
        assertEquals("model directory not found: " + missing + ".", e.getMessage());

        Path gpt = Files.createDirectories(tmp.resolve("gpt2"));
        Files.writeString(gpt.resolve("config.json"), "{\"model_type\": \"gpt2\"}");
        e = assertThrows(TandemException.class, () -> PaddedCheckpoints.Spec.ofShape(gpt, "tinyllama-1.1b", DType.BF16));
        assertEquals("config.json: model_type \"gpt2\" is not supported (supported: llama, mistral, qwen2, qwen3).",
                e.getMessage());

        // A truncated weight file is found before anything is written.
        Path broken = TestModels.copyOf("bard-s", tmp.resolve("broken"));
        Files.delete(broken.resolve("model.safetensors"));
        var spec = PaddedCheckpoints.Spec.ofConfigJson(broken, "shape", BARD_S_SHAPE, DType.F32);
        Path out = tmp.resolve("out");
        assertThrows(TandemException.class, () -> PaddedCheckpoints.write(spec, out, false, Progress.NONE));
        // A failure midway (here the progress callback) leaves no output and no temporary directory.
        assertThrows(IllegalStateException.class, () -> PaddedCheckpoints.write(bardS(DType.F32), out, false, (d, t) -> {
            if (d > t / 2) {
                throw new IllegalStateException("injected");
            }
        }));
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(List.of("broken", "gpt2"), left.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void theOutputMayNotBeTheSource() {
        Path source = TestModels.copyOf("bard-s", tmp.resolve("bard-s"));
        var spec = PaddedCheckpoints.Spec.ofConfigJson(source, "shape", BARD_S_SHAPE, DType.F32);
        TandemException e = assertThrows(TandemException.class, () -> PaddedCheckpoints.write(spec, source, true, Progress.NONE));
        assertEquals("the output directory " + source.toAbsolutePath().normalize()
                + " is the source checkpoint; choose another --out.", e.getMessage());
        assertTrue(Files.exists(source.resolve("model.safetensors")));
    }
}
