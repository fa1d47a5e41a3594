package dev.tandem.decoding.speculative;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** EOS, max tokens and the context limit inside drafts; vocabulary mismatch; seeded sampling. */
class SpeculativeEdgeCasesTest {
    static LanguageModel target;
    static LanguageModel twin; // a second copy of the target: as a draft, every greedy draft token is accepted
    static LanguageModel small;

    @BeforeAll
    static void load() {
        target = ModelLoader.load(TestModels.model("bard-l"));
        ModelLoader.Options shared = ModelLoader.Options.defaults().withBackend(target.backend());
        twin = ModelLoader.load(TestModels.model("bard-l"), shared);
        small = ModelLoader.load(TestModels.model("bard-s"), shared);
    }

    @AfterAll
    static void close() {
        small.close();
        twin.close();
        target.close();
    }

    private static List<DecodingStrategy> strategies() {
        return List.of(new SpeculativeDecoding(target, twin, 4), new SpeculativeDecoding(target, small, 4),
                SpeculativeDecoding.adaptive(target, small), new PromptLookupDecoding(target, 3, 4),
                new PearlDecoding(target, twin, 4), new PearlDecoding(target, small, 2));
    }

    @Test
    void aTwinDraftIsAlwaysAccepted() {
        GenerationResult r = new SpeculativeDecoding(target, twin, 4).generate(GenerationRequest.of("ROMEO:").withMaxTokens(40));
        DecodeStats s = r.decodeStats();
        assertEquals(1.0, s.acceptanceRate(), s.summary());
        assertEquals(8, s.verifications(), s.summary()); // 8 rounds of 4 drafted + 1 bonus token
        assertEquals(9, s.targetForwardPasses()); // and the prefill
    }

    @Test
    void eosInsideAnAcceptedDraftEndsTheOutputThere() {
        GenerationRequest base = GenerationRequest.of("ROMEO:").withMaxTokens(40).withEosTokenIds(List.of());
        int[] plain = new Generator(target).generate(base).generatedIds();
        // With the twin draft and γ = 4, tokens 0-3, 5-8, ... are accepted draft tokens and 4, 9, ... bonus tokens.
        int index = SpeculativeFixtures.tokenInsideAnAcceptedDraft(plain, 5);
        assertTrue(index > 0, "no suitable token in " + Arrays.toString(plain));
        GenerationRequest request = SpeculativeFixtures.assertEosEndsTheOutputThere(target, base, plain, index, strategies(),
                DecodingStrategy::name);
        DecodeStats twinStats = new SpeculativeDecoding(target, twin, 4).generate(request).decodeStats();
        assertEquals(1.0, twinStats.acceptanceRate()); // the EOS came from an accepted draft, not a correction
    }

    @Test
    void maxTokensReachedMidDraftTruncatesExactlyThere() {
        Generator generator = new Generator(target);
        for (int max = 1; max <= 11; max++) {
            GenerationRequest request = GenerationRequest.of("First Citizen:").withMaxTokens(max).withEosTokenIds(List.of());
            GenerationResult expected = generator.generate(request);
            for (DecodingStrategy s : strategies()) {
                SpeculativeFixtures.assertStopsAtMaxTokensLikePlain(s, request, expected, s.name() + " max " + max);
            }
        }
    }

    @Test
    void draftsNeverRunPastTheRemainingContext() {
        for (int left : new int[] {0, 1, 2, 3, 5, 9}) {
            GenerationRequest request = SpeculativeFixtures.leavingPositions(target, left);
            GenerationResult expected = SpeculativeFixtures.plainUpToTheContextEnd(target, request);
            assertEquals(Math.max(1, left), expected.generatedIds().length);
            for (DecodingStrategy s : strategies()) {
                SpeculativeFixtures.assertEndsAtTheContextLikePlain(s, request, expected,
                        s.name() + " with " + left + " positions left");
            }
        }
    }

    @Test
    void aDraftWithAnotherVocabularyIsRefused(@TempDir Path tmp) throws IOException {
        Path dir = TestModels.copyOf("bard-s", tmp.resolve("bard-s-swapped"));
        ObjectMapper json = new ObjectMapper();
        ObjectNode tokenizer = (ObjectNode) json.readTree(dir.resolve("tokenizer.json").toFile());
        ObjectNode vocab = (ObjectNode) tokenizer.get("model").get("vocab");
        String a = target.tokenizer().tokenContent(300), b = target.tokenizer().tokenContent(301);
        vocab.put(a, 301);
        vocab.put(b, 300);
        json.writeValue(dir.resolve("tokenizer.json").toFile(), tokenizer);
        try (LanguageModel swapped = ModelLoader.load(dir)) {
            TandemException e = assertThrows(TandemException.class, () -> new SpeculativeDecoding(target, swapped, 4));
            assertTrue(e.getMessage().contains("token 300"), e.getMessage());
            assertTrue(e.getMessage().endsWith("a draft must share the target's tokenizer."), e.getMessage());
        }
    }

    @Test
    void badLengthsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new SpeculativeDecoding(target, small, 0));
        assertThrows(IllegalArgumentException.class, () -> new SpeculativeDecoding(target, small, 4, 1.5));
        assertThrows(IllegalArgumentException.class, () -> new PromptLookupDecoding(target, 0, 4));
    }

    @Test
    void promptLookupProposesTheContinuationOfTheLatestLongestMatch() {
        int[] ctx = {1, 2, 3, 9, 1, 2, 3, 7, 8, 5, 2, 3, 0, 0};
        // suffix [5, 2, 3]: no earlier match; [2, 3]: latest earlier occurrence at 5 → 7, 8, 5.
        assertArrayEquals(new int[] {7, 8, 5}, DrafterPromptLookup.lookup(ctx, 12, 3, 3));
        assertArrayEquals(new int[] {7, 8, 5, 2, 3}, DrafterPromptLookup.lookup(ctx, 12, 3, 10));
        assertArrayEquals(new int[] {2, 3}, DrafterPromptLookup.lookup(new int[] {4, 1, 2, 3, 1}, 5, 3, 2));
        assertArrayEquals(new int[0], DrafterPromptLookup.lookup(new int[] {4, 1, 2, 3}, 4, 3, 2));
        assertArrayEquals(new int[0], DrafterPromptLookup.lookup(new int[] {4}, 1, 3, 2));
    }

    @Test
    void samplingIsReproducibleFromTheSeed() {
        SpeculativeFixtures.assertSamplingIsReproducibleFromTheSeed(target, strategies(), DecodingStrategy::name);
    }

    /** Every sampled token must lie in the target's top-k at its own position (so p rows line up with drafts). */
    @Test
    void sampledTokensStayInTheTargetsSupport() {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.5f).withTopK(3).withSeed(21);
        for (DecodingStrategy s : strategies()) {
            GenerationResult r = s.generate(GenerationRequest.of("KING HENRY VI:\nWhat").withMaxTokens(40)
                    .withSampling(sampling).withEosTokenIds(List.of()));
            int[] out = r.generatedIds();
            float[][] logits = SpeculativeFixtures.targetLogitsOfEachToken(target, r);
            for (int i = 0; i < out.length; i++) {
                assertTrue(SpeculativeFixtures.rankOf(logits[i], out[i]) < 3,
                        s.name() + ": token " + i + " (" + out[i] + ") is outside the target's top 3");
            }
        }
    }

    @Test
    void aSampledTwinDraftIsAlwaysAccepted() {
        // p = q exactly, so u·q ≤ p always holds.
        SamplingParams sampling = SamplingParams.greedy().withTemperature(0.8f).withTopK(20).withSeed(5);
        GenerationResult r = new SpeculativeDecoding(target, twin, 3).generate(
                GenerationRequest.of("JULIET:").withMaxTokens(32).withSampling(sampling).withEosTokenIds(List.of()));
        assertEquals(1.0, r.decodeStats().acceptanceRate(), r.decodeStats().summary());
        assertNotEquals(0, r.decodeStats().verifications());
    }
}
