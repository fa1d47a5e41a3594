package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.tandem.app.MethodCliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code generate --method contrastive|proxy-tune|cad|cfg}: the neutral settings, the flags' checks, the help table. */
class MixMethodsCliTest {
    private static final String TARGET = TestModels.model("bard-l").toString();
    private static final String SMALL = TestModels.model("bard-s").toString();
    private static final String MEDIUM = TestModels.model("bard-m").toString();

    private static JsonNode json(String... extra) throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("generate", "--model", TARGET, "--prompt", "ROMEO:", "--max-tokens", "16",
                "--format", "json"));
        args.addAll(List.of(extra));
        MethodCliTest.Run r = run(args.toArray(String[]::new));
        assertEquals(0, r.exit(), r.err());
        return new ObjectMapper().readTree(r.out());
    }

    @Test
    void theNeutralSettingsGivePlainDecodingsTokens() throws Exception {
        for (String[] sampling : new String[][] {{"--temperature", "0"}, {"--temperature", "0.9", "--seed", "3", "--top-p", "0.9"}}) {
            JsonNode plain = json(sampling);
            for (String[] m : new String[][] {{"--method", "contrastive", "--amateur", SMALL, "--alpha", "0", "--beta", "0"},
                    {"--method", "proxy-tune", "--tuned", MEDIUM, "--base", SMALL, "--alpha", "0"},
                    {"--method", "cfg", "--negative-prompt", "JULIET:", "--scale", "1"}}) {
                String[] args = java.util.stream.Stream.concat(java.util.Arrays.stream(sampling), java.util.Arrays.stream(m))
                        .toArray(String[]::new);
                JsonNode o = json(args);
                String label = String.join(" ", args);
                assertEquals(plain.get("generated_ids"), o.get("generated_ids"), label);
                assertEquals(plain.get("text"), o.get("text"), label);
                assertEquals(m[1], o.at("/decode_stats/method").asText(), label);
            }
        }
        JsonNode contrastive = json("--method", "contrastive", "--amateur", SMALL, "--temperature", "0");
        assertEquals(16, contrastive.at("/decode_stats/draft_forward_passes").asInt(), "the amateur's passes");
    }

    @Test
    void cadReadsItsContextFromAFileAndPutsItFirst(@TempDir Path tmp) throws Exception {
        Path context = tmp.resolve("context.txt");
        Files.writeString(context, "KING RICHARD III:\nNow is the winter of our discontent\n");
        JsonNode fromFile = json("--method", "cad", "--context", "@" + context, "--temperature", "0");
        JsonNode inline = json("--method", "cad", "--context", Files.readString(context), "--temperature", "0");
        for (String field : List.of("prompt_ids", "generated_ids", "text")) {
            assertEquals(inline.get(field), fromFile.get(field), field);
        }
        assertTrue(fromFile.get("prompt_ids").size() > 2, "the context's tokens come before the prompt's");
        JsonNode plain = json("--temperature", "0");
        assertNotEquals(plain.get("generated_ids"), fromFile.get("generated_ids"), "the context changes the continuation");
    }

    @Test
    void aPromptFileRunsTheMethodForEveryLine(@TempDir Path tmp) throws Exception {
        Path prompts = tmp.resolve("prompts.jsonl");
        Files.writeString(prompts, "\"ROMEO:\"\n{\"prompt\": \"JULIET:\", \"stream\": 4}\n");
        String[] method = {"--method", "contrastive", "--amateur", SMALL, "--temperature", "0.8", "--seed", "9"};
        List<String> args = new java.util.ArrayList<>(List.of("generate", "--model", TARGET, "--prompt-file", prompts.toString(),
                "--max-tokens", "12"));
        args.addAll(List.of(method));
        MethodCliTest.Run all = run(args.toArray(String[]::new));
        assertEquals(0, all.exit(), all.err());
        String[] lines = all.out().strip().split("\n");
        assertEquals(2, lines.length);
        JsonNode second = new ObjectMapper().readTree(lines[1]);
        List<String> one = new java.util.ArrayList<>(List.of("--prompt", "JULIET:", "--stream", "4"));
        one.addAll(List.of(method));
        List<String> alone = new java.util.ArrayList<>(List.of("generate", "--model", TARGET, "--max-tokens", "12", "--format", "json"));
        alone.addAll(one);
        MethodCliTest.Run r = run(alone.toArray(String[]::new));
        assertEquals(0, r.exit(), r.err());
        assertEquals(new ObjectMapper().readTree(r.out()).get("generated_ids"), second.get("generated_ids"));
    }

    private static void assertUsage(String expected, String... args) {
        MethodCliTest.assertUsage(expected, TARGET, args);
    }

    @Test
    void eachFlagBelongsToItsMethods() {
        assertUsage("--beta applies to --method contrastive, lol only, not to --method plain.", "--beta", "0.5");
        assertUsage("--alpha applies to --method contrastive, proxy-tune, cad, dola, lol only, not to --method cfg.",
                "--method", "cfg", "--negative-prompt", "x", "--alpha", "1");
        assertUsage("--amateur applies to --method contrastive, lol only, not to --method speculative.",
                "--method", "speculative", "--draft", SMALL, "--amateur", SMALL);
        assertUsage("--scale applies to --method cfg only, not to --method cad.", "--method", "cad", "--context", "x", "--scale", "2");
        assertUsage("--method contrastive needs --amateur DIR (the small model to contrast with).", "--method", "contrastive");
        assertUsage("--method proxy-tune needs --tuned DIR and --base DIR (the small model after and before tuning).",
                "--method", "proxy-tune", "--tuned", MEDIUM);
        assertUsage("--method cad needs --context TEXT or --context @FILE.", "--method", "cad");
        assertUsage("--method cfg needs --negative-prompt TEXT.", "--method", "cfg");
        assertUsage("--alpha must be in [0, 1], but was 2.0.", "--method", "contrastive", "--amateur", SMALL, "--alpha", "2");
        assertUsage("--context @/no/such/file cannot be read: no such file or directory.", "--method", "cad", "--context", "@/no/such/file");
    }

    @Test
    void layerContrastRunsAndLolWithoutItsLowerLayerIsContrastive() throws Exception {
        JsonNode dola = json("--method", "dola", "--layers", "0,2,4", "--temperature", "0");
        assertEquals(16, dola.get("generated_ids").size());
        assertEquals("dola", dola.at("/decode_stats/method").asText());
        JsonNode contrastive = json("--method", "contrastive", "--amateur", SMALL, "--temperature", "0");
        JsonNode lol = json("--method", "lol", "--amateur", SMALL, "--layer", "0", "--lambda", "0", "--temperature", "0");
        assertEquals(contrastive.get("generated_ids"), lol.get("generated_ids"));
        assertUsage("--layers holds layer 9, past the 6 decoder layers of " + TARGET + " (0 to 5).", "--method", "dola", "--layers", "9");
        assertUsage("--method lol needs --amateur DIR and --layer L.", "--method", "lol", "--amateur", SMALL);
        assertUsage("--layer applies to --method lol only, not to --method dola.", "--method", "dola", "--layers", "1", "--layer", "1");
    }

    @Test
    void caadBuildsItsStoreOnceAndWithoutWeightIsPlainDecoding(@TempDir Path tmp) throws Exception {
        Path grounding = Files.writeString(tmp.resolve("grounding.jsonl"), """
                {"text": "ROMEO:", "continuation": "\\nBut, soft! what light through yonder window breaks?"}
                {"text": "KING RICHARD III:", "continuation": "\\nNow is the winter of our discontent"}
                """);
        JsonNode grounded = json("--method", "caad", "--grounding", grounding.toString(), "--temperature", "0");
        assertEquals("caad", grounded.at("/decode_stats/method").asText());
        assertTrue(Files.exists(tmp.resolve("grounding.jsonl.bard-l.caad-store")), "the store is saved beside the file");
        JsonNode plain = json("--temperature", "0");
        JsonNode neutral = json("--method", "caad", "--grounding", grounding.toString(), "--weight", "0", "--temperature", "0");
        assertEquals(plain.get("generated_ids"), neutral.get("generated_ids"));
        Path empty = Files.writeString(tmp.resolve("empty.jsonl"), "");
        MethodCliTest.Run r = run("generate", "--model", TARGET, "--prompt", "ROMEO:", "--method", "caad", "--grounding", empty.toString());
        assertEquals(1, r.exit(), r.err());
        assertEquals("tandem: the grounding file " + empty + " holds no examples; write each example as {\"text\": TEXT, "
                + "\"continuation\": TEXT}, one per line.", r.err().strip().lines().reduce((x, y) -> y).orElse(""));
        assertUsage("--neighbours applies to --method caad only, not to --method plain.", "--neighbours", "3");
        assertUsage("--draft is used by --method speculative, pearl, tree, collab, rapid and, to verify its drafts against the mixed logits, "
                + "contrastive, proxy-tune, cad, cfg only, not by --method caad.", "--method", "caad", "--grounding", grounding.toString(),
                "--draft", SMALL);
    }

    @Test
    void anAmateurWithAnotherVocabularyIsRefused() {
        MethodCliTest.Run r = run("generate", "--model", TARGET, "--prompt", "ROMEO:", "--method", "contrastive", "--amateur",
                TestModels.model("bard-dlm").toString());
        assertEquals(1, r.exit(), r.err());
        String last = r.err().strip().lines().reduce((x, y) -> y).orElse("");
        assertTrue(last.startsWith("tandem: the amateur model ") && last.contains("has a vocabulary of 2049 tokens"), last);
    }

    @Test
    void theHelpEndsWithEveryMethodAndItsFlags() {
        MethodCliTest.Run r = run("generate", "--help");
        assertEquals(0, r.exit());
        for (String m : GenerateCommand.METHODS) {
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith("  " + m + " ")), "no row for " + m + ":\n" + r.out());
        }
        assertTrue(r.out().contains("--amateur DIR, --alpha A [0.1], --beta B [0.5]"), r.out());
        assertTrue(r.out().lines().allMatch(l -> l.length() <= 80), "a line wider than 80 columns");
        String table = r.out().substring(r.out().indexOf("Each method's flags")).strip();
        String readme;
        try {
            readme = Files.readString(TestModels.modelsDir().getParent().resolve("README.md"));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        assertTrue(readme.contains(table), "the README repeats the help's table of methods:\n" + table);
    }
}
