package dev.tandem.decoding.diffusion;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every trace of bard-dlm's golden.json reproduced step for step: low-confidence remasking one position per step
 * over the whole canvas and in blocks of 8, and threshold unmasking (τ = 0.2 whole, τ = 0.15 in blocks of 8); the
 * same [position, token] pairs in the same order at every step up to a trace's cut, and the same final canvas for
 * the complete traces.
 */
class DiffusionGoldenTest {
    private static LanguageModel model;
    private static JsonNode golden;

    @BeforeAll
    static void load() throws IOException {
        model = ModelLoader.load(TestModels.model("bard-dlm"));
        golden = new ObjectMapper().readTree(TestModels.model("bard-dlm").resolve("golden.json").toFile());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void everyGoldenTraceIsReproducedStepForStep() {
        int traces = 0;
        for (JsonNode c : golden.get("cases")) {
            for (JsonNode t : c.get("traces")) {
                int gen = t.get("gen_length").asInt();
                int block = t.get("block").isNull() ? gen : t.get("block").asInt();
                DiffusionParams params = switch (t.get("rule").asText()) {
                    case "low_confidence" -> DiffusionParams.lowConfidence(gen).withBlockLength(block);
                    case "threshold" -> DiffusionParams.lowConfidence(gen).withBlockLength(block).withThreshold(t.get("tau").asDouble());
                    default -> throw new AssertionError(t.get("rule").asText());
                };
                String where = c.get("prompt").asText() + " / " + t.get("rule").asText() + " block " + block;
                DiffusionDecoding.Traced run = new DiffusionDecoding(model, params)
                        .generateTraced(GenerationRequest.ofIds(TestModels.ints(t.get("prompt_ids"))), e -> {});
                JsonNode steps = t.get("steps");
                assertTrue(run.trace().size() >= steps.size(), where + ": " + run.trace().size() + " steps, golden " + steps.size());
                for (int s = 0; s < steps.size(); s++) {
                    assertEquals(pairs(steps.get(s)), pairs(run.trace().get(s)), where + ": step " + s);
                }
                if (t.get("complete").asBoolean()) {
                    assertEquals(steps.size(), run.trace().size(), where + ": steps");
                    assertArrayEquals(TestModels.ints(t.get("final_ids")), run.result().generatedIds(), where + ": final canvas");
                }
                traces++;
            }
        }
        assertEquals(12, traces);
    }

    /** Threshold unmasking commits at least one position per step, only masked ones, and never past the current block. */
    @Test
    void thresholdCommitsAtLeastOnePerStepAndNeverBeyondTheBlock() {
        for (double tau : new double[] {0.05, 0.15, 0.9}) {
            for (String prompt : List.of("ROMEO:", "KING HENRY VI:\nWhat")) {
                GenerationRequest request = GenerationRequest.of(prompt);
                DiffusionParams params = DiffusionParams.lowConfidence(24).withBlockLength(8).withThreshold(tau);
                DiffusionDecoding.Traced run = new DiffusionDecoding(model, params).generateTraced(request, e -> {});
                int start = run.result().promptIds().length;
                boolean[] done = new boolean[24];
                int filled = 0;
                for (int[][] step : run.trace()) {
                    assertTrue(step.length >= 1, "tau " + tau + ": an empty step");
                    int block = filled / 8; // blocks fill in order: the current one is the first not yet full
                    for (int[] pair : step) {
                        int i = pair[0] - start;
                        assertTrue(i >= block * 8 && i < block * 8 + 8, "tau " + tau + ": position " + pair[0] + " outside block " + block);
                        assertTrue(!done[i], "position " + pair[0] + " committed twice");
                        done[i] = true;
                        assertEquals(pair[1], run.result().generatedIds()[i], "the committed token stays");
                    }
                    filled += step.length;
                }
                assertEquals(24, filled, "every position committed once");
                if (tau == 0.9) {
                    assertEquals(24, run.trace().size(), "nothing exceeds 0.9 on this weak model: one per step");
                }
            }
        }
    }

    /**
     * CCD on the model: every position once, at least LLaDA's count per pass (so never more passes than its schedule),
     * and with the window at its largest useful value it commits exactly low-confidence's count by entropy order.
     */
    @Test
    void ccdFillsTheCanvasInNoMorePassesThanTheSchedule() {
        for (String prompt : List.of("ROMEO:", "KING HENRY VI:\nWhat")) {
            DiffusionParams params = DiffusionParams.lowConfidence(24).withBlockLength(8).withCcdWindow(2);
            DiffusionDecoding.Traced run = new DiffusionDecoding(model, params).generateTraced(GenerationRequest.of(prompt), e -> {});
            assertTrue(run.trace().size() <= 24, prompt + ": " + run.trace().size() + " passes");
            int filled = 0;
            boolean[] seen = new boolean[24];
            for (int[][] step : run.trace()) {
                assertTrue(step.length >= 1 && step.length <= 5, "between u = 1 and V = 5 per pass: " + step.length);
                for (int[] pair : step) {
                    int i = pair[0] - run.result().promptIds().length;
                    assertTrue(!seen[i]);
                    seen[i] = true;
                    filled++;
                }
            }
            assertEquals(24, filled);
            // A window no streak can reach (longer than the block has passes) leaves only the fallback: Dream's entropy order.
            DiffusionDecoding.Traced never = new DiffusionDecoding(model, params.withCcdWindow(100)).generateTraced(
                    GenerationRequest.of(prompt), e -> {});
            DiffusionDecoding.Traced entropy = new DiffusionDecoding(model, params.withRule(UnmaskRule.ENTROPY)).generateTraced(
                    GenerationRequest.of(prompt), e -> {});
            assertEquals(entropy.trace().size(), never.trace().size());
            for (int s = 0; s < never.trace().size(); s++) {
                assertEquals(pairs(entropy.trace().get(s)), pairs(never.trace().get(s)), prompt + ": step " + s);
            }
        }
    }

    /**
     * Gumbel noise (a temperature): the same seed gives the same canvas, alone or in another order of runs; another
     * seed another canvas; and as the temperature goes to 0 the noise stops mattering: at 1e-9 the golden trace.
     */
    @Test
    void gumbelNoiseIsKeyedByTheSeedAndVanishesAsTheTemperatureDoes() {
        JsonNode c = golden.get("cases").get(2);
        JsonNode t = c.get("traces").get(1); // low-confidence in blocks of 8
        DiffusionParams params = DiffusionParams.lowConfidence(32).withBlockLength(8);
        DiffusionDecoding method = new DiffusionDecoding(model, params);
        GenerationRequest base = GenerationRequest.ofIds(TestModels.ints(t.get("prompt_ids")));
        DiffusionDecoding.Traced cold = method.generateTraced(base.withSampling(
                dev.tandem.decoding.sampling.SamplingParams.greedy().withTemperature(1e-9f).withSeed(5)), e -> {});
        for (int s = 0; s < t.get("steps").size(); s++) {
            assertEquals(pairs(t.get("steps").get(s)), pairs(cold.trace().get(s)), "temperature 1e-9, step " + s);
        }
        GenerationRequest hot = base.withSampling(dev.tandem.decoding.sampling.SamplingParams.greedy().withTemperature(2f).withSeed(5));
        int[] a = method.generate(hot).generatedIds();
        int[] b = method.generate(hot).generatedIds();
        int[] other = method.generate(hot.withSampling(hot.sampling().withSeed(6))).generatedIds();
        assertArrayEquals(a, b, "the same seed, the same canvas");
        assertTrue(!Arrays.equals(a, other), "another seed, another canvas: " + Arrays.toString(a));
        assertTrue(!Arrays.equals(a, TestModels.ints(t.get("final_ids"))), "noise at temperature 2 changes the canvas");
    }

    private static List<String> pairs(JsonNode step) {
        List<String> out = new ArrayList<>();
        step.forEach(p -> out.add(p.get(0).asInt() + ":" + p.get(1).asInt()));
        return out;
    }

    private static List<String> pairs(int[][] step) {
        List<String> out = new ArrayList<>();
        Arrays.stream(step).forEach(p -> out.add(p[0] + ":" + p[1]));
        return out;
    }
}
