package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code generate --method diffusion}: the JSON trace of bard-dlm's golden runs (low-confidence over the whole
 * canvas, threshold in blocks), the whole canvas as generated_ids, and one sentence for each bad combination.
 */
class DiffusionCliTest {

    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new String[] {Integer.toString(exit), out.toString(), err.toString()};
    }

    private static String lastLine(String text) {
        return text.strip().lines().reduce((a, b) -> b).orElse("");
    }

    @Test
    void theJsonTraceIsTheGoldenOne() throws Exception {
        String dlm = TestModels.model("bard-dlm").toString();
        JsonNode golden = new ObjectMapper().readTree(TestModels.model("bard-dlm").resolve("golden.json").toFile());
        JsonNode romeo = golden.get("cases").get(0);
        assertEquals("ROMEO:", romeo.get("prompt").asText());
        String[][] runs = {
                {"--gen-length", "32"},
                {"--gen-length", "32", "--block-length", "8", "--unmask", "threshold", "--threshold", "0.15"},
        };
        int[] traceIndex = {0, 3};
        for (int i = 0; i < runs.length; i++) {
            String[] args = concat(new String[] {"generate", "--model", dlm, "--method", "diffusion", "--prompt", "ROMEO:",
                    "--format", "json", "--trace"}, runs[i]);
            String[] r = run(args);
            assertEquals("0", r[0], r[2]);
            JsonNode json = new ObjectMapper().readTree(r[1]);
            JsonNode expected = romeo.get("traces").get(traceIndex[i]);
            assertEquals(expected.get("steps"), json.get("trace"), String.join(" ", runs[i]));
            assertEquals(expected.get("final_ids"), json.get("generated_ids"));
            assertEquals(expected.get("steps").size(), json.get("decode_stats").get("target_forward_passes").asInt());
            JsonNode d = json.get("diffusion");
            assertEquals(expected.get("steps").size(), d.get("passes").asInt());
            assertEquals(32, d.get("positions").asInt());
            for (int s = 0; s < expected.get("steps").size(); s++) {
                assertEquals(expected.get("steps").get(s).size(), d.get("committed_per_pass").get(s).asInt(), "pass " + s);
            }
        }
    }

    @Test
    void withoutTraceTheJsonStillCountsTheCommitsOfEachPass() throws Exception {
        String[] r = run("generate", "--model", TestModels.model("bard-dlm").toString(), "--method", "diffusion", "--prompt", "ROMEO:",
                "--gen-length", "8", "--unmask", "threshold", "--threshold", "0.05", "--format", "json");
        assertEquals("0", r[0], r[2]);
        JsonNode json = new ObjectMapper().readTree(r[1]);
        assertEquals(null, json.get("trace"), "the trace only with --trace");
        int sum = 0;
        for (JsonNode n : json.get("diffusion").get("committed_per_pass")) {
            assertTrue(n.asInt() >= 1);
            sum += n.asInt();
        }
        assertEquals(8, sum, "every position committed once");
        assertEquals(json.get("diffusion").get("passes").asInt(), json.get("diffusion").get("committed_per_pass").size());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void badCombinationsAreOneSentenceEach() {
        String dlm = TestModels.model("bard-dlm").toString();
        String causal = TestModels.model("bard-s").toString();
        String[][] cases = {
                {"2", "--max-tokens does not apply to --method diffusion; give the canvas length with --gen-length.",
                        dlm, "--method", "diffusion", "--max-tokens", "5"},
                {"2", "--block-length must divide --gen-length 30, but was 8.", dlm, "--method", "diffusion", "--gen-length", "30",
                        "--block-length", "8"},
                {"2", "--threshold must be in (0, 1], but was 1.5.", dlm, "--method", "diffusion", "--unmask", "threshold",
                        "--threshold", "1.5"},
                {"2", "--threshold applies to --unmask threshold only.", dlm, "--method", "diffusion", "--threshold", "0.5"},
                {"2", "--gen-length, --block-length, --steps, --unmask, --threshold, --ccd-window, --cache and --trace apply to --method diffusion only.",
                        causal, "--gen-length", "8"},
                {"2", "--trace needs --format json and a single --prompt.", dlm, "--method", "diffusion", "--trace"},
                {"2", "--method diffusion takes --temperature (Gumbel noise on each position's argmax) but not --top-k, --top-p, "
                        + "--min-p or --repetition-penalty.", dlm, "--method", "diffusion", "--top-k", "5"},
                {"2", "--ccd-window applies to --unmask ccd only.", dlm, "--method", "diffusion", "--ccd-window", "3"},
                {"2", "--ccd-window must be at least 1, but was 0.", dlm, "--method", "diffusion", "--unmask", "ccd", "--ccd-window", "0"},
                {"2", "--cache must be one of none, prefix, dual, but was \"all\".", dlm, "--method", "diffusion", "--cache", "all"},
                {"1", "--method diffusion needs a masked-diffusion model (config.json with \"is_causal\": false and a \"mask_token_id\"), "
                        + "but this model is causal.", causal, "--method", "diffusion"},
                {"1", "bard-dlm is a masked-diffusion model (config.json: \"is_causal\": false, \"mask_token_id\": 2048), so it decodes "
                        + "only with --method diffusion, not --method plain.", dlm},
        };
        for (String[] c : cases) {
            String[] args = concat(new String[] {"generate", "--prompt", "x", "--model", c[2]},
                    java.util.Arrays.copyOfRange(c, 3, c.length));
            String[] r = run(args);
            assertEquals(c[0], r[0], String.join(" ", args) + ": " + r[2]);
            assertEquals("tandem: " + c[1], lastLine(r[2]), String.join(" ", args));
            assertTrue(r[1].isEmpty(), "nothing on stdout: " + r[1]);
        }
    }
}
