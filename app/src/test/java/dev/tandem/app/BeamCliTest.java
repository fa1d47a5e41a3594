package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static dev.tandem.app.MethodCliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code generate --method beam|diverse-beam}, and a mixing method with {@code --draft}. */
class BeamCliTest {
    private static final String TARGET = TestModels.model("bard-l").toString();
    private static final String SMALL = TestModels.model("bard-s").toString();

    private static JsonNode json(String... extra) throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("generate", "--model", TARGET, "--prompt", "ROMEO:", "--max-tokens", "12",
                "--format", "json", "--temperature", "0"));
        args.addAll(List.of(extra));
        MethodCliTest.Run r = run(args.toArray(String[]::new));
        assertEquals(0, r.exit(), r.err());
        return new ObjectMapper().readTree(r.out());
    }

    @Test
    void oneBeamIsGreedyAndTheNBestComeBestFirst() throws Exception {
        JsonNode plain = json();
        JsonNode one = json("--method", "beam", "--beams", "1");
        assertEquals(plain.get("generated_ids"), one.get("generated_ids"));
        JsonNode four = json("--method", "beam", "--beams", "4", "--n-best", "3", "--length-penalty", "0.5");
        JsonNode hs = four.get("hypotheses");
        assertEquals(3, hs.size());
        assertEquals(four.get("generated_ids"), hs.get(0).get("generated_ids"), "the result is the best hypothesis");
        for (int i = 1; i < hs.size(); i++) {
            assertTrue(hs.get(i - 1).get("score").asDouble() >= hs.get(i).get("score").asDouble(), "best first");
        }
        assertEquals("beam", four.at("/decode_stats/method").asText());
    }

    @Test
    void diverseBeamReportsEveryGroup() throws Exception {
        JsonNode o = json("--method", "diverse-beam", "--beams", "4", "--groups", "2", "--n-best", "4", "--diversity", "1.0");
        Set<Integer> groups = new HashSet<>();
        Set<String> texts = new HashSet<>();
        for (JsonNode h : o.get("hypotheses")) {
            groups.add(h.get("group").asInt());
            texts.add(h.get("text").asText());
        }
        assertEquals(Set.of(0, 1), groups);
        assertEquals(4, texts.size(), "four distinct hypotheses");
    }

    @Test
    void aMixingMethodWithADraftKeepsItsGreedyTokens() throws Exception {
        JsonNode alone = json("--method", "contrastive", "--amateur", SMALL);
        JsonNode drafted = json("--method", "contrastive", "--amateur", SMALL, "--draft", SMALL, "--draft-length", "3");
        assertEquals(alone.get("generated_ids"), drafted.get("generated_ids"));
        assertTrue(drafted.at("/decode_stats/verifications").asInt() > 0);
    }

    private static void assertUsage(String expected, String... args) {
        MethodCliTest.assertUsage(expected, TARGET, args);
    }

    @Test
    void badBeamsAreOneSentence() {
        assertUsage("--beams must be at least 1, but was 0.", "--method", "beam", "--beams", "0");
        assertUsage("--groups 3 does not divide --beams 4.", "--method", "diverse-beam", "--beams", "4", "--groups", "3");
        assertUsage("--method beam needs --beams B.", "--method", "beam");
        assertUsage("--method diverse-beam needs --beams B and --groups G.", "--method", "diverse-beam", "--beams", "4");
        assertUsage("--n-best must be between 1 and --beams 2, but was 3.", "--method", "beam", "--beams", "2", "--n-best", "3");
        assertUsage("--groups applies to --method diverse-beam only, not to --method beam.", "--method", "beam", "--beams", "2",
                "--groups", "2");
        assertUsage("--draft-length is not used by --method beam.", "--method", "beam", "--beams", "2", "--draft-length", "2");
        assertUsage("--method cfg takes --draft-length N (a number) only with --draft DIR.", "--method", "cfg", "--negative-prompt", "x",
                "--draft-length", "2");
    }

    @Test
    void beamSearchRefusesSampling() {
        MethodCliTest.Run r = run("generate", "--model", TARGET, "--prompt", "ROMEO:", "--method", "beam", "--beams", "2",
                "--temperature", "0.5");
        assertTrue(r.exit() != 0 && r.err().contains("--method beam is deterministic, so it takes no --temperature"), r.err());
    }
}
