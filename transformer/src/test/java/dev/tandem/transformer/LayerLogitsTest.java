package dev.tandem.transformer;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static dev.tandem.transformer.AttentionShapesTest.assertBitIdentical;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * {@link Batch.Entry#withLayerLogits} and {@link Batch.Entry#withLayerLogitsInto}: a decoder layer's output through the
 * final norm and the LM head, on the model's backend. The last layer's are the ordinary logits bit for bit; a lower
 * layer's equal its hidden state ({@link Batch.Entry#withHiddenStates}) through the checkpoint's norm and head on the
 * host in double ({@link HostHead}) within 1e-5; a row's layer logits do not depend on what else the pass asks; bad
 * layers are refused before any cache is touched. On the CPU backend and on CUDA (the host build in every build, a GPU
 * where present), on bard-l (6 layers).
 */
class LayerLogitsTest {
    static final String PROMPT = "KING HENRY VI:\nWhat";

    private static Backend open(String which) {
        return which.equals("cpu") ? new CpuBackend(2) : CudaTestBackends.open(which);
    }

    private static int[] allLayers(LanguageModel model) {
        int[] layers = new int[model.config().numLayers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = l;
        }
        return layers;
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", CudaTestBackends.HOST, CudaTestBackends.GPU})
    void theLastLayersLogitsAreTheOrdinaryLogitsAndLowerOnesTheirHiddenStateThroughNormAndHead(String which) {
        try (Backend backend = open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend));
             HostHead host = HostHead.of(TestModels.model("bard-l"))) {
            int n = model.config().numLayers();
            int[] ids = model.tokenizer().encode(PROMPT);
            int[] layers = allLayers(model);
            int[] hiddenLayers = new int[n];
            for (int l = 0; l < n; l++) {
                hiddenLayers[l] = l + 1; // the output of 0-based decoder layer l
            }
            for (int row : new int[] {ids.length - 1, 1}) {
                try (KvSequence seq = model.newSequence()) {
                    ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(seq, ids)
                            .withHiddenStates(hiddenLayers, row).withLayerLogits(layers, row)));
                    assertArrayEquals(layers, r.layerLogitLayers(0));
                    assertBitIdentical(r.logits(0, row), r.layerLogits(0, n - 1), which + " row " + row + ": the last layer's logits");
                    for (int l = 0; l < n; l++) {
                        double[] expected = host.logits(r.hiddenState(0, l + 1, 0));
                        float[] got = r.layerLogits(0, l);
                        for (int t = 0; t < expected.length; t++) {
                            assertEquals(expected[t], got[t], 1e-5 * Math.max(1, Math.abs(expected[t])),
                                    which + " row " + row + " layer " + l + " token " + t);
                        }
                    }
                }
            }
        }
    }

    /**
     * A row's layer logits, returned or kept on the backend, are the same bits whatever else the pass holds: other
     * entries asking for other layers, ordinary, greedy, kept and normed rows.
     */
    @ParameterizedTest
    @ValueSource(strings = {"cpu", CudaTestBackends.HOST, CudaTestBackends.GPU})
    void layerLogitsDoNotDependOnWhatElseThePassAsks(String which) {
        try (Backend backend = open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend))) {
            int vocab = model.config().vocabSize();
            int[] ids = model.tokenizer().encode(PROMPT);
            int[] other = model.tokenizer().encode("ROMEO:\nBut soft");
            int last = ids.length - 1;
            float[] alone2;
            float[] alone5;
            try (KvSequence seq = model.newSequence()) {
                ForwardResult r = model.forward(Batch.of(Batch.Entry.continuation(seq, ids).withLayerLogits(new int[] {2, 5}, last)));
                assertEquals(1, r.rows(0), "the ordinary logit row is still there");
                alone2 = r.layerLogits(0, 2);
                alone5 = r.layerLogits(0, 5);
                assertBitIdentical(r.lastLogits(0), alone5, which + ": the last layer beside the ordinary row");
            }
            Tensor kept = backend.allocate(4, vocab);
            try (KvSequence a = model.newSequence(); KvSequence b = model.newSequence(); KvSequence c = model.newSequence()) {
                ForwardResult r = model.forward(Batch.of(
                        Batch.Entry.continuationAllLogits(a, other).withLayerLogits(new int[] {4, 2, 0}, 1).withNormedRows(0)
                                .withGreedyRows(2),
                        Batch.Entry.continuation(b, ids).withLogitRows().withLayerLogitsInto(kept, 1, new int[] {5, 2}, last)
                                .withLogitsInto(kept, 0, last),
                        Batch.Entry.continuation(c, ids).withLogitRows(0).withLayerLogits(new int[] {5, 2}, last)));
                assertBitIdentical(alone2, r.layerLogits(2, 2), which + ": layer 2 among other entries");
                assertBitIdentical(alone5, r.layerLogits(2, 5), which + ": layer 5 among other entries");
                float[][] rows = backend.readRows(kept, 0, 3);
                assertBitIdentical(alone5, rows[0], which + ": the kept ordinary row");
                assertBitIdentical(alone5, rows[1], which + ": the kept last layer");
                assertBitIdentical(alone2, rows[2], which + ": the kept layer 2");
                assertEquals(0, r.layerLogitLayers(1).length, "kept layer logits do not come back");
                assertArrayEquals(new int[] {4, 2, 0}, r.layerLogitLayers(0));
                assertEquals(1, r.normedRows(0));
                assertEquals(TestModels.argmax(r.logits(0, 2)), r.greedyToken(0, 0));
                assertThrows(IllegalArgumentException.class, () -> r.layerLogits(0, 5));
            } finally {
                backend.free(kept);
            }
        }
    }

    @Test
    void badLayersAreRefusedWithOneSentenceBeforeAnyCacheIsTouched() {
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-l")); KvSequence seq = model.newSequence()) {
            Batch.Entry entry = Batch.Entry.continuation(seq, 5, 6, 7);
            IllegalArgumentException past = assertThrows(IllegalArgumentException.class,
                    () -> model.forward(Batch.of(entry.withLayerLogits(new int[] {2, 6}, 2))));
            assertEquals("decoder layer 6 is past the 6 decoder layers of the model in " + model.directory()
                    + " (they count from 0: 0 to 5).", past.getMessage());
            assertEquals(0, seq.length(), "a refused batch leaves the sequence as it was");
            assertEquals("layer -1 is negative; decoder layers count from 0",
                    assertThrows(IllegalArgumentException.class, () -> entry.withLayerLogits(new int[] {-1}, 0)).getMessage());
            assertEquals("layer 3 is asked for twice",
                    assertThrows(IllegalArgumentException.class, () -> entry.withLayerLogits(new int[] {3, 1, 3}, 0)).getMessage());
            assertEquals("layer logits need at least one layer",
                    assertThrows(IllegalArgumentException.class, () -> entry.withLayerLogits(new int[0], 0)).getMessage());
            assertEquals("layer-logit row 3 is outside the entry's 3 rows",
                    assertThrows(IllegalArgumentException.class, () -> entry.withLayerLogits(new int[] {1}, 3)).getMessage());
            Tensor small = model.backend().allocate(1, model.config().vocabSize());
            try {
                assertThrows(IllegalArgumentException.class, () -> entry.withLayerLogitsInto(small, 0, new int[] {1, 2}, 0));
                Tensor narrow = model.backend().allocate(2, 7);
                try {
                    assertThrows(IllegalArgumentException.class,
                            () -> model.forward(Batch.of(entry.withLayerLogitsInto(narrow, 0, new int[] {1}, 0))));
                } finally {
                    model.backend().free(narrow);
                }
            } finally {
                model.backend().free(small);
            }
            assertEquals(0, seq.length());
        }
    }
}
