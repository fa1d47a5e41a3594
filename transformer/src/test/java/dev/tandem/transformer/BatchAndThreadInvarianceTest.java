package dev.tandem.transformer;

import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * A row's logits do not depend on which other rows share the forward pass, nor on the thread count:
 * compared bit for bit on bard-l.
 */
class BatchAndThreadInvarianceTest {
    private static final String[] PROMPTS = {
            "ROMEO:", "First Citizen:\nBefore we proceed any further, hear me speak.", "KING HENRY VI:\nWhat",
            "Pierre looked at the", "O, "};

    /** Prefill each prompt alone, then decode 6 greedy steps alone; returns all logits rows in order. */
    private static List<float[]> alone(LanguageModel model, String prompt) {
        List<float[]> rows = new ArrayList<>();
        try (KvSequence seq = model.newSequence()) {
            int[] ids = model.tokenizer().encode(prompt);
            var r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(seq, ids)));
            for (int i = 0; i < r.rows(0); i++) {
                rows.add(r.logits(0, i));
            }
            for (int step = 0; step < 6; step++) {
                int next = TestModels.argmax(rows.getLast());
                rows.add(model.forward(Batch.of(Batch.Entry.continuation(seq, next))).lastLogits(0));
            }
        }
        return rows;
    }

    /** The same computation with all prompts sharing every forward pass. */
    private static List<List<float[]>> together(LanguageModel model) {
        List<List<float[]>> rows = new ArrayList<>();
        List<KvSequence> seqs = new ArrayList<>();
        try {
            List<Batch.Entry> prefill = new ArrayList<>();
            for (String p : PROMPTS) {
                KvSequence s = model.newSequence();
                seqs.add(s);
                prefill.add(Batch.Entry.continuationAllLogits(s, model.tokenizer().encode(p)));
                rows.add(new ArrayList<>());
            }
            var r = model.forward(Batch.of(prefill));
            for (int e = 0; e < PROMPTS.length; e++) {
                for (int i = 0; i < r.rows(e); i++) {
                    rows.get(e).add(r.logits(e, i));
                }
            }
            for (int step = 0; step < 6; step++) {
                List<Batch.Entry> decode = new ArrayList<>();
                for (int e = 0; e < PROMPTS.length; e++) {
                    decode.add(Batch.Entry.continuation(seqs.get(e), TestModels.argmax(rows.get(e).getLast())));
                }
                var d = model.forward(Batch.of(decode));
                for (int e = 0; e < PROMPTS.length; e++) {
                    rows.get(e).add(d.lastLogits(e));
                }
            }
        } finally {
            seqs.forEach(KvSequence::close);
        }
        return rows;
    }

    private static void assertBitIdentical(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size(), what);
        for (int i = 0; i < expected.size(); i++) {
            float[] a = expected.get(i), b = actual.get(i);
            for (int j = 0; j < a.length; j++) {
                if (Float.floatToRawIntBits(a[j]) != Float.floatToRawIntBits(b[j])) {
                    throw new AssertionError(what + ": row " + i + " logit " + j + " differs: " + a[j] + " vs " + b[j]);
                }
            }
        }
    }

    @Test
    void logitsAreBitIdenticalWhateverTheBatchAndThreadCount() {
        int n = Math.max(3, Runtime.getRuntime().availableProcessors());
        List<List<float[]>> reference = new ArrayList<>();
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withThreads(1))) {
            for (String p : PROMPTS) {
                reference.add(alone(model, p));
            }
            List<List<float[]>> batched = together(model);
            for (int e = 0; e < PROMPTS.length; e++) {
                assertBitIdentical(reference.get(e), batched.get(e), "1 thread, batched vs alone, prompt " + e);
            }
        }
        for (int threads : new int[] {2, n}) {
            try (LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withThreads(threads))) {
                List<List<float[]>> batched = together(model);
                for (int e = 0; e < PROMPTS.length; e++) {
                    assertBitIdentical(reference.get(e), alone(model, PROMPTS[e]), threads + " threads alone, prompt " + e);
                    assertBitIdentical(reference.get(e), batched.get(e), threads + " threads batched, prompt " + e);
                }
            }
        }
    }
}
