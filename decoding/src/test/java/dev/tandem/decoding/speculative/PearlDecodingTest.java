package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.StepsTogether;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.SpeculativeFixtures.Totals;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;
import java.util.Locale;

import static dev.tandem.decoding.speculative.SpeculativeFixtures.request;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PEARL with the draft on its own thread group: greedy output equals plain greedy decoding of the target on
 * the golden prompts and {@link SpeculativeDecodingTest#MORE_PROMPTS}, with bard-s and bard-m drafting for
 * bard-l; post-verify really chains rounds. Shared edge cases (EOS, max tokens, context end, seeded sampling)
 * run in {@link SpeculativeEdgeCasesTest}, the sampled joint distribution in {@link SpeculativeSamplingEndToEndTest}.
 */
class PearlDecodingTest {
    static LanguageModel target;
    static LanguageModel small;
    static LanguageModel medium;
    static LanguageModel twin;
    static List<String> prompts;
    static List<GenerationResult> plain;

    @BeforeAll
    static void load() throws IOException {
        target = ModelLoader.load(TestModels.model("bard-l"));
        // The drafts get their own one-thread backends, so that they really run beside the target.
        ModelLoader.Options own = ModelLoader.Options.defaults().withThreads(1);
        small = ModelLoader.load(TestModels.model("bard-s"), own);
        medium = ModelLoader.load(TestModels.model("bard-m"), own);
        twin = ModelLoader.load(TestModels.model("bard-l"), own);
        prompts = SpeculativeFixtures.goldenPromptsAnd(SpeculativeDecodingTest.MORE_PROMPTS);
        plain = SpeculativeFixtures.plainGreedy(target, prompts, SpeculativeFixtures::request);
    }

    @AfterAll
    static void close() {
        twin.close();
        medium.close();
        small.close();
        target.close();
    }

    /**
     * Every prompt as plain greedy (ids, text, stream, finish reason, usage, stats bookkeeping); across them a
     * draft token was accepted and fewer target passes than tokens were made. Prints the summed figures.
     */
    static void assertSameAsPlain(DecodingStrategy strategy, String label) {
        assertEquals("pearl", strategy.name());
        Totals t = SpeculativeFixtures.assertSameAsPlain(strategy, prompts, plain, SpeculativeFixtures::request, label,
                SpeculativeFixtures.NO_EXTRA_CHECKS);
        assertTrue(t.accepted() > 0, label + ": no draft token was ever accepted");
        assertTrue(t.targetPasses() < t.generated(), label + ": " + t.targetPasses() + " target passes for "
                + t.generated() + " tokens");
        System.out.printf(Locale.ROOT, "%s, draft passes per token %.3f%n", t.summary(label), t.draftPassesPerToken());
    }

    @Test
    void smallDraftOfLargeTargetIsIdenticalToPlainGreedy() {
        assertSameAsPlain(new PearlDecoding(target, small, 1), "pearl bard-s->bard-l gamma=1");
        assertSameAsPlain(new PearlDecoding(target, small, 4), "pearl bard-s->bard-l gamma=4");
        assertSameAsPlain(PearlDecoding.adaptive(target, small), "pearl bard-s->bard-l auto");
    }

    @Test
    void mediumDraftOfLargeTargetIsIdenticalToPlainGreedy() {
        assertSameAsPlain(new PearlDecoding(target, medium, 1), "pearl bard-m->bard-l gamma=1");
        assertSameAsPlain(new PearlDecoding(target, medium, 4), "pearl bard-m->bard-l gamma=4");
        assertSameAsPlain(PearlDecoding.adaptive(target, medium), "pearl bard-m->bard-l auto");
    }

    /**
     * With a draft that is the target itself every token is accepted. Round 1 pre-verifies d1 and checks the
     * first token drafted meanwhile (2 tokens); each later round checks the 3 pending tokens plus the first
     * of the next 4 drafted meanwhile (4 tokens, no bonus), 9 times up to 38; the last round has no room
     * to draft ahead, so it verifies one pending token and adds the target's bonus token: 11 verifications,
     * 39 accepted draft tokens and exactly one token of the target's own.
     */
    @Test
    void postVerifyChainsRoundsWithoutBonusTokens() {
        GenerationResult r = new PearlDecoding(target, twin, 4).generate(GenerationRequest.of("ROMEO:").withMaxTokens(40)
                .withEosTokenIds(List.of()));
        DecodeStats s = r.decodeStats();
        assertEquals(1.0, s.acceptanceRate(), s.summary());
        assertEquals(40, s.generatedTokens());
        assertEquals(39, s.acceptedTokens(), s.summary());
        assertEquals(11, s.verifications(), s.summary());
        assertEquals(12, s.targetForwardPasses(), s.summary()); // and the prefill
    }

    @Test
    void greedyWithRepetitionPenaltyAndLogprobsIsIdenticalToPlain() {
        SamplingParams penalty = SamplingParams.greedy().withRepetitionPenalty(1.3f);
        for (String p : List.of("ROMEO:", "First Citizen:\nBefore we proceed", "Natasha ran into the room")) {
            GenerationRequest req = request(p).withSampling(penalty).withLogprobs(2);
            GenerationResult expected = new Generator(target).generate(req);
            for (DecodingStrategy s : List.of(new PearlDecoding(target, small, 3), PearlDecoding.adaptive(target, medium))) {
                SpeculativeFixtures.assertSameIdsAndLogprobsAsPlain(s, req, expected, s.name() + " " + p);
            }
        }
    }

    @Test
    void stopStringsEndTheOutputAsInPlainDecoding() {
        for (String p : List.of("ROMEO:", "First Citizen:", "HAMLET:\nTo be, or not to be")) {
            GenerationRequest req = request(p).withStop(SpeculativeFixtures.STOPS);
            SpeculativeFixtures.assertSameOutputAsPlain(new Generator(target).generate(req),
                    new PearlDecoding(target, medium, 4).generate(req), p);
        }
    }

    /**
     * Three requests stepped together with 7 prompt rows a step, so that every prompt is prefilled in chunks:
     * a greedy and a sampled one drafted by bard-s, a sampled one with logprobs drafted by bard-m (fixed γ,
     * so sampled output is reproducible). Each gives exactly what it gives alone: tokens, text, logprobs and
     * the same verifications.
     */
    @Test
    void requestsSteppedTogetherGiveWhatEachGivesAlone() {
        PearlDecoding bySmall = new PearlDecoding(target, small, 3);
        PearlDecoding byMedium = new PearlDecoding(target, medium, 2);
        GenerationRequest greedy = request("First Citizen:\nBefore we proceed any further, hear me speak.");
        GenerationRequest sampled = request("HAMLET:\nTo be, or not to be, that is the question:")
                .withSampling(SamplingParams.greedy().withTemperature(0.8f).withSeed(7));
        GenerationRequest withLogprobs = request("Natasha ran into the room and said that")
                .withSampling(SamplingParams.greedy().withTemperature(1.0f).withTopP(0.9f).withSeed(3)).withLogprobs(2);
        List<GenerationResult> alone = List.of(bySmall.generate(greedy), bySmall.generate(sampled),
                byMedium.generate(withLogprobs));
        List<GenerationResult> together = StepsTogether.results(7, bySmall.task(greedy), bySmall.task(sampled),
                byMedium.task(withLogprobs));
        for (int i = 0; i < alone.size(); i++) {
            GenerationResult a = alone.get(i), t = together.get(i);
            String where = "request " + i;
            assertTrue(a.promptIds().length > 7, where + ": the prompt is not chunked");
            SpeculativeFixtures.assertSameOutputAsPlain(a, t, where);
            assertEquals(a.logprobs(), t.logprobs(), where);
            DecodeStats sa = a.decodeStats(), st = t.decodeStats();
            assertEquals(sa.verifications(), st.verifications(), where);
            assertEquals(sa.draftedTokens(), st.draftedTokens(), where);
            assertEquals(sa.acceptedHistogram(), st.acceptedHistogram(), where);
        }
    }

    @Test
    void adaptiveLengthFollowsTheMeasuredCostRatio() {
        PearlDecoding.CostRatio cost = new PearlDecoding.CostRatio(4);
        assertEquals(4, cost.gamma());
        cost.target(6_000_000);
        assertEquals(4, cost.gamma(), "no draft timing yet");
        cost.draft(6_000_000, 3); // 2 ms per draft pass: ratio 3
        assertEquals(3, cost.gamma());
        cost.draft(100_000, 1); // a very fast pass moves the average down to 1.525 ms: ratio 3.9
        assertEquals(4, cost.gamma());
        for (int i = 0; i < 50; i++) {
            cost.draft(10_000, 1);
        }
        assertEquals(PearlDecoding.MAX_ADAPTIVE_LENGTH, cost.gamma());
        for (int i = 0; i < 50; i++) {
            cost.target(1_000);
        }
        assertEquals(1, cost.gamma());
    }

    @Test
    void badLengthsAreRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new PearlDecoding(target, small, 0));
        assertEquals("the draft length must be at least 1, but was 0.", e.getMessage());
    }
}
