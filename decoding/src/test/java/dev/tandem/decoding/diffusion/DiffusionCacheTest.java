package dev.tandem.decoding.diffusion;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fast-dLLM's caches as Tandem builds them: a pass that feeds only the block and what follows it (prefix cache), or
 * only the block (dual cache), over the keys and values the block's full pass left, computes what the full pass
 * computed when no token changed in between — bit for bit with the prefix cache (the same rows in the same logical
 * order), within rounding with the dual cache (the suffix's rows sit before the block's in the cache). So what a
 * cache changes in a run (its drift, which the diffusion bench reports) comes from the tokens committed since the
 * refresh, not from the mechanics. And cached runs still fill every position once, in as many passes.
 */
class DiffusionCacheTest {

    @Test
    void aCachedPassOverAnUnchangedCanvasIsTheFullPass() throws IOException {
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-dlm"))) {
            int[] prompt = model.tokenizer().encode("KING HENRY VI:\nWhat");
            int gen = 24, block = 8;
            int[] seq = Arrays.copyOf(prompt, prompt.length + gen);
            Arrays.fill(seq, prompt.length, seq.length, 2048);
            seq[prompt.length + 1] = 10; // some committed tokens in the first block
            seq[prompt.length + 4] = 44;
            int from = prompt.length + block; // the second block is current
            int to = from + block;
            int[] all = new int[seq.length];
            Arrays.setAll(all, i -> i);
            try (KvSequence kv = model.newSequence()) {
                float[][] full = logits(model.forward(Batch.of(Batch.Entry.of(kv, seq, all, AttentionShape.BIDIRECTIONAL)
                        .withLogitRows(range(from, to)))), block);
                // Prefix cache: keep [0, from), feed [from, L).
                kv.truncate(from);
                float[][] prefix = logits(model.forward(Batch.of(Batch.Entry.of(kv, Arrays.copyOfRange(seq, from, seq.length),
                        range(from, seq.length), AttentionShape.BIDIRECTIONAL).withLogitRows(range(0, block)))), block);
                for (int i = 0; i < block; i++) {
                    assertArrayEquals(full[i], prefix[i], "prefix cache, row " + (from + i));
                }
            }
            try (KvSequence kv = model.newSequence()) {
                float[][] full = logits(model.forward(Batch.of(Batch.Entry.of(kv, seq, all, AttentionShape.BIDIRECTIONAL)
                        .withLogitRows(range(from, to)))), block);
                // Dual cache: keep [0, from) and [to, L), feed [from, to).
                kv.compact(from, range(to, seq.length));
                assertEquals(seq.length - block, kv.length());
                float[][] dual = logits(model.forward(Batch.of(Batch.Entry.of(kv, Arrays.copyOfRange(seq, from, to), range(from, to),
                        AttentionShape.BIDIRECTIONAL).withLogitRows(range(0, block)))), block);
                for (int i = 0; i < block; i++) {
                    double max = 0;
                    for (int t = 0; t < full[i].length; t++) {
                        max = Math.max(max, Math.abs(full[i][t] - dual[i][t]));
                    }
                    assertTrue(max <= 1e-4, "dual cache, row " + (from + i) + ": max |difference| " + max);
                }
            }
        }
    }

    @Test
    void cachedRunsFillEveryPositionOnceInAsManyPasses() throws IOException {
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-dlm"))) {
            DiffusionParams base = DiffusionParams.lowConfidence(24).withBlockLength(8);
            GenerationRequest request = GenerationRequest.of("ROMEO:");
            DiffusionDecoding.Traced exact = new DiffusionDecoding(model, base).generateTraced(request, e -> {});
            for (DiffusionCache cache : new DiffusionCache[] {DiffusionCache.PREFIX, DiffusionCache.DUAL}) {
                DiffusionDecoding.Traced run = new DiffusionDecoding(model, base.withCache(cache)).generateTraced(request, e -> {});
                assertEquals(exact.trace().size(), run.trace().size(), cache + ": passes");
                boolean[] seen = new boolean[24];
                for (int[][] step : run.trace()) {
                    for (int[] pair : step) {
                        int i = pair[0] - run.result().promptIds().length;
                        assertTrue(!seen[i], cache + ": position committed twice");
                        seen[i] = true;
                    }
                }
                assertArrayEquals(exact.trace().getFirst()[0], run.trace().getFirst()[0], cache + ": the first pass is a full one");
                assertEquals(0, model.kvCache().usedBlocks(), cache + ": blocks freed");
            }
        }
    }

    private static float[][] logits(ForwardResult r, int n) {
        float[][] out = new float[n][];
        for (int i = 0; i < n; i++) {
            out[i] = r.logits(0, i);
        }
        return out;
    }

    private static int[] range(int from, int to) {
        int[] out = new int[to - from];
        Arrays.setAll(out, i -> from + i);
        return out;
    }
}
