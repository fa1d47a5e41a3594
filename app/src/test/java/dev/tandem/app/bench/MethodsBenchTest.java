package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A tiny run of the methods suite: every method in both modes, plain's relative speed exactly 1, the JSON shape. */
class MethodsBenchTest {

    @Test
    void tinyRunHasEveryMethodAndPlainIsOne() {
        MethodsBench.Options o = MethodsBench.Options.defaults(1).withPrompts(List.of("JULIET:", "Prince Andrew said"))
                .withMaxTokens(12).withRepetitions(2);
        List<Long> ticks = new ArrayList<>();
        MethodsBench.Result r = MethodsBench.run(TestModels.model("bard-m"),
                new Path[] {TestModels.model("bard-s")}, o, (done, total) -> ticks.add(done));
        ObjectNode json = MethodsBench.toJson(r);

        assertEquals("bard-m", json.get("target").asText());
        assertEquals("bard-s", json.get("drafts").get(0).asText());
        assertEquals(2, json.get("options").get("repetitions").asInt());
        assertEquals(2, json.get("collab_calibration").size(), "one calibration per mode");
        for (JsonNode c : json.get("collab_calibration")) {
            assertTrue(c.get("calibration_call_frequency").asDouble() <= 0.2);
            assertEquals(o.collabThresholds().length, c.get("tried").size());
        }
        JsonNode methods = json.get("methods");
        assertEquals(2 * 10, methods.size(), "plain, ngram, aded, lookahead, speculative x2, pearl x2, tree, collab in two modes");
        Set<String> seen = new HashSet<>();
        for (JsonNode m : methods) {
            String method = m.get("method").asText();
            seen.add(method + "/" + m.get("setting").asText() + "/" + m.get("mode").asText());
            for (String key : List.of("tokens_per_s", "relative_tokens_per_s")) {
                JsonNode s = m.get(key);
                for (String f : List.of("median", "q1", "q3", "iqr")) {
                    assertTrue(s.get(f).isNumber(), key + "." + f);
                }
                assertEquals(2, s.get("values").size());
            }
            assertTrue(m.get("generated_tokens").asInt() > 0);
            assertTrue(m.get("target_passes_per_token").isNumber());
            if (!method.equals("collab")) {
                assertTrue(m.get("acceptance_rate").isNumber());
                assertTrue(m.get("mean_accepted_length").isNumber());
            }
            if (method.equals("plain")) {
                assertEquals(1.0, m.get("relative_tokens_per_s").get("median").asDouble());
                assertEquals(1.0, m.get("relative_tokens_per_s").get("iqr").asDouble() + 1.0);
                assertEquals(1.0, m.get("target_passes_per_token").asDouble(), 1e-9);
            }
            if (method.equals("pearl")) {
                JsonNode vs = m.get("relative_to_speculative");
                assertTrue(vs.get("median").isNumber() && vs.get("median").asDouble() > 0, m.toString());
                assertEquals(2, vs.get("values").size());
            } else {
                assertTrue(m.get("relative_to_speculative") == null, m.toString());
            }
            if (method.equals("speculative") || method.equals("ngram") || method.equals("pearl")) {
                // The chain loop prefills the prompt in its own pass, so at most one pass per token plus one per prompt.
                assertTrue(m.get("target_forward_passes").asLong() <= m.get("generated_tokens").asLong() + 2, m.toString());
            }
            if (method.equals("collab")) {
                JsonNode c = m.get("collab");
                assertTrue(c.get("call_frequency").asDouble() <= 1);
                assertTrue(c.get("change_frequency").asDouble() <= c.get("call_frequency").asDouble());
                assertTrue(c.get("within_call_limit").asBoolean(), "calibrated on the timed set too");
                assertTrue(c.get("threshold").asDouble() >= 0);
                assertEquals(c.get("large_calls").asLong(), m.get("target_forward_passes").asLong());
            } else {
                assertTrue(m.get("collab") == null);
            }
        }
        for (String mode : List.of("greedy", "sampled")) {
            assertTrue(seen.contains("plain//" + mode), seen.toString());
            assertTrue(seen.contains("speculative/gamma=4/" + mode), seen.toString());
            assertTrue(seen.contains("speculative/auto/" + mode), seen.toString());
            assertTrue(seen.contains("pearl/gamma=4/" + mode), seen.toString());
            assertTrue(seen.contains("pearl/auto/" + mode), seen.toString());
        }
        assertTrue(json.get("memory").get("kv_cache_bytes").asLong() > 0);
        assertEquals(ticks.size(), (long) ticks.getLast());
    }

    /** With two threads PEARL gets a thread group of its own, and speculative is also timed on PEARL's target group. */
    @Test
    void withTwoThreadsPearlIsAlsoComparedOnItsOwnTargetThreads() {
        MethodsBench.Options o = MethodsBench.Options.defaults(2).withPrompts(List.of("JULIET:")).withMaxTokens(8)
                .withRepetitions(1);
        List<Long> ticks = new ArrayList<>();
        ObjectNode json = MethodsBench.toJson(MethodsBench.run(TestModels.model("bard-m"),
                new Path[] {TestModels.model("bard-s")}, o, (done, total) -> ticks.add(done)));
        JsonNode methods = json.get("methods");
        assertEquals(2 * 11, methods.size(), "the 10 entries and speculative on PEARL's target group, in two modes");
        int pearl = 0, onPearlThreads = 0;
        for (JsonNode m : methods) {
            if (m.get("setting").asText().contains("pearl's target group")) {
                onPearlThreads++;
                assertEquals("speculative", m.get("method").asText());
            }
            if (m.get("method").asText().equals("pearl")) {
                pearl++;
                assertTrue(m.get("relative_to_speculative_on_pearl_target_threads").get("median").asDouble() > 0, m.toString());
            } else {
                assertTrue(m.get("relative_to_speculative_on_pearl_target_threads") == null, m.toString());
            }
        }
        assertEquals(4, pearl);
        assertEquals(2, onPearlThreads);
        assertEquals(ticks.size(), (long) ticks.getLast());
    }
}
