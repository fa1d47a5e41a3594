package dev.tandem.decoding;

import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.AdedDecoding;
import dev.tandem.decoding.speculative.TreeDecoding;
import dev.tandem.decoding.speculative.TrigramTable;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tree methods (tree, aded) as step machines: requests stepped together ({@link StepExecutor#step}) with a
 * small prefill budget, so that prompts go in chunks and passes are shared, give exactly what each gives alone.
 */
class TreeStepsTest {
    /** Prompt rows per model per step: every prompt below is longer, so each is prefilled in chunks. */
    private static final int BUDGET = 7;
    private static final String GREEDY_PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak.";
    private static final String SAMPLED_PROMPT = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?";

    private static LanguageModel target;
    private static LanguageModel small;
    private static TrigramTable corpus;

    @BeforeAll
    static void load() throws Exception {
        target = ModelLoader.load(TestModels.model("bard-l"));
        small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(target.backend()));
        corpus = TrigramTable.fromCorpus(target.tokenizer(),
                Path.of(TreeStepsTest.class.getResource("/corpus/excerpt.txt").toURI()));
    }

    @AfterAll
    static void close() {
        small.close();
        target.close();
    }

    private static List<GenerationRequest> greedyAndSampled() {
        return List.of(GenerationRequest.of(GREEDY_PROMPT).withMaxTokens(40).withEosTokenIds(List.of()).withLogprobs(2),
                GenerationRequest.of(SAMPLED_PROMPT).withMaxTokens(36).withEosTokenIds(List.of())
                        .withSampling(new SamplingParams(0.9f, 40, 0.95f, 0.01f, 1.1f, 1234)).withStreamId(7));
    }

    private static AdedDecoding aded() {
        return new AdedDecoding(target, corpus, AdedDecoding.DEFAULT_ITERATIONS, AdedDecoding.DEFAULT_MAX_DEPTH, 16);
    }

    @Test
    void treeRequestsSteppedTogetherGiveWhatEachGivesAlone() {
        for (TreeDecoding tree : List.of(TreeDecoding.of(target, small), new TreeDecoding(target, small, 10, 2, 5))) {
            assertTogetherEqualsAlone(List.of(tree, tree), greedyAndSampled());
        }
    }

    @Test
    void adedRequestsSteppedTogetherGiveWhatEachGivesAlone() {
        assertTogetherEqualsAlone(List.of(aded(), aded()), greedyAndSampled());
    }

    /** A tree request (target and draft passes) and an ADED request (target passes only) share the target's passes. */
    @Test
    void treeAndAdedRequestsSteppedTogetherGiveWhatEachGivesAlone() {
        List<GenerationRequest> requests = greedyAndSampled();
        assertTogetherEqualsAlone(List.of(TreeDecoding.of(target, small), aded()), requests);
        assertTogetherEqualsAlone(List.of(aded(), TreeDecoding.of(target, small)), requests);
    }

    /** Request i by strategy i, alone and then all stepped together. */
    private static void assertTogetherEqualsAlone(List<DecodingStrategy> strategies, List<GenerationRequest> requests) {
        List<GenerationResult> alone = new ArrayList<>();
        List<DecodingTask> tasks = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            alone.add(strategies.get(i).generate(requests.get(i)));
        }
        int targetFree = target.kvCache().freeBlocks();
        int smallFree = small.kvCache().freeBlocks();
        for (int i = 0; i < requests.size(); i++) {
            tasks.add(strategies.get(i).task(requests.get(i)));
        }
        Map<DecodingTask, List<TokenEvent>> events = new IdentityHashMap<>();
        for (DecodingTask t : tasks) {
            t.start(DecodingTask.KvSource.MODEL);
            events.put(t, new ArrayList<>());
        }
        int steps = 0;
        while (tasks.stream().anyMatch(t -> !t.finished())) {
            List<DecodingTask> live = tasks.stream().filter(t -> !t.finished()).toList();
            Map<DecodingTask, StepExecutor.Outcome> outcomes = StepExecutor.step(live, BUDGET);
            for (DecodingTask t : live) {
                StepExecutor.Outcome o = outcomes.get(t);
                if (o.failed()) {
                    throw new AssertionError(t.method() + " failed in step " + steps, o.failure());
                }
                events.get(t).addAll(o.events());
            }
            steps++;
        }
        for (int i = 0; i < tasks.size(); i++) {
            String where = strategies.get(i).name() + " request " + i;
            GenerationResult expected = alone.get(i);
            GenerationResult actual = tasks.get(i).result();
            assertArrayEquals(expected.generatedIds(), actual.generatedIds(), where);
            assertEquals(expected.text(), actual.text(), where);
            assertEquals(expected.finishReason(), actual.finishReason(), where);
            assertEquals(expected.logprobs(), actual.logprobs(), where);
            assertEquals(expected.logprobs(), events.get(tasks.get(i)), where + ": the steps' events");
            // The same rounds; only the pass counts differ, by the prompt's chunks.
            DecodeStats a = expected.decodeStats();
            DecodeStats b = actual.decodeStats();
            assertEquals(List.of(a.verifications(), a.draftedTokens(), a.acceptedTokens()),
                    List.of(b.verifications(), b.draftedTokens(), b.acceptedTokens()), where);
            assertEquals(a.acceptedHistogram(), b.acceptedHistogram(), where);
            assertTrue(b.targetForwardPasses() > a.targetForwardPasses(), where + ": the prompt went in chunks");
        }
        assertEquals(targetFree, target.kvCache().freeBlocks(), "every target block returned");
        assertEquals(smallFree, small.kvCache().freeBlocks(), "every draft block returned");
    }
}
