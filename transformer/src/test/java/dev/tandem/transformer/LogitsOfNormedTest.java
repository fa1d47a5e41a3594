package dev.tandem.transformer;

import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.SplittableRandom;

import static dev.tandem.transformer.AttentionShapesTest.assertBitIdentical;
import static dev.tandem.transformer.AttentionShapesTest.randomTokens;
import static dev.tandem.transformer.AttentionShapesTest.randomTree;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link LanguageModel#logitsOfNormed}: the LM head run later over a tree pass's final normalised hidden
 * states gives that pass's logits bit for bit, whichever rows are asked together, on f32, bf16, f16 and tied
 * heads.
 */
class LogitsOfNormedTest {

    static Path dir(String name) {
        return name.startsWith("families/") ? GoldenModelTest.familiesDir().resolve(name.substring(9)) : TestModels.model(name);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"bard-s", "bard-l", "families/llama-bf16", "families/qwen2-tied", "families/qwen3-f16"})
    void logitsOfNormedRowsAreTheForwardPassesLogitsBitForBit(String name) {
        try (LanguageModel model = ModelLoader.load(dir(name))) {
            SplittableRandom rnd = new SplittableRandom(7);
            int vocab = model.config().vocabSize();
            int[] prompt = randomTokens(rnd, 12, vocab);
            int[] parents = randomTree(rnd);
            int n = parents.length;
            int[] tokens = randomTokens(rnd, n, vocab);
            int[] positions = new int[n];
            int[] depth = new int[n];
            for (int i = 0; i < n; i++) {
                depth[i] = parents[i] < 0 ? 1 : depth[parents[i]] + 1;
                positions[i] = prompt.length + depth[i] - 1;
            }
            ForwardResult both;
            ForwardResult normedOnly;
            try (KvSequence a = model.newSequence(); KvSequence b = model.newSequence();
                 KvSequence other = model.newSequence()) {
                model.forward(Batch.of(Batch.Entry.continuation(a, prompt)));
                model.forward(Batch.of(Batch.Entry.continuation(b, prompt)));
                // Logits and normed rows at every row, the tree sharing its pass with a causal sequence.
                both = model.forward(Batch.of(Batch.Entry.continuation(other, randomTokens(rnd, 5, vocab)),
                        Batch.Entry.of(a, tokens, positions, new AttentionShape.Tree(parents)).withAllLogits()
                                .withAllNormedRows()));
                // Normed rows only: what a lazy tree verification asks for.
                normedOnly = model.forward(Batch.of(Batch.Entry.of(b, tokens, positions, new AttentionShape.Tree(parents))
                        .withAllNormedRows()));
            }
            assertEquals(0, normedOnly.rows(0));
            assertEquals(n, normedOnly.normedRows(0));
            float[][] normed = new float[n][];
            for (int i = 0; i < n; i++) {
                normed[i] = normedOnly.normedHidden(0, i);
                assertBitIdentical(both.normedHidden(1, i), normed[i], name + " normed row " + i);
            }
            float[][] all = model.logitsOfNormed(normed);
            assertEquals(n, all.length);
            for (int i = 0; i < n; i++) {
                assertBitIdentical(both.logits(1, i), all[i], name + " row " + i + " of all " + n);
                float[] alone = model.logitsOfNormed(new float[][] {normed[i]})[0];
                assertBitIdentical(both.logits(1, i), alone, name + " row " + i + " alone");
            }
            // A few rows in another order, one of them twice.
            int[] some = {n - 1, 0, n / 2, 0};
            float[][] picked = model.logitsOfNormed(new float[][] {normed[some[0]], normed[some[1]], normed[some[2]], normed[some[3]]});
            for (int k = 0; k < some.length; k++) {
                assertBitIdentical(both.logits(1, some[k]), picked[k], name + " row " + some[k] + " among " + some.length);
            }
            assertEquals(0, model.logitsOfNormed(new float[0][]).length);
        }
    }

    @Test
    void rowsThatAreNotOfTheHiddenSizeAreRefused() {
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-s"))) {
            int d = model.config().hiddenSize();
            IllegalArgumentException wide = assertThrows(IllegalArgumentException.class,
                    () -> model.logitsOfNormed(new float[][] {new float[d], new float[d + 1]}));
            assertEquals("normed row 1 has width " + (d + 1) + " but the model's hidden size is " + d + ".", wide.getMessage());
            IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
                    () -> model.logitsOfNormed(new float[][] {null}));
            assertTrue(missing.getMessage().startsWith("normed row 0 is missing"), missing.getMessage());
        }
    }
}
