package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.SpeculativeFixtures.Totals;
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
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import static dev.tandem.decoding.speculative.SpeculativeFixtures.firstIndexOf;
import static dev.tandem.decoding.speculative.SpeculativeFixtures.request;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ADED: greedy equals plain greedy with an empty and a corpus table, drafts get accepted, the cache keeps
 * only the accepted path, edge cases, sampling. The corpus table comes from
 * {@code src/test/resources/corpus/excerpt.txt}: the first ~50 kB of Tiny Shakespeare and the first
 * ~46 kB of War and Peace from the project's shared training corpus (public domain), cut at blank lines.
 */
class AdedDecodingTest {
    static LanguageModel target;
    static TrigramTable corpus;
    static List<String> prompts;
    static List<GenerationResult> plain;

    @BeforeAll
    static void load() throws Exception {
        target = ModelLoader.load(TestModels.model("bard-l"));
        corpus = TrigramTable.fromCorpus(target.tokenizer(), TrigramTableTest.excerpt());
        prompts = SpeculativeFixtures.goldenPromptsAnd(SpeculativeDecodingTest.MORE_PROMPTS);
        plain = SpeculativeFixtures.plainGreedy(target, prompts, SpeculativeFixtures::request);
    }

    @AfterAll
    static void close() {
        target.close();
    }

    /** A table that has seen the plain greedy continuation of {@code request}: its drafts are mostly accepted. */
    static TrigramTable primedWith(GenerationRequest request) {
        return TrigramTable.fromTokens(SpeculativeFixtures.promptAndOutput(new Generator(target).generate(request)));
    }

    /** A 16-node tree: the same loop as the default, cheaper to verify on a CPU (for the tests of the loop's edges). */
    static AdedDecoding sixteenNodes(TrigramTable table) {
        return new AdedDecoding(target, table, AdedDecoding.DEFAULT_ITERATIONS, AdedDecoding.DEFAULT_MAX_DEPTH, 16);
    }

    /**
     * The first {@code count} prompts: ids, text, stream, finish reason, usage and stats bookkeeping as plain greedy,
     * trees within the strategy's depth and node cap, one target pass per round; prints and returns the summed stats.
     */
    static Totals assertSameAsPlain(AdedDecoding strategy, String label, int count) {
        assertEquals("aded", strategy.name());
        Totals t = SpeculativeFixtures.assertSameAsPlain(strategy, prompts.subList(0, count), plain.subList(0, count),
                SpeculativeFixtures::request, label, (r, where) -> {
                    DecodeStats s = r.decodeStats();
                    assertTrue(s.acceptedHistogram().size() <= strategy.maxDepth() + 1, where);
                    assertTrue(s.draftedTokens() <= s.verifications() * strategy.nodeCap(), where);
                    // The prefill (when the prompt has more than one token) and one pass per round.
                    SpeculativeFixtures.assertOneTargetPassPerVerification(r, where);
                });
        System.out.printf(Locale.ROOT, "%s: %d verifications, %.2f nodes per verification, mean accepted per verification "
                        + "%.3f, target passes per token %.3f; draft %.0f ms, verify %.0f ms, other %.0f ms%n", label,
                t.verifications(), t.nodesPerVerification(), t.meanAcceptedPerVerification(), t.targetPassesPerToken(),
                t.draftMillis(), t.verifyMillis(), t.otherMillis());
        return t;
    }

    @Test
    void greedyIsIdenticalToPlainGreedyAndCorpusDraftsGetAccepted() {
        Totals empty = assertSameAsPlain(new AdedDecoding(target, TrigramTable.empty()), "aded, empty table", prompts.size());
        Totals withCorpus = assertSameAsPlain(new AdedDecoding(target, corpus), "aded, corpus table", prompts.size());
        double meanWithCorpus = withCorpus.meanAcceptedPerVerification();
        double meanEmpty = empty.meanAcceptedPerVerification();
        assertTrue(meanWithCorpus > 0, "no corpus draft was ever accepted");
        // The corpus drafts from the first round on, so more gets accepted per verification than from the
        // generation's own n-grams alone.
        assertTrue(meanWithCorpus > meanEmpty, "mean accepted per verification: corpus " + meanWithCorpus + ", empty " + meanEmpty);
    }

    @Test
    void smallerSearchesAreIdenticalToPlainGreedyToo() {
        assertSameAsPlain(new AdedDecoding(target, corpus, 20, 2, 5), "aded, 20 iterations, depth 2, 5 nodes", 6);
        assertSameAsPlain(new AdedDecoding(target, corpus, 150, 6, 12), "aded, 150 iterations, depth 6, 12 nodes", 6);
    }

    @Test
    void aPrimedTableDraftsWholePaths() {
        GenerationRequest req = request("ROMEO:").withEosTokenIds(List.of());
        GenerationResult r = new AdedDecoding(target, primedWith(req)).generate(req);
        assertArrayEquals(new Generator(target).generate(req).generatedIds(), r.generatedIds());
        DecodeStats s = r.decodeStats();
        assertTrue(s.meanAcceptedPerVerification() > 2, s.summary());
        assertTrue(s.targetForwardPasses() < r.generatedIds().length / 2, s.summary());
    }

    /**
     * After every round the target's cache holds exactly the context with the accepted path, and a chain
     * continued from it gives the same logits, bit for bit, as a fresh prefill of the same tokens.
     */
    @Test
    void theCacheKeepsExactlyTheAcceptedPath() {
        // A fresh prefill per round is slow; every fourth round is enough.
        SpeculativeFixtures.KeptCacheCheck check = new SpeculativeFixtures.KeptCacheCheck(target, 4);
        for (String p : List.of("ROMEO:", "Natasha ran into the room")) {
            GenerationRequest req = request(p).withEosTokenIds(List.of());
            GenerationResult r = sixteenNodes(corpus).withObserver(check).generate(req);
            assertEquals(48, r.generatedIds().length);
            assertTrue(r.decodeStats().acceptedTokens() > 0, r.decodeStats().summary());
            assertArrayEquals(new Generator(target).generate(req).generatedIds(), r.generatedIds(), p);
        }
        assertTrue(check.checked() >= 4, check.checked() + " rounds checked");
    }

    @Test
    void maxTokensReachedInsideAPathTruncatesExactlyThere() {
        Generator generator = new Generator(target);
        GenerationRequest base = GenerationRequest.of("First Citizen:").withMaxTokens(24).withEosTokenIds(List.of());
        TrigramTable primed = primedWith(base);
        for (int max = 1; max <= 7; max++) {
            GenerationRequest request = base.withMaxTokens(max);
            GenerationResult expected = generator.generate(request);
            for (AdedDecoding s : List.of(new AdedDecoding(target, primed), new AdedDecoding(target, corpus))) {
                SpeculativeFixtures.assertStopsAtMaxTokensLikePlain(s, request, expected, "max " + max);
            }
        }
    }

    @Test
    void eosInsideAnAcceptedPathEndsTheOutputThere() {
        GenerationRequest base = GenerationRequest.of("ROMEO:").withMaxTokens(40).withEosTokenIds(List.of());
        int[] plainIds = new Generator(target).generate(base).generatedIds();
        AdedDecoding primed = new AdedDecoding(target, primedWith(base));
        // Which output tokens were accepted path tokens (not the target's own token after a path)?
        int promptLength = target.tokenizer().encode("ROMEO:").length;
        Set<Integer> fromPaths = new HashSet<>();
        int[] before = {promptLength};
        primed.withObserver((kv, kept, next) -> {
            for (int i = before[0]; i < kept.length; i++) {
                fromPaths.add(i - promptLength);
            }
            before[0] = kept.length + 1;
        }).generate(base);
        int index = -1;
        for (int k = 1; k < plainIds.length && index < 0; k++) {
            if (fromPaths.contains(k) && !fromPaths.contains(k + 1) && firstIndexOf(plainIds, plainIds[k]) == k) {
                index = k; // the last token of an accepted path: the round's own token would follow it
            }
        }
        for (int k = 1; k < plainIds.length && index < 0; k++) {
            if (fromPaths.contains(k) && firstIndexOf(plainIds, plainIds[k]) == k) {
                index = k;
            }
        }
        assertTrue(index > 0, "no accepted path token to make the EOS in " + Arrays.toString(plainIds) + " " + fromPaths);
        SpeculativeFixtures.assertEosEndsTheOutputThere(target, base, plainIds, index,
                List.of(primed, new AdedDecoding(target, corpus)), s -> s == primed ? "primed table" : "corpus table");
    }

    /** On a copy of bard-l with a 96-token context window, so that prompts that nearly fill it are cheap. */
    @Test
    void treesNeverRunPastTheRemainingContext(@TempDir Path tmp) throws IOException {
        Path dir = TestModels.copyOf("bard-l", tmp.resolve("bard-l-96"));
        Path config = dir.resolve("config.json");
        String json = Files.readString(config);
        assertTrue(json.contains("\"max_position_embeddings\": 1024"), json);
        Files.writeString(config, json.replace("\"max_position_embeddings\": 1024", "\"max_position_embeddings\": 96"));
        try (LanguageModel shortModel = ModelLoader.load(dir, ModelLoader.Options.defaults().withBackend(target.backend()))) {
            assertEquals(96, shortModel.config().maxContext());
            for (int left : new int[] {0, 1, 2, 3, 4, 5, 9}) {
                GenerationRequest request = SpeculativeFixtures.leavingPositions(shortModel, left);
                GenerationResult expected = SpeculativeFixtures.plainUpToTheContextEnd(shortModel, request);
                GenerationResult r = SpeculativeFixtures.assertEndsAtTheContextLikePlain(new AdedDecoding(shortModel, corpus),
                        request, expected, left + " positions left");
                if (left >= 2) { // room for a tree of depth ≥ 1: trees were drafted right up to the limit
                    assertTrue(r.decodeStats().draftedTokens() > 0, left + " left: " + r.decodeStats().summary());
                } else {
                    assertEquals(0, r.decodeStats().draftedTokens(), left + " left: " + r.decodeStats().summary());
                }
            }
        }
    }

    @Test
    void greedyWithRepetitionPenaltyAndLogprobsIsIdenticalToPlain() {
        SamplingParams penalty = SamplingParams.greedy().withRepetitionPenalty(1.3f);
        for (String p : List.of("ROMEO:", "First Citizen:\nBefore we proceed")) {
            GenerationRequest req = request(p).withSampling(penalty).withLogprobs(2);
            SpeculativeFixtures.assertSameIdsAndLogprobsAsPlain(sixteenNodes(corpus), req,
                    new Generator(target).generate(req), p);
        }
    }

    @Test
    void stopStringsEndTheOutputAsInPlainDecoding() {
        for (String p : List.of("ROMEO:", "HAMLET:\nTo be, or not to be")) {
            GenerationRequest req = request(p).withStop(SpeculativeFixtures.STOPS);
            SpeculativeFixtures.assertSameOutputAsPlain(new Generator(target).generate(req),
                    sixteenNodes(corpus).generate(req), p);
        }
    }

    @Test
    void generationsDoNotLeakIntoTheBaseTableOrEachOther() {
        TrigramTable base = TrigramTable.empty();
        AdedDecoding s = new AdedDecoding(target, base);
        GenerationRequest req = request("ROMEO:\nI love thee. JULIET:\nI love thee. ROMEO:\nI").withEosTokenIds(List.of());
        GenerationResult first = s.generate(req);
        DecodeStats a = first.decodeStats();
        assertTrue(a.acceptedTokens() > 0, a.summary()); // the prompt's own n-grams were drafted
        int[] ids = target.tokenizer().encode("ROMEO:\nI love");
        assertEquals(List.of(), base.successors(ids[ids.length - 2], ids[ids.length - 1], 8));
        // A second generation starts from the same (empty) table, so it drafts and accepts exactly the same.
        GenerationResult second = s.generate(req);
        DecodeStats b = second.decodeStats();
        assertArrayEquals(first.generatedIds(), second.generatedIds());
        assertEquals(List.of(a.verifications(), a.draftedTokens(), a.acceptedTokens()),
                List.of(b.verifications(), b.draftedTokens(), b.acceptedTokens()));
        assertEquals(a.acceptedHistogram(), b.acceptedHistogram());
    }

    @Test
    void samplingIsReproducibleFromTheSeed() {
        SpeculativeFixtures.assertSamplingIsReproducibleFromTheSeed(target, List.of(sixteenNodes(corpus)), s -> "aded");
    }

    /** Every sampled token has probability > 0 under the target's processed distribution at its position. */
    @Test
    void sampledTokensStayInTheTargetsSupport() {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.5f).withTopK(3).withSeed(21);
        for (String p : List.of("KING HENRY VI:\nWhat", "Pierre")) {
            GenerationResult r = sixteenNodes(corpus).generate(GenerationRequest.of(p).withMaxTokens(40)
                    .withSampling(sampling).withEosTokenIds(List.of()));
            assertTrue(r.decodeStats().acceptedTokens() > 0, r.decodeStats().summary());
            int[] prompt = r.promptIds(), out = r.generatedIds(), all = SpeculativeFixtures.promptAndOutput(r);
            float[][] logits = SpeculativeFixtures.targetLogitsOfEachToken(target, r);
            for (int i = 0; i < out.length; i++) {
                double[] q = Sampler.distribution(logits[i], sampling, all, prompt.length + i);
                assertTrue(q[out[i]] > 0, p + ": token " + i + " (" + out[i] + ") has probability 0 under the target");
            }
        }
    }

    @Test
    void badKnobsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new AdedDecoding(target, corpus, 0, 4, 64));
        assertThrows(IllegalArgumentException.class, () -> new AdedDecoding(target, corpus, 150, 0, 64));
        assertThrows(IllegalArgumentException.class, () -> new AdedDecoding(target, corpus, 150, 4, 0));
    }

    // The drafter alone.

    @Test
    void anEmptyTableDraftsNothing() {
        assertEquals(0, new AdedDrafter(TrigramTable.empty(), 150).grow(new int[] {5, 6, 7}, 3, 4, 64).size());
    }

    @Test
    void theSearchFollowsTheTableDeterministically() {
        int[] stream = {1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 6, 1, 2, 7};
        TrigramTable table = TrigramTable.fromTokens(stream);
        int[] context = {9, 1, 2};
        AdedDrafter drafter = new AdedDrafter(table, 150);
        TokenTree tree = drafter.grow(context, 3, 4, 64);
        assertEquals(tree, new AdedDrafter(table, 150).grow(context, 3, 4, 64), "not deterministic");
        assertEquals(tree, drafter.grow(context, 3, 4, 64), "a drafter's second search differs");
        // After (1, 2): 3 (3 of 4) before 7; after (2, 3): 4; after (3, 4): 5 (2 of 3) before 6; after (4, 5): 1.
        assertArrayEquals(new int[] {3, 7}, tokensOf(tree, tree.children(-1)));
        int three = tree.children(-1)[0];
        int four = tree.children(three)[0];
        assertArrayEquals(new int[] {4}, tokensOf(tree, tree.children(three)));
        assertArrayEquals(new int[] {5, 6}, tokensOf(tree, tree.children(four)));
        assertArrayEquals(new int[] {1}, tokensOf(tree, tree.children(tree.children(four)[0])));
        for (int j = 0; j < tree.size(); j++) {
            assertTrue(tree.depth(j) <= 4);
        }
        assertEquals(TokenTree.chain(3), drafter.grow(context, 3, 4, 1));
        assertEquals(TokenTree.chain(3, 4), drafter.grow(context, 3, 2, 2));
        TokenTree shallow = drafter.grow(context, 3, 1, 64);
        assertArrayEquals(new int[] {3, 7}, shallow.tokens());
    }

    @Test
    void theTreeIsCappedAndKeepsTheMostVisitedConnectedNodes() {
        TokenTree tree = new AdedDrafter(corpus, 150).grow(target.tokenizer().encode("First Citizen:\nWe"),
                target.tokenizer().encode("First Citizen:\nWe").length, 4, 64);
        assertTrue(tree.size() > 16 && tree.size() <= 64, tree.size() + " nodes");
        List<String> all = paths(tree);
        Set<String> paths = new HashSet<>(all);
        assertEquals(all.size(), paths.size(), "two nodes hold the same path");
        for (int j = 0; j < tree.size(); j++) {
            assertTrue(tree.depth(j) <= 4);
        }
        TokenTree small = new AdedDrafter(corpus, 150).grow(target.tokenizer().encode("First Citizen:\nWe"),
                target.tokenizer().encode("First Citizen:\nWe").length, 4, 10);
        assertEquals(10, small.size());
        // The same search capped lower keeps a subset of the same nodes (the most visited ones).
        for (String path : paths(small)) {
            assertTrue(paths.contains(path), path + " is not in the larger tree");
        }
    }

    /** Each node's path from the root, as text. */
    private static List<String> paths(TokenTree tree) {
        List<String> out = new ArrayList<>();
        for (int j = 0; j < tree.size(); j++) {
            StringBuilder path = new StringBuilder();
            for (int a = j; a >= 0; a = tree.parent(a)) {
                path.insert(0, tree.token(a) + " ");
            }
            out.add(path.toString());
        }
        return out;
    }

    private static int[] tokensOf(TokenTree tree, int[] nodes) {
        return tree.tokensOf(nodes);
    }
}
