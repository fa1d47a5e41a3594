package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
}
