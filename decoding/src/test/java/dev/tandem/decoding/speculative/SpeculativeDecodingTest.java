package dev.tandem.decoding.speculative;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
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
        plain = new ArrayList<>();
        Generator generator = new Generator(target);
        for (String p : prompts) {
            plain.add(generator.generate(request(p)));
        }
    }

    @AfterAll
    static void close() {
        medium.close();
        small.close();
        target.close();
    }

    static GenerationRequest request(String prompt) {
        return GenerationRequest.of(prompt).withMaxTokens(48);
    }

    /** Runs every prompt through {@code strategy} and checks ids, text and finish reason against plain greedy. */
    static void assertSameAsPlain(DecodingStrategy strategy, String label) {
        long passes = 0, drafted = 0, accepted = 0, verifications = 0;
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
            assertEquals(strategy.name(), s.method());
            assertEquals(r.generatedIds().length, s.generatedTokens());
            assertEquals(s.acceptedTokens(), sumWeighted(s.acceptedHistogram()));
            assertEquals(s.verifications(), s.acceptedHistogram().stream().mapToLong(Long::longValue).sum());
            passes += s.targetForwardPasses();
            drafted += s.draftedTokens();
            accepted += s.acceptedTokens();
            verifications += s.verifications();
            generated += s.generatedTokens();
        }
        System.out.printf(Locale.ROOT, "%s: acceptance %.3f, mean accepted per verification %.3f, target passes per token %.3f%n",
                label, (double) accepted / Math.max(1, drafted), (double) accepted / verifications, (double) passes / generated);
    }

    static long sumWeighted(List<Long> histogram) {
        long s = 0;
        for (int k = 0; k < histogram.size(); k++) {
            s += k * histogram.get(k);
        }
        return s;
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
        JsonNode golden = SpeculativeFixtures.golden();
        for (LanguageModel d : List.of(small, medium)) {
            String name = d.directory().getFileName().toString();
            for (DecodingStrategy s : List.of(new SpeculativeDecoding(target, d, 1), new SpeculativeDecoding(target, d, 4),
                    SpeculativeDecoding.adaptive(target, d), new PromptLookupDecoding(target))) {
                long passes = 0, drafted = 0, accepted = 0, verifications = 0, generated = 0;
                for (JsonNode c : golden.get("cases")) {
                    int[] expected = new int[c.get("greedy_ids").size()];
                    for (int i = 0; i < expected.length; i++) {
                        expected[i] = c.get("greedy_ids").get(i).asInt();
                    }
                    GenerationResult r = s.generate(GenerationRequest.of(c.get("prompt").asText())
                            .withMaxTokens(expected.length).withEosTokenIds(List.of()));
                    assertArrayEquals(expected, r.generatedIds(), name + " " + s.name() + " " + c.get("prompt").asText());
                    DecodeStats st = r.decodeStats();
                    passes += st.targetForwardPasses();
                    drafted += st.draftedTokens();
                    accepted += st.acceptedTokens();
                    verifications += st.verifications();
                    generated += st.generatedTokens();
                }
                String label = s instanceof SpeculativeDecoding sd
                        ? name + "->bard-l " + (sd.threshold() > 0 ? "auto" : "gamma=" + sd.draftLength()) : s.name();
                System.out.printf(Locale.ROOT, "golden %s: acceptance %.3f, mean accepted per verification %.3f, "
                                + "tokens per verification %.3f, target passes per token %.3f%n", label,
                        (double) accepted / Math.max(1, drafted), (double) accepted / verifications,
                        (double) (accepted + verifications) / verifications, (double) passes / generated);
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
            GenerationRequest req = request(p).withStop(List.of("\n\n", "my"));
            GenerationResult expected = new Generator(target).generate(req);
            for (DecodingStrategy s : List.of(new SpeculativeDecoding(target, small, 4), new PromptLookupDecoding(target))) {
                GenerationResult r = s.generate(req);
                assertArrayEquals(expected.generatedIds(), r.generatedIds(), s.name() + " " + p);
                assertEquals(expected.text(), r.text());
                assertEquals(expected.finishReason(), r.finishReason());
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
