package dev.tandem.decoding.speculative;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.SpeculativeFixtures.Totals;
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
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static dev.tandem.decoding.speculative.SpeculativeFixtures.request;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Token-tree decoding: greedy equals plain greedy, the cache keeps only the accepted path, edge cases, sampling. */
class TreeDecodingTest {
    static final List<String> MORE_PROMPTS = List.of(
            "JULIET:", "HAMLET:\nTo be, or not to be", "First Citizen:", "KING RICHARD III:\nNow is the winter",
            "Pierre", "Natasha ran into the room", "LADY MACBETH:\n", "BRUTUS:\nRomans, countrymen", "\n\n",
            "O Romeo, Romeo, wherefore art thou", "Anna Pavlovna");

    static LanguageModel target;
    static LanguageModel twin; // the target again: as a draft its top-1 child is always the target's argmax
    static LanguageModel small;
    static LanguageModel medium;
    static List<String> prompts;
    static List<GenerationResult> plain;

    @BeforeAll
    static void load() throws IOException {
        target = ModelLoader.load(TestModels.model("bard-l"));
        ModelLoader.Options shared = ModelLoader.Options.defaults().withBackend(target.backend());
        twin = ModelLoader.load(TestModels.model("bard-l"), shared);
        small = ModelLoader.load(TestModels.model("bard-s"), shared);
        medium = ModelLoader.load(TestModels.model("bard-m"), shared);
        prompts = SpeculativeFixtures.goldenPromptsAnd(MORE_PROMPTS);
        plain = SpeculativeFixtures.plainGreedy(target, prompts, SpeculativeFixtures::request);
    }

    @AfterAll
    static void close() {
        medium.close();
        small.close();
        twin.close();
        target.close();
    }

    static List<TreeDecoding> configurations(LanguageModel draft) {
        return List.of(TreeDecoding.of(target, draft), new TreeDecoding(target, draft, 10, 2, 5));
    }

    static String label(TreeDecoding t) {
        return t.nodeBudget() + " nodes, top-" + t.topK() + ", depth " + t.maxDepth();
    }

    @Test
    void greedyIsIdenticalToPlainGreedy() {
        for (LanguageModel d : List.of(small, medium)) {
            for (TreeDecoding strategy : configurations(d)) {
                assertEquals("tree", strategy.name());
                SpeculativeFixtures.assertSameAsPlain(strategy, prompts, plain, SpeculativeFixtures::request,
                        d.directory().getFileName() + "->bard-l " + label(strategy), (r, where) -> {
                            DecodeStats s = r.decodeStats();
                            assertTrue(s.acceptedHistogram().size() <= strategy.maxDepth() + 1, where);
                            assertTrue(s.draftedTokens() <= (long) s.verifications() * strategy.nodeBudget(), where);
                        });
            }
        }
    }

    /** The golden greedy paths (EOS off, each its own length), with the stats the issue asks for printed. */
    @Test
    void goldenPathsAreReproducedWithStats() throws IOException {
        for (LanguageModel d : List.of(small, medium)) {
            List<TreeDecoding> all = new ArrayList<>(configurations(d));
            all.addAll(List.of(new TreeDecoding(target, d, 8, 2, 4), new TreeDecoding(target, d, 16, 2, 6),
                    new TreeDecoding(target, d, 32, 4, 6), new TreeDecoding(target, d, 4, 1, 4)));
            for (TreeDecoding s : all) {
                Totals t = SpeculativeFixtures.assertReproducesGoldenPaths(s, d.directory().getFileName() + " " + label(s));
                System.out.printf(Locale.ROOT, "golden tree %s->bard-l %s: acceptance %.3f (of drafted nodes), mean accepted per "
                                + "verification %.3f, tokens per verification %.3f, target passes per token %.3f, "
                                + "draft passes per verification %.3f, nodes per verification %.2f%n",
                        d.directory().getFileName(), label(s), t.acceptance(), t.meanAcceptedPerVerification(),
                        t.tokensPerVerification(), t.targetPassesPerToken(), t.draftPassesPerVerification(),
                        t.nodesPerVerification());
            }
        }
    }

    /** With top-1 children the tree is the draft's greedy chain: the same rounds as chain speculation with γ = depth. */
    @Test
    void aTopOneTreeMakesTheSameRoundsAsTheChain() throws IOException {
        for (LanguageModel d : List.of(small, medium)) {
            for (JsonNode c : SpeculativeFixtures.golden().get("cases")) {
                GenerationRequest req = GenerationRequest.of(c.get("prompt").asText()).withMaxTokens(40).withEosTokenIds(List.of());
                DecodeStats chain = new SpeculativeDecoding(target, d, 4).generate(req).decodeStats();
                DecodeStats tree = new TreeDecoding(target, d, 4, 1, 4).generate(req).decodeStats();
                String where = d.directory().getFileName() + " " + c.get("prompt").asText();
                assertEquals(chain.verifications(), tree.verifications(), where);
                assertEquals(chain.draftedTokens(), tree.draftedTokens(), where);
                assertEquals(chain.acceptedTokens(), tree.acceptedTokens(), where);
                assertEquals(chain.acceptedHistogram(), tree.acceptedHistogram(), where);
                assertEquals(chain.targetForwardPasses(), tree.targetForwardPasses(), where);
            }
        }
    }

    /**
     * After every round the target's cache holds exactly the context with the accepted path, and a plain
     * chain continued from it gives the same logits, bit for bit, as a fresh prefill of the same tokens.
     */
    @Test
    void theCacheKeepsExactlyTheAcceptedPath() {
        // A fresh prefill per round is slow; every third round is enough.
        SpeculativeFixtures.KeptCacheCheck check = new SpeculativeFixtures.KeptCacheCheck(target, 3);
        for (LanguageModel d : List.of(small, medium)) {
            TreeDecoding s = TreeDecoding.of(target, d).withObserver(check);
            for (String p : List.of("ROMEO:", "HAMLET:\nTo be, or not to be", "Natasha ran into the room")) {
                GenerationResult r = s.generate(request(p).withEosTokenIds(List.of()));
                assertEquals(48, r.generatedIds().length);
                assertTrue(r.decodeStats().acceptedTokens() > 0, r.decodeStats().summary());
            }
        }
        assertTrue(check.checked() > 5, check.checked() + " rounds checked");
    }

    @Test
    void aTwinDraftIsAlwaysAcceptedToFullDepth() {
        // Top-1 children: the tree is the twin's greedy chain, which the target accepts whole.
        GenerationResult r = new TreeDecoding(target, twin, 4, 1, 4).generate(
                GenerationRequest.of("ROMEO:").withMaxTokens(40).withEosTokenIds(List.of()));
        DecodeStats s = r.decodeStats();
        assertEquals(8, s.verifications(), s.summary()); // 8 rounds of 4 accepted nodes + 1 bonus token
        assertEquals(32, s.acceptedTokens(), s.summary());
        assertEquals(9, s.targetForwardPasses());
        assertArrayEquals(new Generator(target).generate(GenerationRequest.of("ROMEO:").withMaxTokens(40)
                .withEosTokenIds(List.of())).generatedIds(), r.generatedIds());
    }

    @Test
    void eosInsideAnAcceptedPathEndsTheOutputThere() {
        GenerationRequest base = GenerationRequest.of("ROMEO:").withMaxTokens(40).withEosTokenIds(List.of());
        int[] plainIds = new Generator(target).generate(base).generatedIds();
        // With the twin's top-1 chain at depth 4, tokens 0-3, 5-8, ... are accepted path tokens and 4, 9, ... the target's own.
        int index = SpeculativeFixtures.tokenInsideAnAcceptedDraft(plainIds, 5);
        assertTrue(index > 0, "no suitable token in " + Arrays.toString(plainIds));
        GenerationRequest request = SpeculativeFixtures.assertEosEndsTheOutputThere(target, base, plainIds, index,
                List.of(new TreeDecoding(target, twin, 4, 1, 4), TreeDecoding.of(target, twin), TreeDecoding.of(target, small)),
                TreeDecodingTest::label);
        DecodeStats twinStats = new TreeDecoding(target, twin, 4, 1, 4).generate(request).decodeStats();
        // The EOS was an accepted path token (every round accepts all 4 levels), not the target's own token.
        assertEquals(index / 5 + 1, twinStats.verifications(), twinStats.summary());
        assertEquals(4 * twinStats.verifications(), twinStats.acceptedTokens(), twinStats.summary());
    }

    @Test
    void maxTokensReachedInsideAPathTruncatesExactlyThere() {
        Generator generator = new Generator(target);
        for (int max = 1; max <= 11; max++) {
            GenerationRequest request = GenerationRequest.of("First Citizen:").withMaxTokens(max).withEosTokenIds(List.of());
            GenerationResult expected = generator.generate(request);
            for (TreeDecoding s : List.of(new TreeDecoding(target, twin, 4, 1, 4), TreeDecoding.of(target, twin),
                TreeDecoding.of(target, small))) {
                SpeculativeFixtures.assertStopsAtMaxTokensLikePlain(s, request, expected, label(s) + " max " + max);
            }
        }
    }

    @Test
    void treesNeverRunPastTheRemainingContext() {
        for (int left : new int[] {0, 1, 2, 3, 5}) {
            GenerationRequest request = SpeculativeFixtures.leavingPositions(target, left);
            GenerationResult expected = SpeculativeFixtures.plainUpToTheContextEnd(target, request);
            SpeculativeFixtures.assertEndsAtTheContextLikePlain(TreeDecoding.of(target, small), request, expected,
                    left + " positions left");
        }
    }

    @Test
    void greedyWithRepetitionPenaltyAndLogprobsIsIdenticalToPlain() {
        SamplingParams penalty = SamplingParams.greedy().withRepetitionPenalty(1.3f);
        for (String p : List.of("ROMEO:", "First Citizen:\nBefore we proceed")) {
            GenerationRequest req = request(p).withSampling(penalty).withLogprobs(2);
            GenerationResult expected = new Generator(target).generate(req);
            for (TreeDecoding s : List.of(TreeDecoding.of(target, small), new TreeDecoding(target, medium, 10, 2, 5))) {
                SpeculativeFixtures.assertSameIdsAndLogprobsAsPlain(s, req, expected, label(s) + " " + p);
            }
        }
    }

    @Test
    void stopStringsEndTheOutputAsInPlainDecoding() {
        for (String p : List.of("ROMEO:", "HAMLET:\nTo be, or not to be")) {
            GenerationRequest req = request(p).withStop(SpeculativeFixtures.STOPS);
            SpeculativeFixtures.assertSameOutputAsPlain(new Generator(target).generate(req),
                    TreeDecoding.of(target, small).generate(req), p);
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
            TandemException e = assertThrows(TandemException.class, () -> TreeDecoding.of(target, swapped));
            assertTrue(e.getMessage().contains("token 300"), e.getMessage());
            assertTrue(e.getMessage().endsWith("a draft must share the target's tokenizer."), e.getMessage());
        }
    }

    @Test
    void badShapesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new TreeDecoding(target, small, 0, 2, 4));
        assertThrows(IllegalArgumentException.class, () -> new TreeDecoding(target, small, 16, 0, 4));
        assertThrows(IllegalArgumentException.class, () -> new TreeDecoding(target, small, 16, 2, 0));
    }

    @Test
    void topTokensAreHighestFirstLowestIdOnTies() {
        float[] l = {1, 5, Float.NEGATIVE_INFINITY, 5, 3, 7};
        assertArrayEquals(new int[] {5, 1, 3}, TreeDrafter.topTokens(l, 3));
        assertArrayEquals(new int[] {5, 1, 3, 4, 0}, TreeDrafter.topTokens(l, 9));
        assertArrayEquals(new int[] {5}, TreeDrafter.topTokens(l, 1));
    }

    @Test
    void samplingIsReproducibleFromTheSeed() {
        SpeculativeFixtures.assertSamplingIsReproducibleFromTheSeed(target,
                List.of(TreeDecoding.of(target, small), new TreeDecoding(target, medium, 10, 2, 5)), TreeDecodingTest::label);
    }

    /** Every sampled token lies in the target's top-k at its own position. */
    @Test
    void sampledTokensStayInTheTargetsSupport() {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.5f).withTopK(3).withSeed(21);
        for (TreeDecoding s : List.of(TreeDecoding.of(target, small), new TreeDecoding(target, medium, 10, 2, 5))) {
            GenerationResult r = s.generate(GenerationRequest.of("KING HENRY VI:\nWhat").withMaxTokens(40)
                    .withSampling(sampling).withEosTokenIds(List.of()));
            assertTrue(r.decodeStats().acceptedTokens() > 0, r.decodeStats().summary());
            int[] out = r.generatedIds();
            float[][] logits = SpeculativeFixtures.targetLogitsOfEachToken(target, r);
            for (int i = 0; i < out.length; i++) {
                assertTrue(SpeculativeFixtures.rankOf(logits[i], out[i]) < 3,
                        label(s) + ": token " + i + " (" + out[i] + ") is outside the target's top 3");
            }
        }
    }
}
