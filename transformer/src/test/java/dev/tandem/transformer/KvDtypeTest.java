package dev.tandem.transformer;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.tandem.transformer.AttentionShapesTest.assertBitIdentical;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The KV cache stored as bf16 against f32, and the KV budget options. */
class KvDtypeTest {

    /** Logits of every prompt row and of 8 decode steps fed the given tokens (or greedy when null). */
    private static List<float[]> run(LanguageModel model, int[] prompt, int[] forced) {
        List<float[]> rows = new ArrayList<>();
        try (KvSequence seq = model.newSequence()) {
            ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(seq, prompt)));
            for (int i = 0; i < r.rows(0); i++) {
                rows.add(r.logits(0, i));
            }
            for (int step = 0; step < forced.length; step++) {
                rows.add(model.forward(Batch.of(Batch.Entry.continuation(seq, forced[step]))).lastLogits(0));
            }
        }
        return rows;
    }

    private static List<int[][]> goldenCases(Path dir) {
        List<int[][]> out = new ArrayList<>();
        for (TestModels.GoldenCase c : TestModels.goldenCases(dir)) {
            int[] greedy = c.greedyIds();
            out.add(new int[][] {c.promptIds(), java.util.Arrays.copyOf(greedy, Math.min(16, greedy.length))});
        }
        return out;
    }

    @Test
    void bf16KvLogitsAreWithinOnePercentNormwiseOfF32KvOnTheGoldenPrompts() {
        for (String name : new String[] {"bard-s", "bard-l"}) {
            Path dir = TestModels.model(name);
            try (LanguageModel f32 = ModelLoader.load(dir);
                 LanguageModel bf16 = ModelLoader.load(dir, ModelLoader.Options.defaults().withKvDtype(DType.BF16))) {
                assertEquals(DType.BF16, bf16.kvCache().dtype());
                assertEquals(DType.F32, f32.kvCache().dtype());
                double worst = 0;
                for (int[][] c : goldenCases(dir)) {
                    List<float[]> a = run(bf16, c[0], c[1]);
                    List<float[]> b = run(f32, c[0], c[1]);
                    for (int i = 0; i < a.size(); i++) {
                        double diff = 0, ref = 0;
                        for (int j = 0; j < b.get(i).length; j++) {
                            double dd = (double) a.get(i)[j] - b.get(i)[j];
                            diff += dd * dd;
                            ref += (double) b.get(i)[j] * b.get(i)[j];
                        }
                        double rel = Math.sqrt(diff / ref);
                        worst = Math.max(worst, rel);
                        assertTrue(rel < 1e-2, name + " row " + i + ": relative error " + rel);
                    }
                }
                System.out.printf("%s: bf16 KV worst normwise relative logit error %.2e%n", name, worst);
                assertTrue(worst > 0, "bf16 KV gave exactly the f32 logits: is the cache really bf16?");
            }
        }
    }

    @Test
    void anF32CacheSizedByMemoryBudgetGivesTheDefaultCachesLogitsBitForBit() {
        Path dir = TestModels.model("bard-l");
        try (LanguageModel plain = ModelLoader.load(dir);
             LanguageModel budgeted = ModelLoader.load(dir, ModelLoader.Options.defaults()
                     .withKvDtype(DType.F32).withKvMemory(3L << 20))) {
            for (int[][] c : goldenCases(dir)) {
                List<float[]> a = run(plain, c[0], c[1]);
                List<float[]> b = run(budgeted, c[0], c[1]);
                for (int i = 0; i < a.size(); i++) {
                    assertBitIdentical(a.get(i), b.get(i), "row " + i);
                }
            }
        }
    }

    @Test
    void theKvMemoryBudgetSetsTheNumberOfBlocks() {
        Path dir = TestModels.model("bard-s");
        for (DType dt : new DType[] {DType.F32, DType.BF16}) {
            try (LanguageModel m = ModelLoader.load(dir, ModelLoader.Options.defaults().withKvDtype(dt).withKvMemory(5L << 20))) {
                var c = m.config();
                long perBlock = 2L * c.numLayers() * c.numKvHeads() * c.headDim() * dt.byteSize() * m.kvCache().blockSize();
                assertEquals(perBlock, m.kvCache().bytesPerBlock());
                assertEquals((5L << 20) / perBlock, m.kvCache().numBlocks(), dt.toString());
            }
        }
        // kvTokens takes precedence over the budget.
        try (LanguageModel m = ModelLoader.load(dir, ModelLoader.Options.defaults().withKvMemory(5L << 20).withKvTokens(64))) {
            assertEquals(64 / m.kvCache().blockSize(), m.kvCache().numBlocks());
        }
        assertThrows(IllegalArgumentException.class, () -> ModelLoader.Options.defaults().withKvDtype(DType.F16));
        assertThrows(IllegalArgumentException.class, () -> ModelLoader.Options.defaults().withKvMemory(-1));
        assertThrows(dev.tandem.runtime.TandemException.class,
                () -> ModelLoader.load(dir, ModelLoader.Options.defaults().withKvMemory(100)));
    }
}
