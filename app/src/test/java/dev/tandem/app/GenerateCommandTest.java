package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tandem generate} run in-process, as the launcher runs it. */
class GenerateCommandTest {

    record Run(int exit, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    @Test
    void jsonGreedyOutputMatchesEveryGoldenCase() throws Exception {
        ObjectMapper json = new ObjectMapper();
        for (String name : new String[] {"bard-s", "bard-m", "bard-l"}) {
            JsonNode golden = json.readTree(TestModels.model(name).resolve("golden.json").toFile());
            for (JsonNode c : golden.get("cases")) {
                Run r = run("generate", "--model", TestModels.model(name).toString(), "--prompt", c.get("prompt").asText(),
                        "--format", "json", "--temperature", "0", "--max-tokens", String.valueOf(c.get("greedy_ids").size()));
                assertEquals(0, r.exit(), r.err());
                JsonNode o = json.readTree(r.out());
                assertEquals(c.get("prompt_ids"), o.get("prompt_ids"), name);
                assertEquals(c.get("greedy_ids"), o.get("generated_ids"), name + ": " + c.get("prompt").asText());
                assertEquals("length", o.get("finish_reason").asText());
                assertEquals(c.get("prompt_ids").size(), o.at("/usage/prompt_tokens").asInt());
                assertEquals(c.get("greedy_ids").size(), o.at("/usage/completion_tokens").asInt());
                assertTrue(o.at("/stats/prefill_ms").asDouble() > 0);
                assertTrue(o.at("/stats/decode_tokens_per_s").asDouble() > 0);
                assertTrue(o.get("logprobs") == null, "logprobs only when asked");
            }
        }
    }

    @Test
    void logprobsStopStringsAndSeedAppearInJson() throws Exception {
        Run r = run("generate", "--model", TestModels.model("bard-s").toString(), "--prompt", "ROMEO:", "--format", "json",
                "--temperature", "0.8", "--top-k", "40", "--top-p", "0.9", "--min-p", "0.01", "--repetition-penalty", "1.1",
                "--seed", "42", "--logprobs", "2", "--max-tokens", "8");
        assertEquals(0, r.exit(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        assertEquals(42, o.at("/sampling/seed").asLong());
        assertEquals(o.get("generated_ids").size(), o.get("logprobs").size());
        assertEquals(2, o.get("logprobs").get(0).get("top_logprobs").size());
        Run again = run("generate", "--model", TestModels.model("bard-s").toString(), "--prompt", "ROMEO:", "--format", "json",
                "--temperature", "0.8", "--top-k", "40", "--top-p", "0.9", "--min-p", "0.01", "--repetition-penalty", "1.1",
                "--seed", "42", "--logprobs", "2", "--max-tokens", "8");
        assertEquals(o.get("generated_ids"), new ObjectMapper().readTree(again.out()).get("generated_ids"), "same seed, same tokens");
    }

    @Test
    void textFormatStreamsTheSameTextAsJson() throws Exception {
        String model = TestModels.model("bard-m").toString();
        Run text = run("generate", "--model", model, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "20",
                "--stop", "zzz");
        Run json = run("generate", "--model", model, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "20",
                "--format", "json");
        assertEquals(0, text.exit());
        assertEquals(new ObjectMapper().readTree(json.out()).get("text").asText() + System.lineSeparator(), text.out());
        assertTrue(text.err().contains("finish: length"), text.err());
    }

    @Test
    void invalidOptionValuesGiveOneSentenceNamingTheOption() {
        String[][] cases = {
                {"--top-p", "generate", "--prompt", "x", "--top-p", "1.5"},
                {"--max-tokens", "generate", "--prompt", "x", "--max-tokens", "0"},
                {"--temperature", "generate", "--prompt", "x", "--temperature", "-1"},
                {"--repetition-penalty", "generate", "--prompt", "x", "--repetition-penalty", "0"},
                {"--format", "generate", "--prompt", "x", "--format", "yaml"},
                {"--prompt", "generate"},
                {"--threads", "generate", "--prompt", "x", "--threads", "-2"}};
        for (String[] c : cases) {
            List<String> args = new ArrayList<>(List.of(c).subList(1, c.length));
            args.addAll(List.of("--model", TestModels.model("bard-s").toString()));
            Run r = run(args.toArray(String[]::new));
            assertTrue(r.exit() != 0, String.join(" ", args));
            String[] lines = r.err().strip().split("\\R");
            assertEquals(1, lines.length, r.err());
            assertTrue(lines[0].startsWith("tandem: ") && lines[0].contains(c[0]), r.err());
        }
    }

    private static final String[] FILE_PROMPTS = {"ROMEO:", "First Citizen:\nBefore we proceed any further, hear me speak.",
            "O", "KING HENRY VI:\nWhat", "JULIET:", "Pierre said \"non\""};

    private static Path promptFile(Path dir, String... lines) throws IOException {
        Path file = dir.resolve("prompts.jsonl");
        Files.writeString(file, String.join("\n", lines) + "\n", StandardCharsets.UTF_8);
        return file;
    }

    /** Each output line i must equal the --prompt run of the same prompt with --stream i, all but the timings. */
    private static void assertPromptFileMatchesSeparateRuns(Path dir, String... options) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<String> lines = new ArrayList<>();
        for (String p : FILE_PROMPTS) {
            lines.add(json.writeValueAsString(p));
            lines.add(""); // blank lines are skipped
        }
        String model = TestModels.model("bard-l").toString();
        List<String> args = new ArrayList<>(List.of("generate", "--model", model, "--prompt-file",
                promptFile(dir, lines.toArray(String[]::new)).toString(), "--format", "json"));
        args.addAll(List.of(options));
        Run batch = run(args.toArray(String[]::new));
        assertEquals(0, batch.exit(), batch.err());
        String[] objects = batch.out().strip().split("\\R");
        assertEquals(FILE_PROMPTS.length, objects.length, "one compact object per line: " + batch.out());
        for (int i = 0; i < FILE_PROMPTS.length; i++) {
            List<String> single = new ArrayList<>(List.of("generate", "--model", model, "--prompt", FILE_PROMPTS[i], "--format", "json",
                    "--stream", String.valueOf(i)));
            single.addAll(List.of(options));
            Run alone = run(single.toArray(String[]::new));
            assertEquals(0, alone.exit(), alone.err());
            ObjectNode expected = (ObjectNode) json.readTree(alone.out());
            ObjectNode actual = (ObjectNode) json.readTree(objects[i]);
            assertTrue(actual.at("/stats/prefill_ms").asDouble() > 0);
            assertEquals(expected.at("/decode_stats/target_forward_passes"), actual.at("/decode_stats/target_forward_passes"));
            expected.remove("stats");
            actual.remove("stats");
            expected.remove("decode_stats"); // holds timings too
            actual.remove("decode_stats");
            assertEquals(expected, actual, "prompt " + i + " (" + FILE_PROMPTS[i] + ")");
        }
    }

    @Test
    void promptFileGreedyPrintsOneObjectPerPromptInInputOrderEqualToSeparatePromptRuns(@TempDir Path dir) throws Exception {
        assertPromptFileMatchesSeparateRuns(dir, "--temperature", "0", "--max-tokens", "24", "--seed", "3");
    }

    @Test
    void promptFileSampledPrintsOneObjectPerPromptInInputOrderEqualToSeparatePromptRuns(@TempDir Path dir) throws Exception {
        assertPromptFileMatchesSeparateRuns(dir, "--temperature", "0.9", "--top-k", "40", "--repetition-penalty", "1.1",
                "--seed", "7", "--logprobs", "2", "--max-tokens", "20", "--stop", "\n\n");
    }

    @Test
    void aBadPromptFileLineGivesOneSentenceNamingTheFileAndLineBeforeAnyOutput(@TempDir Path dir) throws Exception {
        String[][] cases = {
                {"line 3", "\"ROMEO:\"", "", "not json"},
                {"line 2", "\"ROMEO:\"", "42"},
                {"line 1", "[\"ROMEO:\"]"},
                {"line 2", "\"a\"", "\"b\" \"c\""},
                {"line 2", "\"a\"", "null"}};
        for (String[] c : cases) {
            Path file = promptFile(dir, List.of(c).subList(1, c.length).toArray(String[]::new));
            Run r = run("generate", "--model", TestModels.model("bard-s").toString(), "--prompt-file", file.toString());
            assertEquals(1, r.exit(), r.err());
            assertEquals("", r.out());
            String[] lines = r.err().strip().split("\\R");
            assertEquals(1, lines.length, r.err());
            assertTrue(lines[0].startsWith("tandem: ") && lines[0].contains(file.toString()) && lines[0].contains(c[0])
                    && lines[0].endsWith("."), r.err());
        }
        Path tooLong = promptFile(dir, "\"ROMEO:\"", new ObjectMapper().writeValueAsString("ROMEO: ".repeat(2000)));
        Run r = run("generate", "--model", TestModels.model("bard-s").toString(), "--prompt-file", tooLong.toString());
        assertEquals(1, r.exit());
        assertEquals("", r.out());
        assertTrue(r.err().strip().startsWith("tandem: " + tooLong + " line 2: the prompt has"), r.err());
    }

    /** The object a generate --format json run prints, without the fields that hold timings. */
    private static ObjectNode withoutTimings(String output) throws IOException {
        ObjectNode o = (ObjectNode) new ObjectMapper().readTree(output);
        o.remove("stats");
        o.remove("decode_stats");
        return o;
    }

    @Test
    void identicalSampledPromptsInAPromptFileGetDistinctStreamsEachEqualToPromptWithStreamItsIndex(@TempDir Path dir)
            throws Exception {
        String model = TestModels.model("bard-s").toString();
        String[] sampled = {"--temperature", "1.0", "--seed", "11", "--max-tokens", "24", "--format", "json"};
        // The blank line is not counted: the second prompt's stream is 1, not its line number.
        List<String> args = new ArrayList<>(List.of("generate", "--model", model, "--prompt-file",
                promptFile(dir, "\"ROMEO:\"", "", "\"ROMEO:\"").toString()));
        args.addAll(List.of(sampled));
        Run batch = run(args.toArray(String[]::new));
        assertEquals(0, batch.exit(), batch.err());
        String[] objects = batch.out().strip().split("\\R");
        assertEquals(2, objects.length, batch.out());
        ObjectNode first = withoutTimings(objects[0]), second = withoutTimings(objects[1]);
        assertEquals(first.get("prompt_ids"), second.get("prompt_ids"));
        assertNotEquals(first.get("generated_ids"), second.get("generated_ids"), "one shared stream would give one sample");
        for (int i = 0; i < objects.length; i++) {
            List<String> single = new ArrayList<>(List.of("generate", "--model", model, "--prompt", "ROMEO:",
                    "--stream", String.valueOf(i)));
            single.addAll(List.of(sampled));
            Run alone = run(single.toArray(String[]::new));
            assertEquals(0, alone.exit(), alone.err());
            assertEquals(i, withoutTimings(objects[i]).at("/sampling/stream").asLong());
            assertEquals(withoutTimings(alone.out()), withoutTimings(objects[i]), "line " + i);
        }
    }

    @Test
    void aPromptFileLineWithItsOwnStreamEqualsPromptWithThatStream(@TempDir Path dir) throws Exception {
        String model = TestModels.model("bard-s").toString();
        String[] sampled = {"--temperature", "1.0", "--seed", "5", "--max-tokens", "16", "--format", "json"};
        List<String> args = new ArrayList<>(List.of("generate", "--model", model, "--prompt-file",
                promptFile(dir, "{\"prompt\": \"JULIET:\", \"stream\": 9}", "{\"stream\": 0, \"prompt\": \"ROMEO:\"}",
                        "{\"prompt\": \"ROMEO:\"}").toString()));
        args.addAll(List.of(sampled));
        Run batch = run(args.toArray(String[]::new));
        assertEquals(0, batch.exit(), batch.err());
        String[] objects = batch.out().strip().split("\\R");
        assertEquals(3, objects.length, batch.out());
        // {prompt, --stream}: its own stream, then one equal to a default index, then the default (its index, 2).
        String[][] expected = {{"JULIET:", "9"}, {"ROMEO:", "0"}, {"ROMEO:", "2"}};
        for (int i = 0; i < expected.length; i++) {
            List<String> single = new ArrayList<>(List.of("generate", "--model", model, "--prompt", expected[i][0]));
            single.addAll(List.of(sampled));
            if (!expected[i][1].equals("0")) {
                single.addAll(List.of("--stream", expected[i][1])); // 0 is --prompt's default
            }
            Run alone = run(single.toArray(String[]::new));
            assertEquals(0, alone.exit(), alone.err());
            assertEquals(Long.parseLong(expected[i][1]), withoutTimings(alone.out()).at("/sampling/stream").asLong());
            assertEquals(withoutTimings(alone.out()), withoutTimings(objects[i]), "line " + (i + 1));
        }
    }

    @Test
    void aBadPromptObjectGivesOneSentenceNamingTheFileLineAndField(@TempDir Path dir) throws Exception {
        String[][] cases = { // {line, field as named, lines...}
                {"line 1", "\"seed\"", "{\"prompt\": \"x\", \"seed\": 3}"},
                {"line 2", "\"prompt\"", "\"a\"", "{\"stream\": 1}"},
                {"line 1", "\"prompt\"", "{\"prompt\": 42}"},
                {"line 1", "\"prompt\"", "{\"prompt\": [\"x\"]}"},
                {"line 1", "\"stream\"", "{\"prompt\": \"x\", \"stream\": -1}"},
                {"line 1", "\"stream\"", "{\"prompt\": \"x\", \"stream\": 1.5}"},
                {"line 1", "\"stream\"", "{\"prompt\": \"x\", \"stream\": \"3\"}"},
                {"line 1", "\"stream\"", "{\"prompt\": \"x\", \"stream\": 99999999999999999999}"},
                {"line 3", "\"stream\"", "\"a\"", "", "{\"prompt\": \"x\", \"stream\": 1, \"stream\": 2}"}};
        for (String[] c : cases) {
            Path file = promptFile(dir, List.of(c).subList(2, c.length).toArray(String[]::new));
            Run r = run("generate", "--model", TestModels.model("bard-s").toString(), "--prompt-file", file.toString());
            assertEquals(1, r.exit(), r.err());
            assertEquals("", r.out());
            String[] lines = r.err().strip().split("\\R");
            assertEquals(1, lines.length, r.err());
            assertTrue(lines[0].startsWith("tandem: " + file + " " + c[0] + " ") && lines[0].contains(c[1])
                    && lines[0].endsWith("."), r.err());
        }
    }

    @Test
    void streamIsANonNegativeNumberForASinglePromptOnly(@TempDir Path dir) throws Exception {
        String model = TestModels.model("bard-s").toString();
        String[][] cases = {
                {"generate", "--model", model, "--prompt", "x", "--stream", "-1"},
                {"generate", "--model", model, "--prompt-file", promptFile(dir, "\"x\"").toString(), "--stream", "1"}};
        for (String[] c : cases) {
            Run r = run(c);
            assertEquals(2, r.exit(), r.err());
            assertEquals("", r.out());
            String[] lines = r.err().strip().split("\\R");
            assertEquals(1, lines.length, r.err());
            assertTrue(lines[0].startsWith("tandem: --stream ") && lines[0].endsWith("."), r.err());
        }
    }

    @Test
    void promptAndPromptFileAreMutuallyExclusiveAndOneIsRequired(@TempDir Path dir) throws Exception {
        String model = TestModels.model("bard-s").toString();
        Path file = promptFile(dir, "\"ROMEO:\"");
        String[][] cases = {
                {"cannot be used together", "generate", "--model", model, "--prompt", "x", "--prompt-file", file.toString()},
                {"--prompt-file", "generate", "--model", model},
                {"--format text", "generate", "--model", model, "--prompt-file", file.toString(), "--format", "text"},
                {"does not exist", "generate", "--model", model, "--prompt-file", dir.resolve("missing.jsonl").toString()},
                {"holds no prompts", "generate", "--model", model, "--prompt-file", promptFile(dir, "", "  ").toString()}};
        for (String[] c : cases) {
            Run r = run(List.of(c).subList(1, c.length).toArray(String[]::new));
            assertTrue(r.exit() != 0);
            assertEquals("", r.out());
            String[] lines = r.err().strip().split("\\R");
            assertEquals(1, lines.length, r.err());
            assertTrue(lines[0].startsWith("tandem: ") && lines[0].contains(c[0]), r.err());
        }
    }
}
