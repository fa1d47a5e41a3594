package dev.tandem.decoding.speculative;

import dev.tandem.decoding.ChiSquareFit;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.mix.LogitMixDecoding;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 16, point 9: the mixing methods inside speculative verification. Greedy output equals the method's own
 * (tokens, text and log-probabilities) for every γ; sampled contrastive and CAD with a draft follow the method's exact
 * joint distribution of the first two tokens (the chi-square harness of {@link SpeculativeSamplingEndToEndTest}).
 */
class SpeculativeMixDecodingTest {
    static final String CONTEXT = "KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by this sun of York;\n";
    static final List<String> PROMPTS = List.of("ROMEO:", "First Citizen:\nWe are accounted poor citizens", "KING HENRY VI:\nWhat");
    static LanguageModel large;
    static LanguageModel medium;
    static LanguageModel small;
    static List<LogitMixDecoding> methods;

    @BeforeAll
    static void load() {
        large = ModelLoader.load(TestModels.model("bard-l"));
        medium = ModelLoader.load(TestModels.model("bard-m"), ModelLoader.Options.defaults().withBackend(large.backend()));
        small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(large.backend()));
        methods = List.of(LogitMixDecoding.contrastive(large, small, 0.1, 0.5), LogitMixDecoding.contextAware(large, CONTEXT, 0.5),
                LogitMixDecoding.proxyTuning(large, medium, small, 1), LogitMixDecoding.guidance(large, "JULIET:", 1.5));
    }

    @AfterAll
    static void close() {
        small.close();
        medium.close();
        large.close();
    }

    @Test
    void greedyEqualsTheMethodWithoutSpeculation() {
        for (LogitMixDecoding method : methods) {
            long accepted = 0;
            for (String prompt : PROMPTS) {
                GenerationRequest r = GenerationRequest.of(prompt).withMaxTokens(24).withLogprobs(2);
                GenerationResult alone = method.generate(r);
                for (int gamma : new int[] {1, 3, 5}) {
                    GenerationResult speculative = new SpeculativeMixDecoding(method, medium, gamma).generate(r);
                    String what = method.name() + " γ=" + gamma + " \"" + prompt + "\"";
                    assertArrayEquals(alone.generatedIds(), speculative.generatedIds(), what);
                    assertEquals(alone.text(), speculative.text(), what);
                    assertEquals(alone.logprobs(), speculative.logprobs(), what + ": log-probabilities of the mixed rows");
                    assertEquals(method.name(), speculative.decodeStats().method());
                    assertTrue(speculative.decodeStats().verifications() > 0, what);
                    accepted += speculative.decodeStats().acceptedTokens();
                }
            }
            assertTrue(accepted > 0, method.name() + ": the draft never had a token accepted, so nothing was verified");
        }
        for (LanguageModel m : List.of(large, medium, small)) {
            assertEquals(0, m.kvCache().usedBlocks(), m.directory() + " kept KV blocks");
        }
    }

    @Test
    void theEngineGivesEachRequestItsLoneTokens() {
        List<DecodingStrategy> strategies = new ArrayList<>();
        for (LogitMixDecoding m : methods) {
            strategies.add(new SpeculativeMixDecoding(m, small, 3));
        }
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            GenerationRequest r = GenerationRequest.of(PROMPTS.get(i % PROMPTS.size())).withMaxTokens(10 + i).withStreamId(i);
            requests.add(i % 2 == 0 ? r : r.withSampling(SamplingParams.greedy().withTemperature(0.9f).withSeed(40 + i)));
        }
        List<GenerationResult> alone = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            alone.add(strategies.get(i % strategies.size()).generate(requests.get(i)));
        }
        try (Engine engine = new Engine(large, Engine.Options.defaults().withMaxPrefillTokensPerStep(8))) {
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                handles.add(engine.submit(requests.get(i), strategies.get(i % strategies.size()), null));
            }
            for (int i = 0; i < requests.size(); i++) {
                assertArrayEquals(alone.get(i).generatedIds(), handles.get(i).result().generatedIds(), "request " + i);
            }
        }
        for (LanguageModel m : List.of(large, medium, small)) {
            assertEquals(0, m.kvCache().usedBlocks(), m.directory() + " kept KV blocks");
        }
    }

    /** The method's mixed row after {@code generated}, from a fresh pass of each view. */
    private static float[] mixedRow(LogitMixDecoding method, GenerationRequest request, int[] generated) {
        List<LogitMixDecoding.View> views = method.views();
        float[][] rows = new float[views.size()][];
        for (int i = 0; i < views.size(); i++) {
            int[] prompt = LogitMixDecoding.checkedPrompt(views.get(i), request);
            int[] seq = Arrays.copyOf(prompt, prompt.length + generated.length);
            System.arraycopy(generated, 0, seq, prompt.length, generated.length);
            LanguageModel m = views.get(i).model();
            try (KvSequence kv = m.newSequence()) {
                rows[i] = m.forward(Batch.of(Batch.Entry.continuation(kv, seq))).lastLogits(0);
            }
        }
        return method.mix().apply(rows);
    }

    @Test
    void sampledContrastiveAndCadWithADraftFollowTheMethodsDistribution() {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.0f).withTopK(4).withSeed(SpeculativeSamplingEndToEndTest.SEED);
        String prompt = "KING HENRY VI:\nWhat";
        int vocab = large.config().vocabSize();
        for (LogitMixDecoding method : methods.subList(0, 2)) {
            GenerationRequest base = GenerationRequest.of(prompt).withMaxTokens(2).withSampling(sampling).withEosTokenIds(List.of());
            int[] context = LogitMixDecoding.checkedPrompt(method.views().getFirst(), base);
            // The exact joint distribution of (t1, t2) under the method sampled without a draft.
            double[] joint = new double[vocab * vocab];
            double[] p1 = Sampler.distribution(mixedRow(method, base, new int[0]), sampling, context, context.length);
            for (int a = 0; a < vocab; a++) {
                if (p1[a] > 0) {
                    int[] next = Arrays.copyOf(context, context.length + 1);
                    next[context.length] = a;
                    double[] p2 = Sampler.distribution(mixedRow(method, base, new int[] {a}), sampling, next, next.length);
                    for (int b = 0; b < vocab; b++) {
                        joint[a * vocab + b] = p1[a] * p2[b];
                    }
                }
            }
            // γ = 1: the paths accept-then-bonus and reject-then-residual-then-a-round both occur.
            SpeculativeMixDecoding speculative = new SpeculativeMixDecoding(method, small, 1);
            long[] observed = new long[joint.length];
            long accepted = 0, verifications = 0;
            for (int run = 0; run < SpeculativeSamplingEndToEndTest.RUNS; run++) {
                GenerationResult r = speculative.generate(base.withStreamId(run));
                observed[r.generatedIds()[0] * vocab + r.generatedIds()[1]]++;
                accepted += r.decodeStats().acceptedTokens();
                verifications += r.decodeStats().verifications();
            }
            double pValue = ChiSquareFit.pValue(joint, observed);
            System.out.printf("%s with a draft, sampled (seed %d, %d runs): chi-square p-value %.4g, %d of %d drafts accepted%n",
                    method.name(), SpeculativeSamplingEndToEndTest.SEED, SpeculativeSamplingEndToEndTest.RUNS, pValue, accepted, verifications);
            assertTrue(pValue > SpeculativeSamplingEndToEndTest.ALPHA, method.name() + ": p-value " + pValue);
            assertTrue(accepted > 0 && accepted < verifications, method.name() + ": both verdicts occur (" + accepted + " of "
                    + verifications + " accepted)");
        }
    }

    @Test
    void aViewThatFillsItsContextEndsTheGenerationAsWithoutADraft() {
        // Room for both sequences: the default cache holds one context.
        try (LanguageModel roomy = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withKvTokens(2304));
             LanguageModel draft = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(roomy.backend()))) {
            String negative = dev.tandem.decoding.mix.LogitMixDecodingTest.negativePromptNearTheContext(roomy);
            LogitMixDecoding cfg = LogitMixDecoding.guidance(roomy, negative, 1.5);
            GenerationRequest r = GenerationRequest.of("ROMEO:").withMaxTokens(100).withEosTokenIds(List.of());
            GenerationResult alone = cfg.generate(r);
            GenerationResult drafted = new SpeculativeMixDecoding(cfg, draft, 4).generate(r);
            assertEquals(dev.tandem.decoding.FinishReason.CONTEXT_FULL, drafted.finishReason());
            assertArrayEquals(alone.generatedIds(), drafted.generatedIds());
            assertEquals(0, roomy.kvCache().usedBlocks());
            assertEquals(0, draft.kvCache().usedBlocks());
        }
    }

    @Test
    void aDraftWithAnotherVocabularyIsRefused() {
        try (LanguageModel other = ModelLoader.load(TestModels.model("bard-dlm"), ModelLoader.Options.defaults().withBackend(large.backend()))) {
            assertThrows(dev.tandem.runtime.TandemException.class, () -> new SpeculativeMixDecoding(methods.getFirst(), other, 2));
        }
        assertThrows(IllegalArgumentException.class, () -> new SpeculativeMixDecoding(methods.getFirst(), small, 0));
        IllegalArgumentException lol = assertThrows(IllegalArgumentException.class, () -> new SpeculativeMixDecoding(
                LogitMixDecoding.lowerLayerContrast(large, small, 0, 0.1, 0.5, 1), small, 2));
        assertTrue(lol.getMessage().startsWith("lol mixes lower layers' logits"), lol.getMessage());
    }
}
