package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tandem bench --suite decode} on the smallest shipped model, with tiny settings. */
class BenchCommandTest {
    @TempDir
    Path tmp;

    record Run(int exit, String out, String err) {}

    private static Run tandem(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    @Test
    void attentionSuiteTimesEachContextWithTheModelsHeadsAndRelatesItToBandwidth() throws Exception {
        Path result = tmp.resolve("attention.json");
        Run r = tandem("bench", "--suite", "attention", "--model", TestModels.model("bard-s").toString(), "--contexts", "16,100",
                "--repetitions", "2", "--threads", "1", "--bandwidth-mib", "16", "--kv-dtype", "f32", "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("attention", json.get("suite").asText());
        var config = dev.tandem.transformer.config.ModelConfig.load(TestModels.model("bard-s"));
        assertEquals(config.numHeads(), json.get("heads").asInt());
        assertEquals(config.numKvHeads(), json.get("kv_heads").asInt());
        assertEquals(2, json.get("contexts").size());
        for (int i = 0; i < 2; i++) {
            JsonNode p = json.get("contexts").get(i);
            int context = i == 0 ? 16 : 100;
            assertEquals(context, p.get("context").asInt());
            assertEquals(2L * context * config.numKvHeads() * config.headDim() * 4, p.get("kv_bytes_per_call").asLong());
            double slowest = 0;
            for (JsonNode v : p.get("seconds_per_call").get("values")) {
                slowest = Math.max(slowest, v.asDouble());
            }
            double lowestRate = Double.MAX_VALUE;
            for (JsonNode v : p.get("kv_bytes_per_s").get("values")) {
                lowestRate = Math.min(lowestRate, v.asDouble());
            }
            assertEquals(p.get("kv_bytes_per_call").asLong() / slowest, lowestRate, 1e-9 * lowestRate);
        }
        assertTrue(Files.readString(result.resolveSibling("attention.md")).contains("| context | µs per call |"));
        Run badDevice = tandem("bench", "--suite", "prefill", "--device", "cuda");
        assertEquals(2, badDevice.exit());
        assertTrue(badDevice.err().contains("--device applies to --suite decode, batch, methods and attention only"), badDevice.err());
    }

    @Test
    void decodeSuiteWritesEveryFigureWithItsSpreadAndRelatesItToBandwidth() throws Exception {
        Path result = tmp.resolve("results").resolve("decode.json");
        Run r = tandem("bench", "--suite", "decode", "--model", TestModels.model("bard-s").toString(), "--threads", "1,2",
                "--prompt-tokens", "5", "--tokens", "4", "--repetitions", "3", "--bandwidth-mib", "16", "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("decode", json.get("suite").asText());
        assertTrue(json.get("command").asText().startsWith("./tandem bench --suite decode"));
        assertTrue(json.get("machine").get("cores").asInt() >= 1);
        try (LanguageModel bard = ModelLoader.load(TestModels.model("bard-s"))) {
            assertEquals(bard.weightBytesPerToken(), json.get("weight_bytes_per_token").asLong());
            assertEquals(bard.parameterCount(), json.get("parameters").asLong());
        }
        assertEquals(2, json.get("runs").size());
        for (int i = 0; i < 2; i++) {
            JsonNode run = json.get("runs").get(i);
            assertEquals(i + 1, run.get("threads").asInt());
            JsonNode decode = run.get("decode_tokens_per_s");
            assertEquals(3, decode.get("values").size());
            assertTrue(decode.get("q1").asDouble() <= decode.get("median").asDouble()
                    && decode.get("median").asDouble() <= decode.get("q3").asDouble());
            double weightRate = run.get("weight_read_bytes_per_s").get("median").asDouble();
            assertEquals(decode.get("median").asDouble() * json.get("weight_bytes_per_token").asLong(), weightRate,
                    1e-9 * weightRate);
            assertEquals(weightRate / run.get("memory_read_bytes_per_s").get("best").asDouble(),
                    run.get("fraction_of_memory_bandwidth").asDouble(), 1e-12);
        }
        assertTrue(r.out().contains("of the") && r.out().contains("results: " + result), r.out());
        try (var files = Files.list(result.getParent())) {
            assertEquals(java.util.Set.of("decode.json", "decode.md", "decode-decode.png"),
                    files.map(f -> f.getFileName().toString()).collect(java.util.stream.Collectors.toSet()),
                    "the result, its report and chart, and no temporary left behind");
        }
        String report = Files.readString(result.resolveSibling("decode.md"));
        assertTrue(report.contains("./tandem bench --suite decode") && report.contains("decode-decode.png"), report);
        Files.delete(result.resolveSibling("decode.md"));
        Run again = tandem("bench", "--report", result.toString());
        assertEquals(0, again.exit(), again.err());
        assertEquals(report, Files.readString(result.resolveSibling("decode.md")), "--report redraws the same report");
        Run missing = tandem("bench", "--report", tmp.resolve("nope.json").toString());
        assertNotEquals(0, missing.exit());
    }

    @Test
    void shapeRunsOnASynthesizedCheckpointAndLeavesNothingBehind() throws Exception {
        Path work = Files.createDirectories(tmp.resolve("work"));
        Path result = tmp.resolve("smollm2.json");
        Run r = tandem("bench", "--shape", "smollm2-135m", "--dtype", "bf16", "--work-dir", work.toString(), "--threads", "1",
                "--prompt-tokens", "2", "--tokens", "2", "--repetitions", "1", "--bandwidth-mib", "16", "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals(134_515_008L, json.get("parameters").asLong());
        assertEquals("bf16", json.get("dtype").asText());
        try (var left = Files.list(work)) {
            assertEquals(0, left.count(), "the synthesized checkpoint is deleted");
        }
    }

    @Test
    void batchSuiteReportsEveryBatchSizeAndRowCountAgainstOneRow() throws Exception {
        Path result = tmp.resolve("batch.json");
        Run r = tandem("bench", "--suite", "batch", "--model", TestModels.model("bard-s").toString(), "--threads", "1",
                "--batch-sizes", "1,3", "--max-rows", "3", "--prompt-tokens", "4", "--tokens", "2", "--repetitions", "2",
                "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("batch", json.get("suite").asText());
        assertEquals(2, json.get("batched_decode").size());
        assertEquals(3, json.get("batched_decode").get(1).get("batch").asInt());
        assertEquals(2, json.get("batched_decode").get(1).get("tokens_per_s").get("values").size());
        JsonNode rows = json.get("rows_per_pass");
        assertEquals(3, rows.size());
        assertEquals(1.0, rows.get(0).get("ratio_to_one_row").asDouble(), 0.0);
        JsonNode one = rows.get(0).get("millis").get("values");
        for (int k = 0; k < 3; k++) {
            JsonNode row = rows.get(k);
            assertEquals(k + 1, row.get("rows").asInt());
            // The median over repetitions of the k-row pass's time over the 1-row pass's in the same repetition.
            JsonNode values = row.get("millis").get("values");
            double[] ratios = new double[values.size()];
            for (int rep = 0; rep < ratios.length; rep++) {
                ratios[rep] = values.get(rep).asDouble() / one.get(rep).asDouble();
            }
            java.util.Arrays.sort(ratios);
            assertEquals((ratios[0] + ratios[1]) / 2, row.get("ratio_to_one_row").asDouble(), 1e-12);
            // Beside it, the arithmetic-bound time (k times the 1-row one) and the goal it implies.
            assertEquals((k + 1) * rows.get(0).get("fma_bound_millis").asDouble(), row.get("fma_bound_millis").asDouble(), 1e-9);
            assertTrue(row.get("goal_ratio").asDouble() >= 1.2, row.toString());
            assertEquals(row.get("ratio_to_one_row").asDouble() <= row.get("goal_ratio").asDouble(), row.get("meets_goal").asBoolean());
        }
        assertTrue(json.get("fma_peak_macs_per_s").asDouble() > 0);
        assertTrue(r.out().contains("batch  3:"), r.out());
    }

    @Test
    void allRunsEverySuiteIntoOneResultWithMemory() throws Exception {
        Path result = tmp.resolve("all.json");
        Run r = tandem("bench", "--suite", "all", "--model", TestModels.model("bard-s").toString(), "--threads", "1",
                "--prompt-tokens", "4", "--tokens", "2", "--repetitions", "2", "--bandwidth-mib", "16",
                "--batch-sizes", "2", "--max-rows", "2", "--prompt-lengths", "3,5000", "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("all", json.get("suite").asText());
        assertEquals(1, json.get("decode").get("runs").size());
        assertEquals(1, json.get("batch").get("batched_decode").size());
        JsonNode prefill = json.get("prefill").get("prefill");
        assertEquals(2, prefill.size());
        assertEquals(3, prefill.get(0).get("prompt_tokens").asInt());
        assertEquals(1024, prefill.get(1).get("prompt_tokens").asInt(), "a prompt length past the context is capped");
        assertEquals(2, prefill.get(0).get("time_to_first_token_ms").get("values").size());
        for (String suite : new String[] {"decode", "prefill", "batch"}) {
            JsonNode memory = json.get(suite).get("memory");
            assertTrue(memory.get("kv_cache_bytes").asLong() > 0, suite);
            assertTrue(memory.get("weights_mapped_bytes").asLong() > 0, suite);
            assertTrue(memory.get("heap_used_bytes").asLong() > 0, suite);
        }
    }

    @Test
    void methodsSuiteComparesEveryMethodAgainstPlainAndReportsIt() throws Exception {
        Path result = tmp.resolve("methods.json");
        Run r = tandem("bench", "--suite", "methods", "--model", TestModels.model("bard-m").toString(),
                "--drafts", TestModels.model("bard-s").toString(), "--threads", "1", "--repetitions", "1",
                "--method-tokens", "6", "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("methods", json.get("suite").asText());
        java.util.Set<String> methods = new java.util.HashSet<>();
        json.get("methods").forEach(m -> methods.add(m.get("method").asText()));
        assertEquals(java.util.Set.of("plain", "ngram", "aded", "lookahead", "speculative", "pearl", "tree", "collab"), methods);
        String report = Files.readString(result.resolveSibling("methods.md"));
        assertTrue(report.contains("## Decoding methods") && report.contains("methods-methods.png"), report);
    }

    @Test
    void methodsSuiteRunsOnlyTheMethodsModesAndGammasAsked() throws Exception {
        Path result = tmp.resolve("narrow.json");
        Run r = tandem("bench", "--suite", "methods", "--model", TestModels.model("bard-m").toString(),
                "--drafts", TestModels.model("bard-s").toString(), "--threads", "1", "--repetitions", "1",
                "--method-tokens", "4", "--methods", "speculative,tree", "--gammas", "2,3", "--modes", "greedy",
                "--prompt-count", "1", "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        java.util.List<String> seen = new java.util.ArrayList<>();
        json.get("methods").forEach(m -> {
            assertEquals("greedy", m.get("mode").asText());
            seen.add(m.get("method").asText() + " " + m.get("setting").asText());
        });
        assertEquals(java.util.List.of("plain ", "speculative gamma=2", "speculative gamma=3", "speculative auto",
                "tree nodes=16,top_k=3,depth=4"), seen);
        assertEquals(1, json.get("options").get("prompts").size());
    }

    @Test
    void viewsSuiteReportsEachMethodsCostAndPassesPerToken() throws Exception {
        Path result = tmp.resolve("views.json");
        Run r = tandem("bench", "--suite", "views", "--model", TestModels.model("bard-l").toString(), "--threads", "1",
                "--repetitions", "1", "--prompt-count", "1", "--method-tokens", "6",
                "--drafts", TestModels.model("bard-s") + "," + TestModels.model("bard-m"), "--out", result.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("views", json.get("suite").asText());
        JsonNode figures = json.get("figures");
        assertEquals(1 + dev.tandem.app.bench.ViewsBench.METHODS.size(), figures.size(), "plain, then every method");
        assertEquals(1.0, figures.get(0).get("cost_per_token_relative_to_plain").get("median").asDouble(), 1e-12);
        java.util.Map<String, JsonNode> byMethod = new java.util.HashMap<>();
        for (JsonNode f : figures) {
            assertEquals(6, f.get("generated_tokens").asInt(), f.toString());
            byMethod.put(f.get("method").asText(), f);
        }
        // Exact pass counts: the prompt and each later token, per model.
        assertEquals(6, byMethod.get("contrastive").get("model_passes").asInt());
        assertEquals(6, byMethod.get("contrastive").get("other_model_passes").asInt(), "the amateur's");
        assertEquals(12, byMethod.get("proxy-tune").get("other_model_passes").asInt(), "the tuned and the base model's");
        assertEquals(6, byMethod.get("cad").get("model_passes").asInt(), "both sequences in one pass");
        assertEquals(0, byMethod.get("cad").get("other_model_passes").asInt());
        assertTrue(byMethod.get("contrastive-drafted").get("model_passes").asInt() < 6, "drafts save passes of the model");
        assertTrue(Files.readString(result.resolveSibling("views.md")).contains("## Several views or hypotheses per token"));
        Run bad = tandem("bench", "--suite", "views", "--methods", "nucleus", "--model", TestModels.model("bard-l").toString());
        assertEquals(2, bad.exit(), bad.err());
        assertTrue(bad.err().contains("unknown method \"nucleus\" for the views suite"), bad.err());
    }

    @Test
    void ragSuiteTimesTheFullPrefillBesideCachedAndColdPassages() throws Exception {
        Path result = tmp.resolve("rag.json");
        Run r = tandem("bench", "--suite", "rag", "--model", TestModels.model("bard-s").toString(), "--threads", "1",
                "--repetitions", "1", "--rag-passages", "3", "--rag-passage-tokens", "40", "--rag-question-tokens", "8",
                "--out", result.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("rag", json.get("suite").asText());
        assertEquals(1 + 3 * 40 + 8, json.get("tokens_attended").asInt(), "the BOS, the passages and the question");
        for (String f : java.util.List.of("full_prefill_ttft_ms", "rag_cached_ttft_ms", "rag_cold_ttft_ms", "full_over_cached")) {
            assertEquals(1, json.get(f).get("values").size(), f);
        }
        assertTrue(r.out().contains("rag, cached"), r.out());
        assertTrue(Files.readString(result.resolveSibling("rag.md")).contains("## Time to first token over retrieved passages"));
        Run tooLong = tandem("bench", "--suite", "rag", "--model", TestModels.model("bard-s").toString(), "--threads", "1",
                "--repetitions", "1", "--rag-passages", "5", "--rag-passage-tokens", "256", "--out", tmp.resolve("x.json").toString());
        assertEquals(1, tooLong.exit(), tooLong.err());
        assertTrue(tooLong.err().contains("more than the context of 1024 tokens of bard-s"), tooLong.err());
        assertFalse(Files.exists(tmp.resolve("x.json")), "nothing written");
    }

    @Test
    void diffusionSuiteRunsEveryRuleWithAndWithoutCachesAgainstTheBaseline() throws Exception {
        Path result = tmp.resolve("diffusion.json");
        Run r = tandem("bench", "--suite", "diffusion", "--model", TestModels.model("bard-dlm").toString(), "--threads", "1",
                "--repetitions", "1", "--prompt-count", "1",
                "--gen-length", "8", "--block-length", "4", "--out", result.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("diffusion", json.get("suite").asText());
        assertEquals("bard-dlm", json.get("model").asText());
        JsonNode figures = json.get("figures");
        assertEquals(1 + 6 * 3, figures.size(), "the baseline, then each rule without a cache, with prefix and with dual");
        assertEquals(1.0, figures.get(0).get("relative_to_baseline").get("median").asDouble(), 1e-12);
        for (JsonNode f : figures) {
            assertEquals(8, f.get("positions").asInt(), f.toString());
            assertTrue(f.get("passes").asInt() >= 1 && f.get("passes").asInt() <= 8, f.toString());
            if (f.get("cache").asText().equals("none")) {
                assertEquals(0, f.get("drift_positions").asInt(), "an uncached run has no drift: " + f);
            }
        }
        assertTrue(Files.readString(result.resolveSibling("diffusion.md")).contains("## Masked diffusion"));
        Run bad = tandem("bench", "--suite", "decode", "--gen-length", "8");
        assertEquals(2, bad.exit());
        assertTrue(bad.err().contains("--gen-length and --block-length apply to --suite diffusion only."), bad.err());
    }

    @Test
    void engineSuiteRunsEveryMethodAtEachConcurrencyBesidePlain() throws Exception {
        Path result = tmp.resolve("engine.json");
        Run r = tandem("bench", "--suite", "engine", "--model", TestModels.model("bard-m").toString(),
                "--drafts", TestModels.model("bard-s").toString(), "--threads", "1", "--repetitions", "1",
                "--method-tokens", "4", "--batch-sizes", "1,3", "--out", result.toString());
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(result.toFile());
        assertEquals("engine", json.get("suite").asText());
        java.util.List<String> seen = new java.util.ArrayList<>();
        json.get("figures").forEach(f -> {
            seen.add(f.get("method").asText() + " " + f.get("concurrency").asInt());
            assertTrue(f.get("tokens_per_s").get("median").asDouble() > 0, f.toString());
            if (f.get("method").asText().equals("plain")) {
                assertEquals(1.0, f.get("relative_to_plain").get("median").asDouble(), 1e-12, f.toString());
            }
        });
        java.util.List<String> expected = new java.util.ArrayList<>();
        for (int c : new int[] {1, 3}) {
            for (String m : java.util.List.of("plain", "speculative", "ngram", "tree", "aded", "lookahead", "pearl")) {
                expected.add(m + " " + c);
            }
        }
        assertEquals(expected, seen);
        String report = Files.readString(result.resolveSibling("engine.md"));
        assertTrue(report.contains("## Engine throughput by method and concurrency"), report);
        assertTrue(report.lines().anyMatch(l -> l.startsWith("| plain | 3 |") && l.contains("| 1.00 (1.00–1.00) |")), report);
    }

    @Test
    void weightBytesPerTokenCountsTheEmbeddingRowNotTheTable() {
        try (LanguageModel bard = ModelLoader.load(TestModels.model("bard-s"))) {
            var c = bard.config();
            long d = c.hiddenSize();
            long perLayer = 2 * d + d * c.numHeads() * c.headDim() * 2L + 2L * d * c.numKvHeads() * c.headDim()
                    + 3L * d * c.intermediateSize();
            long floats = c.numLayers() * perLayer + d + (long) c.vocabSize() * d + d;
            assertEquals(4 * floats, bard.weightBytesPerToken());
        }
    }

    @Test
    void threadListAcceptsNumbersAndAllWithoutRepeats() {
        int all = Runtime.getRuntime().availableProcessors();
        assertArrayEquals(all == 1 ? new int[] {1} : new int[] {1, all}, BenchCommand.parseThreads("1,all"));
        assertArrayEquals(new int[] {3, 1}, BenchCommand.parseThreads("3, 1,3"));
        assertThrows(IllegalArgumentException.class, () -> BenchCommand.parseThreads("0"));
        assertThrows(IllegalArgumentException.class, () -> BenchCommand.parseThreads("two"));
    }

    @Test
    void badOptionsGetOneSentence() {
        for (String[] args : new String[][] {
                {"bench", "--suite", "methods", "--shape", "smollm2-135m"},
                {"bench", "--suite", "nonsense", "--model", TestModels.model("bard-s").toString()},
                {"bench", "--suite", "prefill", "--prompt-lengths", "8,x"},
                {"bench", "--suite", "batch", "--batch-sizes", "0,4"},
                {"bench", "--threads", "0"},
                {"bench", "--tokens", "0"},
                {"bench", "--bandwidth-mib", "1"},
                {"bench", "--model", "x", "--shape", "smollm2-135m"},
                {"bench", "--suite", "methods", "--methods", "speculative,nonsense"},
                {"bench", "--suite", "methods", "--modes", "greedy,creative"},
                {"bench", "--suite", "methods", "--gammas", "2,0"},
                {"bench", "--suite", "methods", "--prompt-count", "9"},
                {"bench", "--suite", "engine", "--shape", "smollm2-135m"},
                {"bench", "--suite", "engine", "--methods", "plain,nonsense"},
                {"bench", "--model", TestModels.model("bard-s").toString(), "--prompt-tokens", "2000", "--bandwidth-mib", "16",
                        "--out", "unused.json"}}) {
            Run r = tandem(args);
            assertNotEquals(0, r.exit(), String.join(" ", args));
            String last = r.err().strip().lines().reduce((a, b) -> b).orElse("");
            assertTrue(last.startsWith("tandem: ") && last.endsWith("."), String.join(" ", args) + " → " + r.err());
        }
        assertFalse(Files.exists(Path.of("unused.json")));
    }
}
