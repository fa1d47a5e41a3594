package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.SpeculativeFixtures.Totals;
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

import static dev.tandem.decoding.speculative.SpeculativeFixtures.request;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Greedy speculative and prompt-lookup decoding equal plain greedy decoding of the target, token for token. */
class SpeculativeDecodingTest {
    static final List<String> MORE_PROMPTS = List.of(
            "JULIET:", "HAMLET:\nTo be, or not to be", "First Citizen:", "MENENIUS:\nWhy, masters",
            "KING RICHARD III:\nNow is the winter", "Pierre", "Prince Andrew said", "Natasha ran into the room",
            "LADY MACBETH:\n", "BRUTUS:\nRomans, countrymen", "QUEEN MARGARET:", "Second Servingman:\n",
            "The army moved", "\n\n", "What is it, my lord?", "O Romeo, Romeo, wherefore art thou",
            "DUKE VINCENTIO:\nHe who", "All:\nWe know't, we know't.\n\nFirst Citizen:\n", "Anna Pavlovna",
            "ROMEO:\nI love thee. JULIET:\nI love thee. ROMEO:\nI love thee. JULIET:\nI");

    static LanguageModel target;
    static LanguageModel small;
    static LanguageModel medium;
    static List<String> prompts;
    static List<GenerationResult> plain;

    @BeforeAll
    static void load() throws IOException {
        target = ModelLoader.load(TestModels.model("bard-l"));
        ModelLoader.Options shared = ModelLoader.Options.defaults().withBackend(target.backend());
        small = ModelLoader.load(TestModels.model("bard-s"), shared);
        medium = ModelLoader.load(TestModels.model("bard-m"), shared);
        prompts = SpeculativeFixtures.goldenPromptsAnd(MORE_PROMPTS);
        plain = SpeculativeFixtures.plainGreedy(target, prompts, SpeculativeFixtures::request);
    }

    @AfterAll
    static void close() {
        medium.close();
        small.close();
        target.close();
    }

    /**
     * Runs every prompt through {@code strategy}, checks ids, text, stream, finish reason, usage and the stats'
     * bookkeeping against plain greedy, and prints the summed figures.
     */
    static void assertSameAsPlain(DecodingStrategy strategy, String label) {
        Totals totals = SpeculativeFixtures.assertSameAsPlain(strategy, prompts, plain, SpeculativeFixtures::request, label,
                SpeculativeFixtures.NO_EXTRA_CHECKS);
        System.out.println(totals.summary(label));
    }

    @Test
    void smallDraftOfLargeTargetIsIdenticalToPlainGreedy() {
        assertSameAsPlain(new SpeculativeDecoding(target, small, 1), "bard-s->bard-l gamma=1");
        assertSameAsPlain(new SpeculativeDecoding(target, small, 4), "bard-s->bard-l gamma=4");
        assertSameAsPlain(SpeculativeDecoding.adaptive(target, small), "bard-s->bard-l auto");
    }

    @Test
    void mediumDraftOfLargeTargetIsIdenticalToPlainGreedy() {
        assertSameAsPlain(new SpeculativeDecoding(target, medium, 1), "bard-m->bard-l gamma=1");
        assertSameAsPlain(new SpeculativeDecoding(target, medium, 4), "bard-m->bard-l gamma=4");
        assertSameAsPlain(SpeculativeDecoding.adaptive(target, medium), "bard-m->bard-l auto");
    }

    @Test
    void promptLookupIsIdenticalToPlainGreedy() {
        assertSameAsPlain(new PromptLookupDecoding(target), "ngram n<=3 gamma=8");
        assertSameAsPlain(new PromptLookupDecoding(target, 1, 2), "ngram n<=1 gamma=2");
    }

    /** The golden greedy paths (EOS off, each its own length), with the figures the issue asks for printed. */
    @Test
    void goldenPathsAreReproducedByEveryDraft() throws IOException {
        for (LanguageModel d : List.of(small, medium)) {
            String name = d.directory().getFileName().toString();
            for (DecodingStrategy s : List.of(new SpeculativeDecoding(target, d, 1), new SpeculativeDecoding(target, d, 4),
                    SpeculativeDecoding.adaptive(target, d), new PromptLookupDecoding(target))) {
                Totals t = SpeculativeFixtures.assertReproducesGoldenPaths(s, name + " " + s.name());
                String label = s instanceof SpeculativeDecoding sd
                        ? name + "->bard-l " + (sd.threshold() > 0 ? "auto" : "gamma=" + sd.draftLength()) : s.name();
                System.out.printf(Locale.ROOT, "golden %s: acceptance %.3f, mean accepted per verification %.3f, "
                                + "tokens per verification %.3f, target passes per token %.3f%n", label, t.acceptance(),
                        t.meanAcceptedPerVerification(), t.tokensPerVerification(), t.targetPassesPerToken());
            }
        }
    }

    @Test
    void greedyWithRepetitionPenaltyIsIdenticalToPlain() {
        SamplingParams penalty = SamplingParams.greedy().withRepetitionPenalty(1.3f);
        for (String p : List.of("ROMEO:", "First Citizen:\nBefore we proceed", "Natasha ran into the room")) {
            GenerationRequest req = request(p).withSampling(penalty);
            GenerationResult expected = new Generator(target).generate(req);
            for (DecodingStrategy s : List.of(new SpeculativeDecoding(target, small, 4), SpeculativeDecoding.adaptive(target, medium),
                    new PromptLookupDecoding(target))) {
                assertArrayEquals(expected.generatedIds(), s.generate(req).generatedIds(), s.name() + " " + p);
            }
        }
    }

    @Test
    void tokenEventsAndLogprobsEqualPlainDecoding() {
        GenerationRequest req = request("HAMLET:\nTo be, or not to be").withLogprobs(3);
        GenerationResult expected = new Generator(target).generate(req);
        for (DecodingStrategy s : List.of(new SpeculativeDecoding(target, medium, 4), new PromptLookupDecoding(target))) {
            List<dev.tandem.decoding.TokenEvent> events = new ArrayList<>();
            GenerationResult r = s.generate(req, events::add);
            assertEquals(expected.logprobs(), r.logprobs(), s.name());
            assertEquals(expected.logprobs(), events, s.name());
        }
    }

    @Test
    void stopStringsEndTheOutputAsInPlainDecoding() {
        for (String p : List.of("ROMEO:", "First Citizen:", "HAMLET:\nTo be, or not to be")) {
            GenerationRequest req = request(p).withStop(SpeculativeFixtures.STOPS);
            GenerationResult expected = new Generator(target).generate(req);
            for (DecodingStrategy s : List.of(new SpeculativeDecoding(target, small, 4), new PromptLookupDecoding(target))) {
                SpeculativeFixtures.assertSameOutputAsPlain(expected, s.generate(req), s.name() + " " + p);
            }
        }
    }

    @Test
    void draftingSavesTargetPasses() {
        GenerationResult r = new SpeculativeDecoding(target, medium, 4).generate(request("ROMEO:"));
        DecodeStats s = r.decodeStats();
        assertTrue(s.targetForwardPasses() < r.generatedIds().length, s.summary());
        assertTrue(s.draftForwardPasses() > 0);
        assertTrue(s.acceptanceRate() > 0 && s.acceptanceRate() <= 1, s.summary());
        assertEquals(1.0, new Generator(target).generate(request("ROMEO:")).decodeStats().targetPassesPerToken());
    }
}
