package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
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

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
        plain = new ArrayList<>();
        Generator generator = new Generator(target);
        for (String p : prompts) {
            plain.add(generator.generate(request(p)));
        }
    }

    @AfterAll
    static void close() {
        target.close();
    }

    static GenerationRequest request(String prompt) {
        return GenerationRequest.of(prompt).withMaxTokens(48);
    }

    /** A table that has seen the plain greedy continuation of {@code request}: its drafts are mostly accepted. */
    static TrigramTable primedWith(GenerationRequest request) {
        GenerationResult r = new Generator(target).generate(request);
        int[] all = Arrays.copyOf(r.promptIds(), r.promptIds().length + r.generatedIds().length);
        System.arraycopy(r.generatedIds(), 0, all, r.promptIds().length, r.generatedIds().length);
        return TrigramTable.fromTokens(all);
    }

    /** A 16-node tree: the same loop as the default, cheaper to verify on a CPU (for the tests of the loop's edges). */
    static AdedDecoding sixteenNodes(TrigramTable table) {
        return new AdedDecoding(target, table, AdedDecoding.DEFAULT_ITERATIONS, AdedDecoding.DEFAULT_MAX_DEPTH, 16);
    }

    /** The first {@code count} prompts: ids, text, stream, finish reason and usage as plain greedy; returns the summed stats. */
    static long[] assertSameAsPlain(AdedDecoding strategy, String label, int count) {
        long verifications = 0, drafted = 0, accepted = 0, passes = 0, generated = 0;
        double draftMs = 0, verifyMs = 0, otherMs = 0;
        for (int i = 0; i < count; i++) {
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
            assertEquals("aded", s.method());
            assertEquals(0, s.draftForwardPasses());
            assertEquals(r.generatedIds().length, s.generatedTokens());
            assertEquals(s.verifications(), s.acceptedHistogram().stream().mapToLong(Long::longValue).sum());
            assertEquals(s.acceptedTokens(), SpeculativeDecodingTest.sumWeighted(s.acceptedHistogram()));
            assertTrue(s.acceptedHistogram().size() <= strategy.maxDepth() + 1, where);
            assertTrue(s.draftedTokens() <= s.verifications() * strategy.nodeCap(), where);
            // The prefill (when the prompt has more than one token) and one pass per round.
            assertEquals(s.verifications() + (r.promptIds().length > 1 ? 1 : 0), s.targetForwardPasses(), where);
            verifications += s.verifications();
            drafted += s.draftedTokens();
            accepted += s.acceptedTokens();
            passes += s.targetForwardPasses();
            generated += s.generatedTokens();
            draftMs += s.draftMillis();
            verifyMs += s.verifyMillis();
            otherMs += s.otherMillis();
        }
        System.out.printf(Locale.ROOT, "%s: %d verifications, %.2f nodes per verification, mean accepted per verification "
                        + "%.3f, target passes per token %.3f; draft %.0f ms, verify %.0f ms, other %.0f ms%n", label,
                verifications, (double) drafted / verifications, (double) accepted / verifications,
                (double) passes / generated, draftMs, verifyMs, otherMs);
        return new long[] {verifications, drafted, accepted};
    }

    @Test
    void greedyIsIdenticalToPlainGreedyAndCorpusDraftsGetAccepted() {
        long[] empty = assertSameAsPlain(new AdedDecoding(target, TrigramTable.empty()), "aded, empty table", prompts.size());
        long[] withCorpus = assertSameAsPlain(new AdedDecoding(target, corpus), "aded, corpus table", prompts.size());
        double meanWithCorpus = (double) withCorpus[2] / withCorpus[0];
        double meanEmpty = (double) empty[2] / empty[0];
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
        int[] rounds = {0};
        int[] checked = {0};
        TreeDecoding.RoundObserver check = (kv, kept, next) -> {
            rounds[0]++;
            assertEquals(kept.length, kv.length(), "cache length after round " + rounds[0]);
            if (rounds[0] % 4 != 1) {
                return; // a fresh prefill per round is slow; every fourth round is enough
            }
            checked[0]++;
            int[] more = {next, 17, 400};
            float[][] continued = new float[more.length][];
            try (KvSequence fork = kv.fork()) {
                ForwardResult fr = target.forward(Batch.of(Batch.Entry.continuationAllLogits(fork, more)));
                for (int i = 0; i < more.length; i++) {
                    continued[i] = fr.logits(0, i);
                }
            }
            int[] all = Arrays.copyOf(kept, kept.length + more.length);
            System.arraycopy(more, 0, all, kept.length, more.length);
            try (KvSequence fresh = target.newSequence()) {
                ForwardResult fr = target.forward(Batch.of(Batch.Entry.continuationAllLogits(fresh, all)));
                for (int i = 0; i < more.length; i++) {
                    assertArrayEquals(fr.logits(0, kept.length + i), continued[i], "round " + rounds[0] + " row " + i);
                }
            }
        };
        for (String p : List.of("ROMEO:", "Natasha ran into the room")) {
            GenerationRequest req = request(p).withEosTokenIds(List.of());
            GenerationResult r = sixteenNodes(corpus).withObserver(check).generate(req);
            assertEquals(48, r.generatedIds().length);
            assertTrue(r.decodeStats().acceptedTokens() > 0, r.decodeStats().summary());
            assertArrayEquals(new Generator(target).generate(req).generatedIds(), r.generatedIds(), p);
        }
        assertTrue(checked[0] >= 4, checked[0] + " rounds checked");
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
                List<TokenEvent> events = new ArrayList<>();
                GenerationResult r = s.generate(request, events::add);
                assertArrayEquals(expected.generatedIds(), r.generatedIds(), "max " + max);
                assertEquals(max, r.generatedIds().length);
                assertEquals(max, events.size());
                assertEquals(FinishReason.MAX_TOKENS, r.finishReason());
                assertEquals(expected.text(), r.text());
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
        int eos = plainIds[index];
        GenerationRequest request = base.withEosTokenIds(List.of(eos));
        GenerationResult expected = new Generator(target).generate(request);
        assertEquals(FinishReason.EOS, expected.finishReason());
        assertEquals(index + 1, expected.generatedIds().length);
        for (AdedDecoding s : List.of(primed, new AdedDecoding(target, corpus))) {
            List<TokenEvent> events = new ArrayList<>();
            GenerationResult r = s.generate(request, events::add);
            assertArrayEquals(expected.generatedIds(), r.generatedIds());
            assertEquals(FinishReason.EOS, r.finishReason());
            assertEquals(expected.text(), r.text());
            assertEquals(index + 1, events.size(), "no token after EOS");
            assertEquals(eos, events.getLast().token());
        }
    }

    private static int firstIndexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
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
            int context = shortModel.config().maxContext();
            assertEquals(96, context);
            int[] text = shortModel.tokenizer().encode("ROMEO:\nI love thee, and thou lovest me; what more is there to say? ");
            for (int left : new int[] {0, 1, 2, 3, 4, 5, 9}) {
                int[] prompt = new int[context - left];
                for (int i = 0; i < prompt.length; i++) {
                    prompt[i] = text[i % text.length];
                }
                GenerationRequest request = GenerationRequest.ofIds(prompt).withMaxTokens(20).withEosTokenIds(List.of());
                GenerationResult expected = new Generator(shortModel).generate(request);
                assertEquals(FinishReason.CONTEXT_FULL, expected.finishReason());
                GenerationResult r = new AdedDecoding(shortModel, corpus).generate(request);
                assertArrayEquals(expected.generatedIds(), r.generatedIds(), left + " positions left");
                assertEquals(FinishReason.CONTEXT_FULL, r.finishReason());
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
            GenerationResult expected = new Generator(target).generate(req);
            List<TokenEvent> events = new ArrayList<>();
            GenerationResult r = sixteenNodes(corpus).generate(req, events::add);
            assertArrayEquals(expected.generatedIds(), r.generatedIds(), p);
            assertEquals(expected.logprobs(), r.logprobs());
            assertEquals(expected.logprobs(), events);
        }
    }

    @Test
    void stopStringsEndTheOutputAsInPlainDecoding() {
        for (String p : List.of("ROMEO:", "HAMLET:\nTo be, or not to be")) {
            GenerationRequest req = request(p).withStop(List.of("\n\n", "my"));
            GenerationResult expected = new Generator(target).generate(req);
            GenerationResult r = sixteenNodes(corpus).generate(req);
            assertArrayEquals(expected.generatedIds(), r.generatedIds(), p);
            assertEquals(expected.text(), r.text());
            assertEquals(expected.finishReason(), r.finishReason());
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
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.0f).withSeed(11);
        GenerationRequest request = GenerationRequest.of("ROMEO:").withMaxTokens(48).withSampling(sampling).withEosTokenIds(List.of());
        int[] greedy = new Generator(target).generate(GenerationRequest.of("ROMEO:").withMaxTokens(48).withEosTokenIds(List.of()))
                .generatedIds();
        AdedDecoding s = sixteenNodes(corpus);
        GenerationResult a = s.generate(request);
        GenerationResult b = s.generate(request);
        GenerationResult c = s.generate(request.withSampling(sampling.withSeed(12)));
        assertArrayEquals(a.generatedIds(), b.generatedIds());
        assertEquals(a.text(), b.text());
        assertEquals(48, a.generatedIds().length);
        assertFalse(Arrays.equals(greedy, a.generatedIds()), "sampled the greedy path");
        assertFalse(Arrays.equals(a.generatedIds(), c.generatedIds()), "ignored the seed");
    }

    /** Every sampled token has probability > 0 under the target's processed distribution at its position. */
    @Test
    void sampledTokensStayInTheTargetsSupport() {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.5f).withTopK(3).withSeed(21);
        for (String p : List.of("KING HENRY VI:\nWhat", "Pierre")) {
            GenerationResult r = sixteenNodes(corpus).generate(GenerationRequest.of(p).withMaxTokens(40)
                    .withSampling(sampling).withEosTokenIds(List.of()));
            assertTrue(r.decodeStats().acceptedTokens() > 0, r.decodeStats().summary());
            int[] prompt = r.promptIds(), out = r.generatedIds();
            int[] all = Arrays.copyOf(prompt, prompt.length + out.length);
            System.arraycopy(out, 0, all, prompt.length, out.length);
            try (KvSequence kv = target.newSequence()) {
                ForwardResult fr = target.forward(Batch.of(Batch.Entry.continuationAllLogits(kv, Arrays.copyOf(all, all.length - 1))));
                for (int i = 0; i < out.length; i++) {
                    double[] q = Sampler.distribution(fr.logits(0, prompt.length - 1 + i), sampling, all, prompt.length + i);
                    assertTrue(q[out[i]] > 0, p + ": token " + i + " (" + out[i] + ") has probability 0 under the target");
                }
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
