package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tandem synth} run in-process, and what it writes run through {@code tandem generate}. */
class SynthCommandTest {

    @TempDir
    Path tmp;

    record Run(int exit, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    /** Smaller than bard-l: 2 layers, hidden 128, a vocabulary of 1024. */
    private Path smallConfig() throws Exception {
        Path f = tmp.resolve("small-config.json");
        Files.writeString(f, """
                {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 1024,
                 "hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
                 "rope_theta": 10000.0, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
                """);
        return f;
    }

    @Test
    void synthesizedCheckpointsGenerateText() throws Exception {
        Path config = smallConfig();
        for (String dtype : new String[] {"f32", "bf16"}) {
            Path dir = tmp.resolve("model-" + dtype);
            Run s = run("synth", "--config", config.toString(), "--dtype", dtype, "--seed", "5", "--out", dir.toString());
            assertEquals(0, s.exit(), s.err());
            assertTrue(s.out().startsWith("wrote " + dir + ": "), s.out());
            assertTrue(s.err().contains("synth small-config.json " + dtype + ": 100%"), s.err());

            Run g = run("generate", "--model", dir.toString(), "--prompt", " hello", "--max-tokens", "5",
                    "--temperature", "0", "--format", "json");
            assertEquals(0, g.exit(), g.err());
            JsonNode o = new ObjectMapper().readTree(g.out());
            assertFalse(o.get("text").asText().isEmpty(), g.out());
            assertTrue(o.get("generated_ids").size() >= 1, g.out());
            assertEquals(1023, new ObjectMapper().readTree(dir.resolve("config.json").toFile()).get("eos_token_id").asInt());

            Run text = run("generate", "--model", dir.toString(), "--prompt", " hello", "--max-tokens", "5");
            assertEquals(0, text.exit(), text.err());
            assertFalse(text.out().isBlank(), text.out());
        }
    }

    @Test
    void theSameSeedWritesTheSameBytes() throws Exception {
        Path config = smallConfig();
        Path a = tmp.resolve("a"), b = tmp.resolve("b"), c = tmp.resolve("c");
        assertEquals(0, run("synth", "--config", config.toString(), "--out", a.toString(), "--seed", "9").exit());
        assertEquals(0, run("synth", "--config", config.toString(), "--out", b.toString(), "--seed", "9").exit());
        assertEquals(0, run("synth", "--config", config.toString(), "--out", c.toString(), "--seed", "10").exit());
        assertEquals(-1L, Files.mismatch(a.resolve("model.safetensors"), b.resolve("model.safetensors")));
        assertNotEquals(-1L, Files.mismatch(a.resolve("model.safetensors"), c.resolve("model.safetensors")));
        assertTrue(Files.size(a.resolve("model.safetensors")) > 1_000_000, "bf16 by default");
    }

    @Test
    void forceReplacesAnExistingCheckpoint() throws Exception {
        Path config = smallConfig();
        Path dir = tmp.resolve("m");
        assertEquals(0, run("synth", "--config", config.toString(), "--out", dir.toString(), "--dtype", "f32").exit());
        long f32 = Files.size(dir.resolve("model.safetensors"));
        Run again = run("synth", "--config", config.toString(), "--out", dir.toString(), "--dtype", "bf16", "--force");
        assertEquals(0, again.exit(), again.err());
        assertTrue(Files.size(dir.resolve("model.safetensors")) < f32);
    }

    @Test
    void badInputGivesOneSentenceAndLeavesNothing() throws Exception {
        Path config = smallConfig();
        Path existing = tmp.resolve("existing");
        Files.createDirectories(existing);
        Files.writeString(existing.resolve("keep.txt"), "mine");
        Path badConfig = tmp.resolve("bad.json");
        Files.writeString(badConfig, "{\"model_type\": \"gpt2\"}");
        Path out = tmp.resolve("never").toAbsolutePath();
        String[][] cases = {
                {"unknown shape \"gpt-9\" (known shapes: tinyllama-1.1b, qwen2.5-0.5b, smollm2-135m).",
                        "synth", "--shape", "gpt-9", "--out", out.toString()},
                {"--shape and --config cannot be used together; give one of them.",
                        "synth", "--shape", "smollm2-135m", "--config", config.toString(), "--out", out.toString()},
                {"give --shape NAME (one of tinyllama-1.1b, qwen2.5-0.5b, smollm2-135m) or --config FILE.",
                        "synth", "--out", out.toString()},
                {"--dtype must be f32, bf16 or f16, but was \"int8\".",
                        "synth", "--config", config.toString(), "--dtype", "int8", "--out", out.toString()},
                {"the output directory " + existing.toAbsolutePath() + " already exists and was left as it is (use --force to replace it).",
                        "synth", "--config", config.toString(), "--out", existing.toString()},
                {badConfig + ": model_type \"gpt2\" is not supported (supported: llama, mistral, qwen2, qwen3).",
                        "synth", "--config", badConfig.toString(), "--out", out.toString()},
                {"config file not found: " + tmp.resolve("nope.json") + ".",
                        "synth", "--config", tmp.resolve("nope.json").toString(), "--out", out.toString()},
        };
        for (String[] c : cases) {
            String[] args = java.util.Arrays.copyOfRange(c, 1, c.length);
            Run r = run(args);
            assertNotEquals(0, r.exit(), String.join(" ", args));
            List<String> lines = r.err().lines().toList();
            assertEquals("tandem: " + c[0], lines.getLast(), r.err());
            assertEquals(1, lines.stream().filter(l -> l.startsWith("tandem: ")).count(), r.err());
        }
        Run missingOut = run("synth", "--shape", "smollm2-135m");
        assertEquals(2, missingOut.exit());
        assertTrue(missingOut.err().lines().toList().getLast().startsWith("tandem: "), missingOut.err());

        assertEquals("mine", Files.readString(existing.resolve("keep.txt")));
        try (Stream<Path> s = Files.list(existing)) {
            assertEquals(1, s.count());
        }
        assertFalse(Files.exists(out));
        try (Stream<Path> s = Files.list(tmp)) {
            assertEquals(List.of(), s.filter(p -> p.getFileName().toString().contains(".partial")).toList());
        }
    }

    /** Grows bard-s (hidden 64, 2 layers, 2 KV heads) to hidden 128 over 2 KV heads (group 4), MLP 320, 4 layers. */
    private Path padShape(int hidden) throws Exception {
        Path f = tmp.resolve("pad-" + hidden + ".json");
        Files.writeString(f, """
                {"model_type": "llama", "hidden_size": %d, "intermediate_size": 320, "num_hidden_layers": 4,
                 "num_attention_heads": 2, "num_key_value_heads": 2}
                """.formatted(hidden));
        return f;
    }

    @Test
    void aPaddedCheckpointGeneratesTheSourcesGreedyText() throws Exception {
        Path source = TestModels.model("bard-s");
        Path dir = tmp.resolve("bard-s-padded");
        Run s = run("synth", "--pad", source.toString(), "--config", padShape(128).toString(), "--dtype", "f32",
                "--out", dir.toString());
        assertEquals(0, s.exit(), s.err());
        assertTrue(s.out().startsWith("wrote " + dir + ": bard-s padded to "), s.out());
        assertTrue(s.err().contains("synth bard-s padded to pad-128.json f32: 100%"), s.err());
        JsonNode config = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        assertEquals(8, config.get("num_attention_heads").asInt());
        assertEquals(2048, config.get("vocab_size").asInt());

        JsonNode[] ids = new JsonNode[2];
        Path[] models = {source, dir};
        for (int i = 0; i < 2; i++) {
            Run g = run("generate", "--model", models[i].toString(), "--prompt", "ROMEO:", "--max-tokens", "16",
                    "--temperature", "0", "--format", "json");
            assertEquals(0, g.exit(), g.err());
            ids[i] = new ObjectMapper().readTree(g.out()).get("generated_ids");
        }
        assertEquals(16, ids[0].size());
        assertEquals(ids[0], ids[1]);
    }

    @Test
    void padRefusesASeedAndShapesThatCannotHoldTheSource() throws Exception {
        String source = TestModels.model("bard-s").toString();
        Path out = tmp.resolve("never").toAbsolutePath();
        Path shape = padShape(128), small = padShape(32);
        Run seed = run("synth", "--pad", source, "--config", shape.toString(), "--seed", "3", "--out", out.toString());
        assertEquals(2, seed.exit(), seed.err());
        assertEquals("tandem: --seed has no meaning with --pad (the weights come from " + source + "); leave it out.",
                seed.err().lines().toList().getLast());
        String[][] cases = {
                {"cannot pad " + source + " to " + small + ": its hidden_size 32 is smaller than the source's 64.",
                        "--pad", source, "--config", small.toString()},
                {"model directory not found: " + tmp.resolve("nope") + ".",
                        "--pad", tmp.resolve("nope").toString(), "--shape", "tinyllama-1.1b"},
                {"give --shape NAME (one of tinyllama-1.1b, qwen2.5-0.5b, smollm2-135m) or --config FILE.",
                        "--pad", source},
        };
        for (String[] c : cases) {
            List<String> args = new java.util.ArrayList<>(List.of("synth"));
            args.addAll(List.of(c).subList(1, c.length));
            args.addAll(List.of("--out", out.toString()));
            Run r = run(args.toArray(String[]::new));
            assertNotEquals(0, r.exit(), String.join(" ", args));
            assertEquals("tandem: " + c[0], r.err().lines().toList().getLast(), r.err());
        }
        assertFalse(Files.exists(out));
    }

    @Test
    void progressBarDrawsStepsOrRedrawsOneLine() {
        StringWriter plain = new StringWriter();
        long[] now = {0};
        ProgressBar p = new ProgressBar("synth x bf16", ProgressBar.Unit.BYTES, new PrintWriter(plain), false, () -> now[0]);
        for (long d = 0; d <= 2_200_000_000L; d += 100_000_000L) {
            now[0] += 150_000_000L;
            p.update(d, 2_200_000_000L);
        }
        List<String> lines = plain.toString().lines().toList();
        assertEquals(11, lines.size(), plain.toString());
        assertEquals("synth x bf16: 0%  0.0/2.2 GB  0.2 s", lines.getFirst());
        assertEquals("synth x bf16: 100%  2.2/2.2 GB  3.5 s", lines.getLast());

        StringWriter tty = new StringWriter();
        now[0] = 0;
        ProgressBar t = new ProgressBar("bench", ProgressBar.Unit.COUNT, new PrintWriter(tty), true, () -> now[0]);
        for (int i = 0; i <= 100; i++) {
            now[0] += 20_000_000L; // 50 updates a second: at most one redraw in five
            t.update(i, 100);
        }
        t.close();
        String s = tty.toString();
        long redraws = s.chars().filter(ch -> ch == '\r').count();
        assertTrue(redraws >= 20 && redraws <= 22, redraws + " redraws");
        assertTrue(s.endsWith("\rbench [##############################] 100%  100/100  2.0 s" + System.lineSeparator()), s);
    }
}
