package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
        plain = new ArrayList<>();
        Generator generator = new Generator(target);
        for (String p : prompts) {
            plain.add(generator.generate(request(p)));
        }
    }

    @AfterAll
    static void close() {
        twin.close();
        medium.close();
        small.close();
        target.close();
    }

    static GenerationRequest request(String prompt) {
        return GenerationRequest.of(prompt).withMaxTokens(48);
    }

    static void assertSameAsPlain(DecodingStrategy strategy, String label) {
        long passes = 0, drafted = 0, accepted = 0, verifications = 0, draftPasses = 0;
        int generated = 0;
        for (int i = 0; i < prompts.size(); i++) {
            GenerationResult expected = plain.get(i);
            StringBuilder streamed = new StringBuilder();
            GenerationResult r = strategy.generate(request(prompts.get(i)), e -> streamed.append(e.textDelta()));
            String where = label + " on " + prompts.get(i);
            assertArrayEquals(expected.generatedIds(), r.generatedIds(), where);
            assertEquals(expected.text(), r.text(), where);
            assertEquals(expected.text(), streamed.toString(), where);
            assertEquals(expected.finishReason(), r.finishReason(), where);
            assertEquals(expected.usage(), r.usage(), where);
            DecodeStats s = r.decodeStats();
            assertEquals("pearl", s.method());
            assertEquals(s.acceptedTokens(), SpeculativeDecodingTest.sumWeighted(s.acceptedHistogram()));
            passes += s.targetForwardPasses();
            drafted += s.draftedTokens();
            accepted += s.acceptedTokens();
            verifications += s.verifications();
            generated += s.generatedTokens();
            draftPasses += s.draftForwardPasses();
        }
        assertTrue(accepted > 0, label + ": no draft token was ever accepted");
        assertTrue(passes < generated, label + ": " + passes + " target passes for " + generated + " tokens");
        System.out.printf(Locale.ROOT, "%s: acceptance %.3f, mean accepted per verification %.3f, target passes per "
                        + "token %.3f, draft passes per token %.3f%n", label, (double) accepted / Math.max(1, drafted),
                (double) accepted / verifications, (double) passes / generated, (double) draftPasses / generated);
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
                List<TokenEvent> events = new ArrayList<>();
                GenerationResult r = s.generate(req, events::add);
                assertArrayEquals(expected.generatedIds(), r.generatedIds(), s.name() + " " + p);
                assertEquals(expected.logprobs(), r.logprobs(), s.name() + " " + p);
                assertEquals(expected.logprobs(), events, s.name() + " " + p);
            }
        }
    }

    @Test
    void stopStringsEndTheOutputAsInPlainDecoding() {
        for (String p : List.of("ROMEO:", "First Citizen:", "HAMLET:\nTo be, or not to be")) {
            GenerationRequest req = request(p).withStop(List.of("\n\n", "my"));
            GenerationResult expected = new Generator(target).generate(req);
            GenerationResult r = new PearlDecoding(target, medium, 4).generate(req);
            assertArrayEquals(expected.generatedIds(), r.generatedIds(), p);
            assertEquals(expected.text(), r.text());
            assertEquals(expected.finishReason(), r.finishReason());
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
