package dev.tandem.transformer;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code Batch.Entry.withGreedyRows}: the greedy token of a row comes back without its logits and is the
 * argmax of the logits the same row gives when asked for them (lowest id on ties), beside logit and normed
 * rows of the same pass; a row with no greedy token (here: NaN logits from a NaN embedding) gives -1 and its
 * logits. On the CPU backend and on CUDA (the host build in every build, a GPU where present).
 */
class GreedyRowsTest {

    private static Backend open(String which) {
        return which.equals("cpu") ? new CpuBackend(2) : CudaTestBackends.open(which);
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", CudaTestBackends.HOST, CudaTestBackends.GPU})
    void greedyTokensAreTheArgmaxOfTheSameRowsLogits(String which) {
        try (Backend backend = open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(backend))) {
            int[] a = model.tokenizer().encode("ROMEO:\nWhat light through");
            int[] b = model.tokenizer().encode("JULIET:\nO");
            float[][] logitsA, logitsB;
            try (KvSequence sa = model.newSequence(); KvSequence sb = model.newSequence()) {
                ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(sa, a), Batch.Entry.continuationAllLogits(sb, b)));
                logitsA = rows(r, 0, a.length);
                logitsB = rows(r, 1, b.length);
            }
            try (KvSequence sa = model.newSequence(); KvSequence sb = model.newSequence()) {
                int[] greedyA = {a.length - 1, 0, 2};
                ForwardResult r = model.forward(Batch.of(
                        Batch.Entry.continuation(sa, a).withLogitRows(1).withGreedyRows(greedyA).withNormedRows(0),
                        Batch.Entry.continuation(sb, b).withLogitRows().withGreedyRows(b.length - 1)));
                assertEquals(3, r.greedyRows(0));
                for (int k = 0; k < greedyA.length; k++) {
                    assertEquals(TestModels.argmax(logitsA[greedyA[k]]), r.greedyToken(0, k), "entry 0 greedy row " + k);
                    assertNull(r.greedyRowLogits(0, k));
                }
                assertEquals(TestModels.argmax(logitsB[b.length - 1]), r.greedyToken(1, 0));
                assertArrayEquals(logitsA[1], r.logits(0, 0), "a logit row beside greedy rows is unchanged");
                assertEquals(0, r.rows(1));
                assertEquals(1, r.normedRows(0));
            }
            try (KvSequence s = model.newSequence()) {
                float[] nan = new float[model.config().hiddenSize()];
                Arrays.fill(nan, Float.NaN);
                ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationOfEmbeddings(s, new float[][] {nan})
                        .withLogitRows().withGreedyRows(0)));
                assertEquals(-1, r.greedyToken(0, 0), "NaN logits have no greedy token");
                float[] row = r.greedyRowLogits(0, 0);
                assertNotNull(row);
                assertTrue(Float.isNaN(row[0]), "the row comes back so the caller can say why");
            }
        }
    }

    /**
     * {@code withSummaryRows}: each summary equals {@link LogitSummary#of} on the logits the same row gives when
     * asked for them (ids and values exactly; the sums to rounding where the backend adds in another order),
     * each entry keeping its own k, beside greedy and logit rows of the same pass.
     */
    @ParameterizedTest
    @ValueSource(strings = {"cpu", CudaTestBackends.HOST, CudaTestBackends.GPU})
    void summariesAreThoseOfTheSameRowsLogits(String which) {
        try (Backend backend = open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(backend))) {
            int[] a = model.tokenizer().encode("ROMEO:\nWhat light through");
            int[] b = model.tokenizer().encode("JULIET:\nO");
            float[][] logitsA, logitsB;
            try (KvSequence sa = model.newSequence(); KvSequence sb = model.newSequence()) {
                ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(sa, a), Batch.Entry.continuationAllLogits(sb, b)));
                logitsA = rows(r, 0, a.length);
                logitsB = rows(r, 1, b.length);
            }
            try (KvSequence sa = model.newSequence(); KvSequence sb = model.newSequence()) {
                int[] summaryA = {a.length - 1, 0, 3};
                ForwardResult r = model.forward(Batch.of(
                        Batch.Entry.continuation(sa, a).withLogitRows(1).withGreedyRows(2).withSummaryRows(5, summaryA),
                        Batch.Entry.continuation(sb, b).withLogitRows().withSummaryRows(2, b.length - 1)));
                assertEquals(3, r.summaryRows(0));
                for (int k = 0; k < summaryA.length; k++) {
                    assertSameSummary(LogitSummary.of(logitsA[summaryA[k]], 5), r.summary(0, k), which + " entry 0 row " + k);
                }
                assertEquals(1, r.summaryRows(1));
                assertSameSummary(LogitSummary.of(logitsB[b.length - 1], 2), r.summary(1, 0), which + " entry 1");
                assertEquals(TestModels.argmax(logitsA[2]), r.greedyToken(0, 0));
                assertArrayEquals(logitsA[1], r.logits(0, 0), "a logit row beside summary rows is unchanged");
            }
            try (KvSequence s = model.newSequence()) {
                assertThrows(IllegalArgumentException.class, () -> Batch.Entry.continuation(s, 1, 2).withSummaryRows(0, 1));
                assertThrows(IllegalArgumentException.class,
                        () -> Batch.Entry.continuation(s, 1, 2).withSummaryRows(LogitSummary.MAX_K + 1, 1));
            }
        }
    }

    private static void assertSameSummary(LogitSummary expected, LogitSummary got, String where) {
        assertArrayEquals(expected.ids(), got.ids(), where + ": ids");
        assertArrayEquals(expected.values(), got.values(), where + ": values");
        assertEquals(expected.z(), got.z(), 1e-12 * expected.z(), where + ": z");
        assertEquals(expected.weighted(), got.weighted(), 1e-12 * expected.z(), where + ": weighted");
    }

    private static float[][] rows(ForwardResult r, int entry, int n) {
        float[][] out = new float[n][];
        for (int k = 0; k < n; k++) {
            out[k] = r.logits(entry, k);
        }
        return out;
    }
}
