package dev.tandem.decoding.beam;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.Hypothesis;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvReservation;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Beam search's KV blocks: what a request may hold bounds what it holds, every block comes back (200 requests,
 * cancellation), and in the engine a beam request among others gives its lone result.
 */
class BeamKvTest {
    static LanguageModel model;
    static KvCache cache;

    @BeforeAll
    static void load() {
        model = ModelLoader.load(TestModels.model("bard-s"));
        cache = model.kvCache();
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** A prompt of exactly {@code n} tokens (no BOS is added by the bard tokenizer). */
    static GenerationRequest promptOf(int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = 32 + (7 * i) % 90;
        }
        return GenerationRequest.ofIds(ids);
    }

    /**
     * Steps {@code task} alone over a reservation of exactly {@link DecodingTask#blocksNeeded} blocks (an
     * append beyond it fails), the prompt in chunks of 7 rows; returns the most blocks it held at once.
     */
    static int peakBlocks(DecodingTask task) {
        int need = task.blocksNeeded(model);
        int peak = 0;
        try (KvReservation r = cache.reserve(need)) {
            task.start(m -> r.newSequence());
            while (!task.finished()) {
                task.beginStep();
                DecodingTask.PrefillBudget budget = new DecodingTask.PrefillBudget(7);
                for (List<Batch.Entry> entries = task.next(model, budget); !entries.isEmpty(); entries = task.next(model, budget)) {
                    task.advance(model, model.forward(Batch.of(entries)), 0);
                    peak = Math.max(peak, r.charged());
                }
                task.endStep();
            }
        }
        return peak;
    }

    @Test
    void blocksNeededBoundsWhatTheBeamsHold() {
        int block = cache.blockSize();
        int free = cache.freeBlocks();
        int tight = 0;
        for (int promptLength : new int[] {1, block - 1, block, block + 1, 2 * block + 5}) {
            for (BeamParams p : List.of(BeamParams.beam(2), BeamParams.beam(4), BeamParams.diverse(4, 2), BeamParams.diverse(6, 3))) {
                for (int maxTokens : new int[] {1, block / 2, block + 3}) {
                    GenerationRequest r = promptOf(promptLength).withMaxTokens(maxTokens).withEosTokenIds(List.of());
                    DecodingTask task = new BeamSearch(model, p).task(r);
                    int need = task.blocksNeeded(model);
                    int peak = peakBlocks(task);
                    String what = "prompt " + promptLength + ", " + p + ", max tokens " + maxTokens;
                    assertTrue(peak <= need, what + ": held " + peak + " of " + need);
                    tight += peak == need ? 1 : 0;
                    assertEquals(free, cache.freeBlocks(), what + ": every block returned");
                }
            }
        }
        assertTrue(tight > 10, "the bound is reached: " + tight);
    }

    @Test
    void everyBlockComesBackAfter200Requests() {
        assertEquals(cache.numBlocks(), cache.freeBlocks(), "nothing else holds blocks");
        String[] prompts = {"ROMEO:", "First Citizen:\nBefore we proceed any further, hear me speak.", "O", "KING HENRY VI:\nWhat"};
        List<GenerationRequest> requests = new ArrayList<>();
        List<DecodingStrategy> methods = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            int beams = 1 + i % 4;
            BeamParams p = i % 8 == 3 ? BeamParams.diverse(4, 2) : BeamParams.beam(beams).withNBest(beams);
            methods.add(new BeamSearch(model, p));
            GenerationRequest r = GenerationRequest.of(prompts[i % prompts.length]).withMaxTokens(2 + i % 5);
            requests.add(i % 3 == 0 ? r.withEosTokenIds(List.of(BeamSearchTest.NEWLINE)) : r);
        }
        try (Engine engine = new Engine(model, Engine.Options.defaults().withMaxRunning(24).withMaxPrefillTokensPerStep(9))) {
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                handles.add(engine.submit(requests.get(i), methods.get(i), null));
            }
            for (EngineHandle h : handles) {
                assertTrue(h.result().generatedIds().length > 0);
            }
        }
        assertEquals(cache.numBlocks(), cache.freeBlocks(), "the KV pool is full again");
    }

    @Test
    void cancellingABeamRequestFreesItsBlocks() {
        int free = cache.freeBlocks();
        try (Engine engine = new Engine(model)) {
            BeamSearch beam = new BeamSearch(model, BeamParams.beam(4).withNBest(4));
            EngineHandle h = engine.submit(GenerationRequest.of("ROMEO:").withMaxTokens(200).withEosTokenIds(List.of()), beam,
                    e -> { });
            while (engine.stats().steps() < 5) {
                Thread.onSpinWait();
            }
            h.cancel();
            GenerationResult r = h.result();
            assertEquals(FinishReason.CANCELLED, r.finishReason());
            assertTrue(r.generatedIds().length > 0 && r.generatedIds().length < 200);
            assertEquals(r.generatedIds().length, r.logprobs().size());
            assertTrue(r.hypotheses().isEmpty());
        }
        assertEquals(free, cache.freeBlocks());
    }

    @Test
    void beamRequestsAmongOthersGiveTheirLoneResults() {
        String[] prompts = {"ROMEO:", "First Citizen:\nBefore we proceed any further, hear me speak.", "O", "KING HENRY VI:\nWhat",
                "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?"};
        Generator plain = new Generator(model);
        List<GenerationRequest> requests = new ArrayList<>();
        List<DecodingStrategy> methods = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            GenerationRequest r = GenerationRequest.of(prompts[i % prompts.length]).withMaxTokens(8 + i).withLogprobs(i % 3);
            if (i % 2 == 0) {
                requests.add(r.withSampling(new SamplingParams(0.8f, 30, 0.95f, 0, 1.1f, 7)).withStreamId(i));
                methods.add(plain);
            } else {
                BeamParams p = switch (i) {
                    case 1 -> BeamParams.beam(1);
                    case 3, 7 -> BeamParams.diverse(4, 2).withNBest(3);
                    case 5 -> BeamParams.beam(3).withNBest(3).withLengthPenalty(0.6);
                    default -> BeamParams.beam(4).withNBest(2).withLengthPenalty(1.4);
                };
                requests.add(i == 5 ? r.withEosTokenIds(List.of(BeamSearchTest.NEWLINE)) : r);
                methods.add(new BeamSearch(model, p));
            }
        }
        List<GenerationResult> alone = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            alone.add(methods.get(i).generate(requests.get(i)));
        }
        int free = cache.freeBlocks();
        try (Engine engine = new Engine(model, Engine.Options.defaults().withMaxPrefillTokensPerStep(5))) {
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                handles.add(engine.submit(requests.get(i), methods.get(i), null));
            }
            for (int i = 0; i < requests.size(); i++) {
                GenerationResult expected = alone.get(i);
                GenerationResult actual = handles.get(i).result();
                String what = "request " + i + " (" + methods.get(i).name() + ")";
                BeamSearchTest.assertSameOutput(expected, actual, what);
                assertEquals(expected.hypotheses().size(), actual.hypotheses().size(), what);
                for (int j = 0; j < expected.hypotheses().size(); j++) {
                    Hypothesis e = expected.hypotheses().get(j);
                    Hypothesis a = actual.hypotheses().get(j);
                    assertArrayEquals(e.generatedIds(), a.generatedIds(), what);
                    assertEquals(e.text(), a.text(), what);
                    assertEquals(e.score(), a.score(), what + " (bit for bit)");
                    assertEquals(e.logprob(), a.logprob(), what);
                    assertEquals(e.finishReason(), a.finishReason(), what);
                    assertEquals(e.group(), a.group(), what);
                }
            }
        }
        assertEquals(free, cache.freeBlocks(), "every block returned");
    }
}
