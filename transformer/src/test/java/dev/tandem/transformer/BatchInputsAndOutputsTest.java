package dev.tandem.transformer;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.weights.WeightStore;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static dev.tandem.transformer.AttentionShapesTest.assertBitIdentical;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Embedding rows as input, hidden states and final normalised hidden states as output, on bard-l. */
class BatchInputsAndOutputsTest {
    private static LanguageModel model;
    private static WeightStore weights;

    @BeforeAll
    static void load() {
        model = ModelLoader.load(TestModels.model("bard-l"));
        weights = WeightStore.open(TestModels.model("bard-l"));
    }

    @AfterAll
    static void close() {
        weights.close();
        model.close();
    }

    private static float[][] embeddingsOf(int[] ids) {
        int d = model.config().hiddenSize();
        Tensor table = weights.get("model.embed_tokens.weight", model.config().vocabSize(), d);
        float[][] rows = new float[ids.length][d];
        for (int i = 0; i < ids.length; i++) {
            for (int j = 0; j < d; j++) {
                rows[i][j] = table.getFloat((long) ids[i] * d + j);
            }
        }
        return rows;
    }

    @Test
    void aPromptsOwnEmbeddingRowsGiveTheSameLogitsAsItsIdsBitForBit() {
        int[] ids = model.tokenizer().encode("First Citizen:\nBefore we proceed any further, hear me speak.");
        int[] other = model.tokenizer().encode("ROMEO:");
        try (KvSequence byIds = model.newSequence(); KvSequence byVectors = model.newSequence();
             KvSequence mixed = model.newSequence()) {
            ForwardResult a = model.forward(Batch.of(Batch.Entry.continuationAllLogits(byIds, ids)));
            // The embedding entry shares its pass with a token entry.
            ForwardResult b = model.forward(Batch.of(
                    Batch.Entry.continuation(mixed, other),
                    Batch.Entry.continuationOfEmbeddings(byVectors, embeddingsOf(ids)).withAllLogits()));
            for (int i = 0; i < ids.length; i++) {
                assertBitIdentical(a.logits(0, i), b.logits(1, i), "row " + i);
            }
            // Decoding on from the embedding-fed cache continues exactly as from the id-fed one.
            int next = TestModels.argmax(a.lastLogits(0));
            assertBitIdentical(model.forward(Batch.of(Batch.Entry.continuation(byIds, next))).lastLogits(0),
                    model.forward(Batch.of(Batch.Entry.continuation(byVectors, next))).lastLogits(0), "decode step");
        }
    }

    /** Rows of width {@code d} that are no token's embedding: they must reach layer 0 as given. */
    private static float[][] randomRows(SplittableRandom rnd, int n, int d) {
        float[][] rows = new float[n][d];
        for (float[] r : rows) {
            for (int j = 0; j < d; j++) {
                r[j] = (float) (0.05 * rnd.nextGaussian());
            }
        }
        return rows;
    }

    @Test
    void aMixedEntryEqualsItsRowsFedAsSeparateEntriesBitForBit() {
        int d = model.config().hiddenSize();
        int[] before = model.tokenizer().encode("KING HENRY VI:\n");
        float[][] vectors = randomRows(new SplittableRandom(17), 3, d);
        int[] middle = model.tokenizer().encode(" What");
        float[][] vector = randomRows(new SplittableRandom(18), 1, d);
        int[] after = model.tokenizer().encode(" say you?");
        // The same rows in one entry: tokens, three vectors, tokens, one vector, tokens.
        int n = before.length + 3 + middle.length + 1 + after.length;
        int[] ids = new int[n];
        float[][] rows = new float[n][];
        int at = 0;
        for (int t : before) ids[at++] = t;
        for (float[] v : vectors) rows[at++] = v;
        for (int t : middle) ids[at++] = t;
        rows[at++] = vector[0];
        for (int t : after) ids[at++] = t;
        try (KvSequence separate = model.newSequence(); KvSequence mixed = model.newSequence();
             KvSequence other = model.newSequence()) {
            List<float[]> expected = new ArrayList<>();
            // Each entry is made when its pass runs: a continuation takes its positions from the sequence's length.
            List<java.util.function.Supplier<Batch.Entry>> passes = List.of(
                    () -> Batch.Entry.continuationAllLogits(separate, before),
                    () -> Batch.Entry.continuationOfEmbeddings(separate, vectors).withAllLogits(),
                    () -> Batch.Entry.continuationAllLogits(separate, middle),
                    () -> Batch.Entry.continuationOfEmbeddings(separate, vector).withAllLogits(),
                    () -> Batch.Entry.continuationAllLogits(separate, after));
            for (java.util.function.Supplier<Batch.Entry> pass : passes) {
                Batch.Entry e = pass.get();
                ForwardResult r = model.forward(Batch.of(e));
                for (int i = 0; i < e.rows(); i++) {
                    expected.add(r.logits(0, i));
                }
            }
            // The mixed entry shares its pass with a token entry of another sequence.
            ForwardResult r = model.forward(Batch.of(Batch.Entry.continuation(other, model.tokenizer().encode("ROMEO:")),
                    Batch.Entry.continuationOfRows(mixed, ids, rows).withAllLogits()));
            for (int i = 0; i < n; i++) {
                assertBitIdentical(expected.get(i), r.logits(1, i), "row " + i);
            }
            int next = TestModels.argmax(r.lastLogits(1));
            assertBitIdentical(model.forward(Batch.of(Batch.Entry.continuation(separate, next))).lastLogits(0),
                    model.forward(Batch.of(Batch.Entry.continuation(mixed, next))).lastLogits(0), "decode step");
        }
    }

    @Test
    void aMixedEntryOfTheTokensOwnEmbeddingsEqualsTheTokens() {
        int[] ids = model.tokenizer().encode("First Citizen:\nBefore we proceed any further, hear me speak.");
        float[][] table = embeddingsOf(ids);
        float[][] rows = new float[ids.length][];
        for (int i = 1; i < ids.length; i += 2) {
            rows[i] = table[i]; // every other row as its embedding
        }
        int[] idsAtTokenRows = ids.clone();
        for (int i = 1; i < ids.length; i += 2) {
            idsAtTokenRows[i] = -1; // ignored: the row is a vector
        }
        try (KvSequence byIds = model.newSequence(); KvSequence byRows = model.newSequence()) {
            ForwardResult a = model.forward(Batch.of(Batch.Entry.continuationAllLogits(byIds, ids)));
            ForwardResult b = model.forward(Batch.of(Batch.Entry.continuationOfRows(byRows, idsAtTokenRows, rows).withAllLogits()));
            for (int i = 0; i < ids.length; i++) {
                assertBitIdentical(a.logits(0, i), b.logits(0, i), "row " + i);
            }
        }
        // A vector of the wrong width is refused before anything is appended.
        try (KvSequence s = model.newSequence()) {
            float[][] wrong = new float[ids.length][];
            wrong[0] = new float[3];
            assertThrows(IllegalArgumentException.class,
                    () -> model.forward(Batch.of(Batch.Entry.continuationOfRows(s, ids, wrong))));
            assertEquals(0, s.length());
        }
    }

    @Test
    void theLastLayersHiddenStateThroughTheFinalNormAndHeadReproducesTheLogits() {
        int layers = model.config().numLayers();
        int d = model.config().hiddenSize();
        int vocab = model.config().vocabSize();
        int[] ids = model.tokenizer().encode("KING HENRY VI:\nWhat");
        int last = ids.length - 1;
        int[] allLayers = new int[layers + 1];
        Arrays.setAll(allLayers, l -> l);
        try (KvSequence seq = model.newSequence()) {
            ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(seq, ids)
                    .withHiddenStates(allLayers, 0, last)
                    .withNormedRows(last, 0)));
            assertEquals(2, r.hiddenRows(0));
            assertEquals(2, r.normedRows(0));
            Backend backend = model.backend();
            Tensor norm = weights.get("model.norm.weight", d);
            Tensor head = weights.get("lm_head.weight", vocab, d);
            int[] rows = {0, last};
            for (int k = 0; k < 2; k++) {
                float[] top = r.hiddenState(0, layers, k);
                float[] normed = new float[d];
                backend.rmsnorm(Tensor.ofFloats(top.clone(), 1, d), norm, (float) model.config().rmsNormEps(),
                        Tensor.ofFloats(normed, 1, d));
                assertBitIdentical(normed, r.normedHidden(0, 1 - k), "final norm of row " + rows[k]);
                float[] logits = new float[vocab];
                backend.matmul(Tensor.ofFloats(normed, 1, d), head, Tensor.ofFloats(logits, 1, vocab));
                assertBitIdentical(r.logits(0, rows[k]), logits, "logits of row " + rows[k]);
                // Layer 0 is the embedding row; every layer has the hidden width; lower layers differ from the last.
                Tensor table = weights.get("model.embed_tokens.weight", vocab, d);
                float[] embedding = new float[d];
                for (int j = 0; j < d; j++) {
                    embedding[j] = table.getFloat((long) ids[rows[k]] * d + j);
                }
                assertBitIdentical(embedding, r.hiddenState(0, 0, k), "layer 0 of row " + rows[k]);
                for (int l = 0; l < layers; l++) {
                    assertEquals(d, r.hiddenState(0, l, k).length);
                    assertFalse(Arrays.equals(top, r.hiddenState(0, l, k)), "layer " + l + " equals the last layer");
                }
            }
            assertEquals(layers + 1, r.hiddenLayers(0).length);
            assertThrows(IllegalArgumentException.class, () -> r.hiddenState(0, layers + 1, 0));
        }
    }

    @Test
    void hiddenStatesOfOneLayerDoNotDependOnWhatElseWasAsked() {
        int[] ids = model.tokenizer().encode("O, ");
        try (KvSequence a = model.newSequence(); KvSequence b = model.newSequence()) {
            ForwardResult one = model.forward(Batch.of(Batch.Entry.continuation(a, ids).withHiddenStates(new int[] {3}, 1)));
            ForwardResult many = model.forward(Batch.of(Batch.Entry.continuationAllLogits(b, ids)
                    .withHiddenStates(new int[] {1, 3, 5}, 0, 1).withNormedRows(1)));
            assertBitIdentical(one.hiddenState(0, 3, 0), many.hiddenState(0, 3, 1), "layer 3 row 1");
            assertEquals(1, one.rows(0));
            assertEquals(0, one.normedRows(0));
        }
    }
}
