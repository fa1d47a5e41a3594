package dev.tandem.decoding.mix;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.SpeculativeMixDecoding;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16's acceptance for caad, the method: each mixed row against a direct computation of its formula (separate
 * passes, cosine top-N over the store read plainly, the weighted mean, z + w·mean, in double) and each greedy token
 * its argmax; w = 0 as plain decoding bit for bit; the Engine; a store of another model and bad settings refused.
 */
class GroundedDecodingTest {
    static final List<String> PROMPTS = List.of("ROMEO:", "First Citizen:\nWe are accounted poor citizens", "\n");
    static final int MAX_TOKENS = 16;
    @TempDir
    static Path dir;
    static Path grounding;
    static LanguageModel large;
    static GroundingStore store;

    @BeforeAll
    static void load() throws IOException {
        large = ModelLoader.load(TestModels.model("bard-l"));
        grounding = Files.writeString(dir.resolve("shakespeare.jsonl"), GroundingStoreTest.GROUNDING);
        store = GroundingStore.open(large, grounding);
    }

    @AfterAll
    static void close() {
        large.close();
    }

    /** z + w·mean at one position, in double, from the state and logits of a separate pass and the store read plainly. */
    static double[] reference(float[] state, float[] z, int neighbours, double weight) {
        int n = store.size();
        double[] sim = new double[n];
        double qn = 0;
        for (float v : state) {
            qn += (double) v * v;
        }
        for (int i = 0; i < n; i++) {
            float[] k = store.state(i);
            double dot = 0, kn = 0;
            for (int j = 0; j < k.length; j++) {
                dot += (double) state[j] * k[j];
                kn += (double) k[j] * k[j];
            }
            sim[i] = dot / Math.sqrt(qn * kn);
        }
        Integer[] order = IntStream.range(0, n).boxed().sorted(Comparator.<Integer>comparingDouble(i -> -sim[i])
                .thenComparingInt(i -> i)).toArray(Integer[]::new);
        double[] mean = new double[z.length];
        double total = 0;
        for (int r = 0; r < Math.min(neighbours, n); r++) {
            double w = Math.max(0, sim[order[r]]);
            float[] l = store.logits(order[r]);
            for (int t = 0; t < mean.length; t++) {
                mean[t] += w * l[t];
            }
            total += w;
        }
        double[] out = new double[z.length];
        for (int t = 0; t < z.length; t++) {
            out[t] = z[t] + weight * (total > 0 ? mean[t] / total : 0);
        }
        return out;
    }

    @Test
    void caadEqualsItsFormulaOnSeparatePasses() {
        boolean steered = false;
        for (int neighbours : new int[] {1, 8, 1000}) {
            for (double weight : new double[] {1.0, 2.5}) {
                LogitMixDecoding method = LogitMixDecoding.grounded(large, store, neighbours, weight);
                for (String prompt : PROMPTS) {
                    List<float[]> traced = new ArrayList<>();
                    GenerationRequest request = GenerationRequest.of(prompt).withMaxTokens(MAX_TOKENS);
                    int[] generated = method.traced(traced::add).generate(request).generatedIds();
                    steered |= !Arrays.equals(generated, new Generator(large).generate(request).generatedIds());
                    assertEquals(generated.length, traced.size(), "one mixed row per token");
                    List<float[][]> passes = GroundingStoreTest.separatePasses(large, new Generator(large).promptIds(request), generated);
                    for (int pos = 0; pos < generated.length; pos++) {
                        double[] expected = reference(passes.get(pos)[0], passes.get(pos)[1], neighbours, weight);
                        float[] got = traced.get(pos);
                        int best = 0;
                        for (int t = 0; t < expected.length; t++) {
                            String where = "N " + neighbours + " w " + weight + " \"" + prompt + "\" position " + pos + " token " + t;
                            assertEquals(expected[t], got[t], 1e-5 * Math.max(1, Math.abs(expected[t])), where);
                            best = expected[t] > expected[best] ? t : best;
                        }
                        assertEquals(best, generated[pos], "N " + neighbours + " w " + weight + " \"" + prompt + "\" position " + pos
                                + ": the greedy token");
                    }
                }
            }
        }
        assertTrue(steered, "the grounding changes some greedy token");
    }

    @Test
    void zeroWeightIsPlainDecodingBitForBit() {
        LogitMixDecoding method = LogitMixDecoding.grounded(large, store, LogitMixDecoding.DEFAULT_GROUNDING_NEIGHBOURS, 0);
        MixChecks.assertPlain(large, PROMPTS, MAX_TOKENS, method, GenerationRequest::of);
    }

    @Test
    void aStoreServesOnlyTheModelItWasBuiltWith() throws IOException {
        try (LanguageModel small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(large.backend()))) {
            GroundingStore other = GroundingStore.open(small, grounding);
            assertEquals(dir.resolve("shakespeare.jsonl.bard-s.caad-store"), other.file(), "each model has its own store");
            assertFalse(GroundingStore.open(large, grounding).built(), "bard-s's store left bard-l's alone");
            TandemException e = assertThrows(TandemException.class, () -> LogitMixDecoding.grounded(large, other, 8, 1));
            assertTrue(e.getMessage().startsWith("the grounding store " + other.file() + " was built with the model ")
                    && e.getMessage().endsWith("; open it with the model that decodes."), e.getMessage());
        }
    }

    @Test
    void theEngineGivesCaadRequestsTheirLoneTokens() {
        List<DecodingStrategy> methods = List.of(LogitMixDecoding.grounded(large, store, 4, 1.5), new Generator(large),
                LogitMixDecoding.grounded(large, store, LogitMixDecoding.DEFAULT_GROUNDING_NEIGHBOURS, 0));
        MixChecks.assertTogetherAsAlone(large, methods, MixChecks.requests(PROMPTS, 9, 6, SamplingParams.greedy().withTemperature(0.8f)));
        assertEquals(0, large.kvCache().usedBlocks(), "caad kept KV blocks");
    }

    @Test
    void badSettingsAreOneSentence() {
        assertEquals("--neighbours must be at least 1, but was 0.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.grounded(large, store, 0, 1)).getMessage());
        assertEquals("--weight must be a finite number of magnitude at most 1e6, but was NaN.",
                assertThrows(IllegalArgumentException.class, () -> LogitMixDecoding.grounded(large, store, 8, Double.NaN)).getMessage());
        LogitMixDecoding caad = LogitMixDecoding.grounded(large, store, 8, 1);
        assertTrue(caad.hasStateRow());
        assertEquals("caad", caad.name());
        assertNotEquals(caad.views().size(), caad.mix().rows(), "the retrieved row follows the view's");
        assertEquals("caad does not verify a draft's chains: its retrieved row comes from the model's state at each position, which a "
                        + "chain's verification does not make; decode it without --draft.",
                assertThrows(IllegalArgumentException.class, () -> new SpeculativeMixDecoding(caad, large, 4)).getMessage());
    }
}
