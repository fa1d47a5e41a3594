package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The README's command itself: {@code ./tandem generate --format json --temperature 0} on every golden
 * case of the shipped models, through the launcher script and the packaged jar (run by failsafe after
 * {@code package}; {@code TANDEM_SKIP_BUILD=1} keeps the launcher from rebuilding inside the build).
 */
class LauncherIT {
    private static final Path ROOT = TestModels.modelsDir().getParent();

    record Result(int exit, String out, String err) {
    }

    private static Result tandem(String... args) throws IOException, InterruptedException {
        return tandemWithInput("", args);
    }

    private static Result tandemWithInput(String stdin, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("bash", ROOT.resolve("tandem").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(ROOT.toFile());
        pb.environment().put("TANDEM_SKIP_BUILD", "1");
        Process p = pb.start();
        try (var in = p.getOutputStream()) {
            in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
        CompletableFuture<String> err = CompletableFuture.supplyAsync(() -> {
            try {
                return new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "./tandem did not finish");
        return new Result(p.exitValue(), out, err.join());
    }

    @Test
    void launcherReproducesEveryGoldenGreedyPath() throws Exception {
        ObjectMapper json = new ObjectMapper();
        for (String name : new String[] {"bard-s", "bard-m", "bard-l"}) {
            JsonNode golden = json.readTree(TestModels.model(name).resolve("golden.json").toFile());
            for (JsonNode c : golden.get("cases")) {
                List<String> args = new ArrayList<>(List.of("generate", "--prompt", c.get("prompt").asText(), "--format", "json",
                        "--temperature", "0", "--max-tokens", String.valueOf(c.get("greedy_ids").size())));
                if (!name.equals("bard-l")) {
                    args.addAll(List.of("--model", "models/" + name)); // bard-l is the default model
                }
                Result r = tandem(args.toArray(String[]::new));
                assertEquals(0, r.exit(), r.err());
                JsonNode o = json.readTree(r.out());
                assertEquals(c.get("prompt_ids"), o.get("prompt_ids"), name);
                assertEquals(c.get("greedy_ids"), o.get("generated_ids"), name + ": " + c.get("prompt").asText());
            }
        }
    }

    @Test
    void launcherReportsBadInputAsItsLastStderrLine() throws Exception {
        Result r = tandem("generate", "--model", "models/no-such-model", "--prompt", "x");
        assertNotEquals(0, r.exit());
        List<String> lines = r.err().lines().filter(l -> !l.isBlank()).toList();
        assertTrue(lines.getLast().startsWith("tandem: model directory not found:"), r.err());
        for (String line : lines.subList(0, lines.size() - 1)) {
            assertEquals("WARNING: Using incubator modules: jdk.incubator.vector", line);
        }
    }

    @Test
    void launcherTokenizesEveryReferenceGolden() throws Exception {
        ObjectMapper json = new ObjectMapper();
        Path reference = ROOT.resolve("transformer/src/test/resources/tokenizers");
        JsonNode all = json.readTree(reference.resolve("golden.json").toFile()).get("tokenizers");
        for (String name : new String[] {"spm32k", "llama3", "qwen3"}) {
            StringBuilder texts = new StringBuilder();
            for (JsonNode c : all.get(name)) {
                texts.append(json.writeValueAsString(c.get("text").textValue())).append('\n');
            }
            Result r = tandemWithInput(texts.toString(), "tokenize", "--tokenizer",
                    reference.resolve(name).resolve("tokenizer.json.gz").toString());
            assertEquals(0, r.exit(), r.err());
            List<String> lines = r.out().lines().toList();
            assertEquals(all.get(name).size(), lines.size(), name);
            for (int i = 0; i < lines.size(); i++) {
                assertEquals(all.get(name).get(i).get("ids"), json.readTree(lines.get(i)), name + " line " + (i + 1));
            }
        }
    }

    @Test
    void launcherSynthOutputRunsThroughGenerate(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("synth-bard-s-shape");
        Result synth = tandem("synth", "--config", "models/bard-s/config.json", "--dtype", "bf16", "--out", out.toString());
        assertEquals(0, synth.exit(), synth.err());
        Result gen = tandem("generate", "--model", out.toString(), "--prompt", " hello", "--max-tokens", "4",
                "--temperature", "0", "--format", "json");
        assertEquals(0, gen.exit(), gen.err());
        JsonNode o = new ObjectMapper().readTree(gen.out());
        int n = o.get("generated_ids").size();
        assertTrue(n == 4 || (n >= 1 && o.get("finish_reason").asText().equals("eos")), gen.out());
    }
}
