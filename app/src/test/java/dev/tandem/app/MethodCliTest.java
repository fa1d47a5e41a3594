package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import java.io.PrintWriter;
import java.util.List;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tandem generate --method NAME}, with {@code --draft}, {@code --draft-length} and {@code --draft-threads}. */
class MethodCliTest {

    record Run(int exit, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    private static final String TARGET = TestModels.model("bard-l").toString();

    /** {@code generate --model model --prompt ROMEO: args} exits 2 and its last line on stderr is {@code tandem: expected}. */
    static void assertUsage(String expected, String model, String... args) {
        List<String> all = new java.util.ArrayList<>(List.of("generate", "--model", model, "--prompt", "ROMEO:"));
        all.addAll(List.of(args));
        Run r = run(all.toArray(String[]::new));
        assertEquals(2, r.exit(), r.err());
        assertEquals("tandem: " + expected, r.err().strip().lines().reduce((x, y) -> y).orElse(""), String.join(" ", args));
    }
    private static final String DRAFT = TestModels.model("bard-s").toString();

    private static JsonNode json(String... extra) throws Exception {
        String[] base = {"generate", "--model", TARGET, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "24",
                "--format", "json"};
        String[] args = new String[base.length + extra.length];
        System.arraycopy(base, 0, args, 0, base.length);
        System.arraycopy(extra, 0, args, base.length, extra.length);
        Run r = run(args);
        assertEquals(0, r.exit(), r.err());
        return new ObjectMapper().readTree(r.out());
    }

    @Test
    void everyMethodGivesTheGreedyTokensAndReportsDecodeStats(@TempDir Path tmp) throws Exception {
        Path corpus = tmp.resolve("corpus.txt");
        java.nio.file.Files.writeString(corpus, "ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
                + "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\nROMEO:\nI take thee at thy word.\n");
        JsonNode plain = json();
        assertEquals("plain", plain.at("/decode_stats/method").asText());
        assertEquals(1.0, plain.at("/decode_stats/target_passes_per_token").asDouble());
        for (String[] m : new String[][] {{"--method", "speculative", "--draft", DRAFT},
                {"--method", "speculative", "--draft", DRAFT, "--draft-length", "auto"},
                {"--method", "speculative", "--draft", DRAFT, "--draft-length", "auto", "--draft-threshold", "0.1"},
                {"--method", "speculative", "--draft", DRAFT, "--draft-length", "2"},
                {"--method", "pearl", "--draft", DRAFT},
                {"--method", "pearl", "--draft", DRAFT, "--draft-length", "auto", "--threads", "2", "--draft-threads", "1"},
                {"--method", "ngram"}, {"--method", "ngram", "--draft-length", "3"},
                {"--method", "aded"}, {"--method", "aded", "--ngram-corpus", corpus.toString(), "--tree-budget", "16",
                        "--tree-depth", "3", "--aded-iterations", "50"},
                {"--method", "lookahead"},
                {"--method", "lookahead", "--lookahead-window", "3", "--lookahead-ngram", "3", "--lookahead-candidates", "2"}}) {
            JsonNode o = json(m);
            String label = String.join(" ", m);
            assertEquals(plain.get("generated_ids"), o.get("generated_ids"), label);
            assertEquals(plain.get("text"), o.get("text"), label);
            JsonNode s = o.get("decode_stats");
            assertEquals(m[1], s.get("method").asText());
            assertEquals(24, s.get("generated_tokens").asInt());
            assertTrue(s.get("verifications").asInt() > 0, label);
            assertTrue(s.get("acceptance_rate").asDouble() >= 0 && s.get("acceptance_rate").asDouble() <= 1, label);
            assertTrue(s.get("accepted_histogram").isArray(), label);
            assertTrue(s.has("mean_accepted_per_verification") && s.has("target_passes_per_token"), label);
            assertTrue(s.at("/wall_ms/verify").asDouble() > 0, label);
            if (m[1].equals("speculative") || m[1].equals("pearl")) {
                assertTrue(s.get("draft_forward_passes").asInt() > 0, label);
                assertTrue(s.get("target_passes_per_token").asDouble() < 1, label);
            }
        }
    }

    @Test
    void textOutputEndsWithAOneLineSummaryOnStderr() {
        Run r = run("generate", "--model", TARGET, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "16",
                "--method", "speculative", "--draft", DRAFT, "--draft-length", "auto");
        assertEquals(0, r.exit(), r.err());
        String[] lines = r.err().strip().split("\\R");
        String last = lines[lines.length - 1];
        assertTrue(last.startsWith("[speculative: acceptance ") && last.contains("accepted per verification")
                && last.contains("target passes per token"), r.err());
    }

    @Test
    void aDraftWithAnotherTokenizerIsOneSentence(@TempDir Path tmp) throws Exception {
        Path dir = TestModels.copyOf("bard-s", tmp.resolve("draft"));
        ObjectMapper json = new ObjectMapper();
        ObjectNode tokenizer = (ObjectNode) json.readTree(dir.resolve("tokenizer.json").toFile());
        ObjectNode vocab = (ObjectNode) tokenizer.get("model").get("vocab");
        String a = null, b = null;
        for (var it = vocab.fields(); it.hasNext(); ) {
            var e = it.next();
            if (e.getValue().asInt() == 400) {
                a = e.getKey();
            } else if (e.getValue().asInt() == 401) {
                b = e.getKey();
            }
        }
        vocab.put(a, 401);
        vocab.put(b, 400);
        json.writeValue(dir.resolve("tokenizer.json").toFile(), tokenizer);
        Run r = run("generate", "--model", TARGET, "--prompt", "ROMEO:", "--max-tokens", "2", "--method", "speculative",
                "--draft", dir.toString());
        assertEquals(1, r.exit(), r.err());
        String[] lines = r.err().strip().split("\\R");
        assertEquals(1, lines.length, r.err());
        assertTrue(lines[0].startsWith("tandem: the draft model ") && lines[0].contains("token 400")
                && lines[0].endsWith("a draft must share the target's tokenizer."), r.err());
    }

    @Test
    void badMethodOptionsAreOneSentence() {
        String[][] cases = {
                {"--method", "nucleus"}, {"plain, speculative, pearl, tree, ngram, aded, lookahead, collab"},
                {"--method", "speculative"}, {"needs a draft model; give its directory with --draft DIR."},
                {"--draft", DRAFT}, {"--draft is used by --method speculative, pearl, tree, collab, rapid and, to verify its drafts against the mixed logits, contrastive, proxy-tune, cad, cfg only, not by --method plain."},
                {"--method", "speculative", "--draft", DRAFT, "--draft-threads", "1"}, {"--draft-threads applies to --method pearl only."},
                {"--method", "ngram", "--ngram-corpus", "x.txt"}, {"--ngram-corpus and --aded-iterations apply to --method aded only."},
                {"--method", "aded", "--ngram-corpus", "/nonexistent/corpus.txt"}, {"/nonexistent/corpus.txt"},
                {"--method", "aded", "--tree-top-k", "2"}, {"--tree-top-k applies to --method tree only."},
                {"--method", "aded", "--draft-length", "2"}, {"--draft-length is not used by --method aded."},
                {"--method", "lookahead", "--lookahead-ngram", "1"}, {"--lookahead-ngram must be at least 2, but was 1."},
                {"--method", "plain", "--lookahead-window", "3"}, {"apply to --method lookahead only."},
                {"--method", "pearl", "--draft", DRAFT, "--draft-threads", "0"}, {"--draft-threads must be at least 1, but was 0."},
                {"--method", "pearl", "--draft", DRAFT, "--threads", "2", "--draft-threads", "2"},
                {"--draft-threads (2) must leave the target at least one of the 2 --threads."},
                {"--method", "ngram", "--draft-length", "0"}, {"--draft-length must be a whole number of at least 1 or auto"},
                {"--method", "speculative", "--draft", DRAFT, "--draft-length", "x"}, {"but was \"x\"."},
                {"--method", "ngram", "--draft-length", "auto"}, {"--draft-length auto needs a draft model"},
                {"--method", "speculative", "--draft", DRAFT, "--draft-threshold", "0.5"}, {"--draft-threshold applies to"},
                {"--method", "speculative", "--draft", DRAFT, "--draft-length", "auto", "--draft-threshold", "2"},
                {"--draft-threshold must be in [0, 1], but was 2.0."},
                {"--method", "speculative", "--draft", "/nonexistent/draft"}, {"model directory not found: /nonexistent/draft."},
        };
        for (int i = 0; i < cases.length; i += 2) {
            String[] base = {"generate", "--model", TARGET, "--prompt", "ROMEO:", "--max-tokens", "2"};
            String[] args = new String[base.length + cases[i].length];
            System.arraycopy(base, 0, args, 0, base.length);
            System.arraycopy(cases[i], 0, args, base.length, cases[i].length);
            Run r = run(args);
            assertTrue(r.exit() != 0, String.join(" ", cases[i]));
            String[] lines = r.err().strip().split("\\R");
            assertEquals(1, lines.length, r.err());
            assertTrue(lines[0].startsWith("tandem: ") && lines[0].contains(cases[i + 1][0]), r.err());
        }
    }
}
