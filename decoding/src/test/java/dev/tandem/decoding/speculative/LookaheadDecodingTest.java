package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.StepsTogether;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.SpeculativeFixtures.Totals;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static dev.tandem.decoding.speculative.SpeculativeFixtures.request;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Lookahead decoding on bard-l: greedy equals plain greedy while drafts from the n-gram pool are accepted,
 * the cache keeps only the accepted path, the tree mask is the lookahead mask, edge cases, sampling.
 */
class LookaheadDecodingTest {
    /** Repeats itself: the pool has n-grams for it early. */
    static final String REPETITIVE = "ROMEO:\nI love thee. JULIET:\nI love thee. ROMEO:\nI love thee. JULIET:\nI";

    static LanguageModel target;
    static List<String> prompts;
    static List<GenerationResult> plain;

    @BeforeAll
    static void load() throws IOException {
        target = ModelLoader.load(TestModels.model("bard-l"));
        prompts = SpeculativeFixtures.goldenPromptsAnd(SpeculativeDecodingTest.MORE_PROMPTS);
        plain = SpeculativeFixtures.plainGreedy(target, prompts, SpeculativeFixtures::request);
    }

    @AfterAll
    static void close() {
        target.close();
    }

    static String label(LookaheadDecoding s) {
        return "W=" + s.window() + " N=" + s.ngram() + " G=" + s.candidates();
    }

    @Test
    void greedyIsIdenticalToPlainGreedyAndAcceptsDrafts() {
        for (LookaheadDecoding strategy : List.of(new LookaheadDecoding(target), new LookaheadDecoding(target, 3, 5, 2))) {
            assertEquals("lookahead", strategy.name());
            Totals t = SpeculativeFixtures.assertSameAsPlain(strategy, prompts, plain, SpeculativeFixtures::request,
                    label(strategy), (r, where) -> {
                        DecodeStats s = r.decodeStats();
                        assertTrue(s.acceptedHistogram().size() <= strategy.ngram(), where + ": " + s.summary());
                        assertTrue(s.draftedTokens() <= (long) s.verifications() * strategy.candidates() * (strategy.ngram() - 1),
                                where + ": " + s.summary());
                        // One pass per step, plus the prefill when the prompt has more than one token.
                        SpeculativeFixtures.assertOneTargetPassPerVerification(r, where);
                    });
            System.out.printf(Locale.ROOT, "lookahead %s on %d prompts: %d accepted of %d drafted trie nodes, mean accepted "
                            + "per verification %.3f, target passes per token %.3f%n", label(strategy), t.generations(),
                    t.accepted(), t.drafted(), t.meanAcceptedPerVerification(), t.targetPassesPerToken());
            assertTrue(t.accepted() > 0, label(strategy) + " never accepted a draft");
            assertTrue(t.verifications() < t.generated(), label(strategy) + " made a step per token");
        }
    }

    /**
     * Every row of a step's tree (the lookahead rows included) gets the logits, bit for bit, of a plain causal
     * pass over the context and its root-to-row chain, at the chain's positions: the tree is the lookahead mask.
     */
    @Test
    void everyRowMatchesItsAncestorChainRunCausally() {
        int[] checked = {0, 0};
        LookaheadDecoding.StepObserver check = step -> {
            if (checked[0]++ != 4) {
                return; // the fifth step: the window is full (3 levels) and the pool has n-grams
            }
            int length = step.context().length;
            int rows = step.tokens().length;
            assertTrue(rows > 1 + step.trieNodes(), "the step has lookahead rows");
            for (int r = 0; r < rows; r++) {
                List<Integer> chain = new ArrayList<>();
                for (int a = r; a >= 0; a = step.parents()[a]) {
                    chain.addFirst(step.tokens()[a]);
                }
                assertEquals(0, chainRoot(step.parents(), r), "row " + r + " hangs below the root");
                assertEquals(length - 2 + chain.size(), step.positions()[r], "position of row " + r);
                int[] all = Arrays.copyOf(step.context(), length - 1 + chain.size());
                for (int k = 0; k < chain.size(); k++) {
                    all[length - 1 + k] = chain.get(k);
                }
                try (KvSequence fresh = target.newSequence()) {
                    float[] expected = target.forward(Batch.of(Batch.Entry.continuation(fresh, all))).lastLogits(0);
                    SpeculativeFixtures.assertBitIdentical(expected, step.logits()[r], "row " + r + " of " + rows);
                }
                checked[1]++;
            }
        };
        new LookaheadDecoding(target).withObserver(check).generate(GenerationRequest.of(REPETITIVE).withMaxTokens(40)
                .withEosTokenIds(List.of()));
        assertTrue(checked[1] >= 15, "rows checked: " + checked[1]);
    }

    /**
     * The window of a step as levels of W cells, rebuilt from its rows (cell (0, 0) is the root), checking
     * the lookahead rows' parents: (0, c) below (0, c − 1), (j, c) below (j − 1, c).
     */
    private static int[][] windowRows(LookaheadDecoding.Step step, int window) {
        int first = 1 + step.trieNodes();
        int rows = step.tokens().length - first + 1; // with the root as (0, 0)
        assertEquals(0, rows % window, "lookahead rows plus the root fill whole levels");
        int[][] rowOf = new int[rows / window][window];
        int r = first;
        for (int j = 0; j < rowOf.length; j++) {
            for (int c = 0; c < window; c++) {
                if (j == 0 && c == 0) {
                    continue;
                }
                rowOf[j][c] = r;
                int expectedParent = j == 0 ? rowOf[0][c - 1] : rowOf[j - 1][c];
                assertEquals(expectedParent, step.parents()[r], "parent of cell (" + j + ", " + c + ")");
                r++;
            }
        }
        return rowOf;
    }

    /**
     * The lookahead branch is a Jacobi iteration: level 0 starts as the prompt's last W tokens, each step's new
     * level is the target's argmax at the newest level's cells, and a full window drops its oldest level.
     */
    @Test
    void theWindowFollowsTheJacobiUpdate() {
        LookaheadDecoding strategy = new LookaheadDecoding(target);
        int w = strategy.window(), levels = strategy.ngram() - 1;
        List<LookaheadDecoding.Step> steps = new ArrayList<>();
        GenerationResult r = strategy.withObserver(step -> {
            if (steps.size() < 7) {
                steps.add(new LookaheadDecoding.Step(step.context(), step.tokens(), step.parents(), step.positions(),
                        step.trieNodes(), step.logits(), step.accepted(), step.next(), null));
            }
        }).generate(GenerationRequest.of(REPETITIVE).withMaxTokens(40).withEosTokenIds(List.of()));
        int[] prompt = r.promptIds();
        int[][] rows0 = windowRows(steps.getFirst(), w);
        assertEquals(1, rows0.length, "the first step has one level");
        for (int c = 1; c < w; c++) {
            assertEquals(prompt[prompt.length - w + c], steps.getFirst().tokens()[rows0[0][c]], "first guess " + c);
        }
        for (int s = 0; s + 1 < steps.size(); s++) {
            LookaheadDecoding.Step now = steps.get(s), next = steps.get(s + 1);
            int[][] rowsNow = windowRows(now, w), rowsNext = windowRows(next, w);
            int had = rowsNow.length;
            assertEquals(Math.min(had + 1, levels), rowsNext.length, "levels at step " + (s + 1));
            for (int c = 0; c < w; c++) {
                int guess = Sampler.argmax(now.logits()[rowsNow[had - 1][c]]);
                assertEquals(guess, next.tokens()[rowsNext[rowsNext.length - 1][c]], "step " + (s + 1) + " new cell " + c);
            }
            int dropped = had == levels ? 1 : 0;
            for (int j = 0; j + 1 < rowsNext.length; j++) {
                for (int c = j == 0 ? 1 : 0; c < w; c++) {
                    assertEquals(now.tokens()[rowsNow[j + dropped][c]], next.tokens()[rowsNext[j][c]],
                            "step " + (s + 1) + " kept cell (" + j + ", " + c + ")");
                }
            }
        }
    }

    /**
     * A greedy and a sampled request stepped together (their prompts chunked 7 rows a step between them, so one
     * prefills while the other runs rounds) each give exactly the tokens, text and rounds they give alone.
     */
    @Test
    void twoRequestsSteppedTogetherGiveTheirLoneTokens() {
        LookaheadDecoding strategy = new LookaheadDecoding(target);
        List<GenerationRequest> requests = List.of(
                GenerationRequest.of(REPETITIVE).withMaxTokens(40).withEosTokenIds(List.of()),
                GenerationRequest.of("First Citizen:\nBefore we proceed any further, hear me speak.").withMaxTokens(30)
                        .withSampling(SamplingParams.greedy().withTemperature(0.9f).withTopK(20).withSeed(7))
                        .withEosTokenIds(List.of()));
        List<StepsTogether.Run> together = StepsTogether.run(requests.stream().map(strategy::task).toList(), 7);
        for (int i = 0; i < requests.size(); i++) {
            GenerationResult alone = strategy.generate(requests.get(i));
            GenerationResult r = together.get(i).result();
            String where = "request " + i;
            assertTrue(alone.promptIds().length > 7, where + ": the prompt is chunked");
            SpeculativeFixtures.assertSameOutputAsPlain(alone, r, where);
            assertEquals(alone.logprobs(), together.get(i).streamed(), where + ": the events the steps returned");
            DecodeStats a = alone.decodeStats(), t = r.decodeStats();
            assertEquals(a.verifications(), t.verifications(), where);
            assertEquals(a.draftedTokens(), t.draftedTokens(), where);
            assertEquals(a.acceptedHistogram(), t.acceptedHistogram(), where);
            assertTrue(a.acceptedTokens() > 0, where + ": no draft was accepted, " + a.summary());
        }
    }

    private static int chainRoot(int[] parents, int row) {
        int r = row;
        while (parents[r] >= 0) {
            r = parents[r];
        }
        return r;
    }

    /**
     * After every step the cache holds exactly the context with the accepted path, and continuing from it gives
     * the logits, bit for bit, of a fresh prefill of the same tokens (no lookahead row was left behind).
     */
    @Test
    void theCacheKeepsExactlyTheContextAndTheAcceptedPath() {
        int[] steps = {0, 0, 0};
        LookaheadDecoding.StepObserver check = step -> {
            steps[0]++;
            int[] kept = SpeculativeFixtures.concat(step.context(), step.accepted());
            assertEquals(kept.length, step.kv().length(), "cache length after step " + steps[0]);
            if (step.accepted().length > 0) {
                steps[2]++;
            }
            if (steps[0] % 4 != 1 && step.accepted().length == 0) {
                return; // a fresh prefill per step is slow; steps that accepted drafts and every fourth are enough
            }
            steps[1]++;
            SpeculativeFixtures.assertContinuesLikeAFreshPrefill(target, step.kv(), kept, step.next(), "step " + steps[0]);
        };
        GenerationResult r = new LookaheadDecoding(target).withObserver(check).generate(
                GenerationRequest.of(REPETITIVE).withMaxTokens(48).withEosTokenIds(List.of()));
        assertEquals(48, r.generatedIds().length);
        assertEquals(r.decodeStats().verifications(), steps[0]);
        assertTrue(steps[2] > 0, "no step accepted a draft: " + r.decodeStats().summary());
        assertTrue(steps[1] > 3, "steps checked against a fresh prefill: " + steps[1]);
    }

    @Test
    void maxTokensOneTwoThreeEqualPlain() {
        Generator generator = new Generator(target);
        for (String p : List.of("First Citizen:", REPETITIVE)) {
            for (int max = 1; max <= 3; max++) {
                GenerationRequest request = GenerationRequest.of(p).withMaxTokens(max).withEosTokenIds(List.of());
                GenerationResult expected = generator.generate(request);
                for (LookaheadDecoding s : List.of(new LookaheadDecoding(target), new LookaheadDecoding(target, 1, 2, 1))) {
                    SpeculativeFixtures.assertStopsAtMaxTokensLikePlain(s, request, expected, label(s) + " max " + max);
                }
            }
        }
    }

    /** Makes a token the EOS that lookahead emits as an accepted draft token (not a step's own), then checks the stop. */
    @Test
    void eosInsideAnAcceptedDraftEndsTheOutputThere() {
        GenerationRequest base = GenerationRequest.of(REPETITIVE).withMaxTokens(48).withEosTokenIds(List.of());
        int[] plainIds = new Generator(target).generate(base).generatedIds();
        // Which output indices lookahead emits as accepted draft tokens.
        List<Integer> fromDrafts = new ArrayList<>();
        int[] emitted = {0};
        LookaheadDecoding.StepObserver record = step -> {
            for (int i = 0; i < step.accepted().length; i++) {
                fromDrafts.add(emitted[0] + i);
            }
            emitted[0] += step.accepted().length + 1;
        };
        new LookaheadDecoding(target).withObserver(record).generate(base);
        int index = -1;
        for (int k : fromDrafts) {
            if (k > 0 && k < plainIds.length && SpeculativeFixtures.firstIndexOf(plainIds, plainIds[k]) == k) {
                index = k;
                break;
            }
        }
        assertTrue(index > 0, "no first occurrence among the accepted draft tokens " + fromDrafts + " of "
                + Arrays.toString(plainIds));
        int[] lastStep = {-1, -1}; // accepted, next
        LookaheadDecoding watched = new LookaheadDecoding(target).withObserver(step -> {
            lastStep[0] = step.accepted().length;
            lastStep[1] = step.next();
        });
        SpeculativeFixtures.assertEosEndsTheOutputThere(target, base, plainIds, index, List.of(watched),
                LookaheadDecodingTest::label);
        assertTrue(lastStep[0] > 0, "the last step accepted a draft");
    }

    @Test
    void stepsNeverRunPastTheRemainingContext() {
        // 0: one token; 3: too little room for the window (W + L − 2 ≥ 4), trie only; 9: both branches, then shrinking.
        for (int left : new int[] {0, 3, 9}) {
            GenerationRequest request = SpeculativeFixtures.leavingPositions(target, left);
            GenerationResult expected = SpeculativeFixtures.plainUpToTheContextEnd(target, request);
            SpeculativeFixtures.assertEndsAtTheContextLikePlain(new LookaheadDecoding(target), request, expected,
                    left + " positions left");
        }
    }

    @Test
    void greedyWithRepetitionPenaltyStopStringsAndLogprobsIsIdenticalToPlain() {
        SamplingParams penalty = SamplingParams.greedy().withRepetitionPenalty(1.3f);
        for (String p : List.of(REPETITIVE, "First Citizen:\nBefore we proceed")) {
            GenerationRequest req = request(p).withSampling(penalty).withLogprobs(2);
            SpeculativeFixtures.assertSameIdsAndLogprobsAsPlain(new LookaheadDecoding(target), req,
                    new Generator(target).generate(req), p);

            GenerationRequest stop = request(p).withStop(SpeculativeFixtures.STOPS);
            SpeculativeFixtures.assertSameOutputAsPlain(new Generator(target).generate(stop),
                    new LookaheadDecoding(target).generate(stop), p);
        }
    }

    @Test
    void samplingIsReproducibleFromTheSeed() {
        SpeculativeFixtures.assertSamplingIsReproducibleFromTheSeed(target, List.of(new LookaheadDecoding(target)),
                LookaheadDecodingTest::label);
    }

    /** Every sampled token has p > 0 under the processed distribution (temperature, top-k) at its own position. */
    @Test
    void sampledTokensHavePositiveProbability() {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.5f).withTopK(3).withSeed(21);
        for (String p : List.of(REPETITIVE, "KING HENRY VI:\nWhat")) {
            GenerationResult r = new LookaheadDecoding(target).generate(GenerationRequest.of(p).withMaxTokens(40)
                    .withSampling(sampling).withEosTokenIds(List.of()));
            int[] prompt = r.promptIds(), out = r.generatedIds(), all = SpeculativeFixtures.promptAndOutput(r);
            assertEquals(40, out.length);
            float[][] logits = SpeculativeFixtures.targetLogitsOfEachToken(target, r);
            for (int i = 0; i < out.length; i++) {
                double[] q = Sampler.distribution(logits[i], sampling, all, prompt.length + i);
                assertTrue(q[out[i]] > 0, p + ": token " + i + " (" + out[i] + ") has probability 0");
            }
        }
    }

    @Test
    void trieMergesSharedPrefixesAndRespectsDepthAndBudget() {
        List<int[]> grams = List.of(new int[] {5, 6, 7}, new int[] {5, 6, 8}, new int[] {9, 6, 7}, new int[] {5, 6, 7});
        TokenTree t = LookaheadDecoding.trie(grams, 3, 100);
        assertEquals(new TokenTree(new int[] {5, 6, 7, 8, 9, 6, 7}, new int[] {-1, 0, 1, 1, -1, 4, 5}), t);
        assertEquals(new TokenTree(new int[] {5, 6, 9, 6}, new int[] {-1, 0, -1, 2}), LookaheadDecoding.trie(grams, 2, 100));
        assertEquals(new TokenTree(new int[] {5, 6, 7, 8}, new int[] {-1, 0, 1, 1}), LookaheadDecoding.trie(grams, 3, 4));
        assertEquals(0, LookaheadDecoding.trie(grams, 0, 100).size());
        assertEquals(0, LookaheadDecoding.trie(grams, 3, 0).size());
    }

    @Test
    void badShapesAreRefusedWithASentence() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new LookaheadDecoding(target, 0, 4, 5));
        assertEquals("the lookahead window must hold at least 1 token, but was 0.", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new LookaheadDecoding(target, 5, 1, 5));
        assertEquals("the n-gram size must be at least 2, but was 1.", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new LookaheadDecoding(target, 5, 4, 0));
        assertEquals("lookahead must verify at least 1 candidate n-gram per step, but was 0.", e.getMessage());
    }
}
