package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static dev.tandem.decoding.speculative.SpeculativeFixtures.assertBitIdentical;
import static dev.tandem.decoding.speculative.SpeculativeFixtures.assertSameOutputAsPlain;
import static dev.tandem.decoding.speculative.SpeculativeFixtures.request;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Tree and lookahead verification run the target's LM head only at the rows they read (the root's and each
 * accepted node's, plus lookahead's newest Jacobi level), through {@link LazyLogits}, and decide exactly as
 * with logits at every row. bard-l verifies, bard-s drafts.
 */
class LazyLogitsTest {
    static LanguageModel target;
    static LanguageModel small;
    static List<String> prompts;

    @BeforeAll
    static void load() throws IOException {
        target = ModelLoader.load(TestModels.model("bard-l"));
        small = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(target.backend()));
        prompts = SpeculativeFixtures.goldenPromptsAnd(List.of()).subList(0, 3);
    }

    @AfterAll
    static void close() {
        small.close();
        target.close();
    }

    /**
     * On a drafted tree, each verification (greedy, greedy with a repetition penalty, sampled) asks for exactly
     * accepted + 1 LM-head rows, gets them bit-identical to a pass with logits at every row, and reaches the
     * verdict that every row's logits give.
     */
    @Test
    void aTreeVerificationRunsTheLmHeadOnlyAtTheRootAndTheAcceptedNodes() {
        List<SamplingParams> settings = List.of(SamplingParams.greedy(),
                SamplingParams.greedy().withRepetitionPenalty(1.3f),
                SamplingParams.greedy().withTemperature(0.8f).withSeed(5));
        int greedyAccepted = 0;
        for (String prompt : prompts) {
            int[] ids = target.tokenizer().encode(prompt);
            int length = ids.length;
            int[] context = Arrays.copyOf(ids, length + 5);
            TokenTree tree;
            try (TreeDrafter drafter = new TreeDrafter(small, 16, 3, 4)) {
                tree = drafter.grow(context, length, 4, 16, SamplingParams.greedy(), new DecodeStats.Recorder("test"));
            }
            int n = tree.size();
            assertTrue(n > 1, "the drafter grew a tree");
            int[] rows = new int[n + 1];
            int[] parents = new int[n + 1];
            int[] positions = new int[n + 1];
            TreeDecoding.layOut(tree, ids[length - 1], length - 1, rows, parents, positions);
            ForwardResult pass;
            try (KvSequence kv = target.newSequence()) {
                target.forward(Batch.of(Batch.Entry.continuation(kv, Arrays.copyOf(ids, length - 1))));
                pass = target.forward(Batch.of(Batch.Entry.of(kv, rows, positions, new AttentionShape.Tree(parents))
                        .withAllLogits().withAllNormedRows()));
            }
            float[][] every = new float[n + 1][];
            Arrays.setAll(every, r -> pass.logits(0, r));
            for (SamplingParams sp : settings) {
                String where = prompt + " " + sp;
                LazyLogits lazy = LazyLogits.of(target, pass, 0);
                assertEquals(n + 1, lazy.rows());
                TreeVerdict verdict = TreeDecoding.verify(tree, lazy, sp, context.clone(), length, 3);
                assertEquals(TreeDecoding.verify(tree, r -> every[r], sp, context.clone(), length, 3), verdict, where);
                int accepted = verdict.path().length;
                assertEquals(accepted + 1, lazy.computedRows(), where + ": LM-head rows for " + accepted + " accepted");
                assertBitIdentical(every[0], lazy.row(0), where + ": the root's row");
                for (int node : verdict.path()) {
                    assertBitIdentical(every[node + 1], lazy.row(node + 1), where + ": row of node " + node);
                }
                assertEquals(accepted + 1, lazy.computedRows(), where + ": reading the path again computes nothing");
                if (sp.isGreedy() && sp.repetitionPenalty() == 1f) {
                    greedyAccepted += accepted;
                }
            }
            LazyLogits lazy = LazyLogits.of(target, pass, 0);
            float[][] all = lazy.all();
            for (int r = 0; r <= n; r++) {
                assertBitIdentical(every[r], all[r], prompt + ": row " + r + " of all");
            }
            assertEquals(n + 1, lazy.computedRows());
        }
        assertTrue(greedyAccepted > 0, "no greedy verification accepted a node");
    }

    /**
     * Whole generations: the tree loop (tree and ADED) asks the target's forward pass for no logits at all and
     * runs the LM head for exactly one row per verification plus one per accepted node; lookahead adds at most
     * its newest level per step. Greedy output stays plain greedy's.
     */
    @Test
    void treeAdedAndLookaheadRunTheLmHeadOnlyAtTheRowsTheyRead() {
        CountingModel counting = new CountingModel(target);
        Generator plain = new Generator(target);
        SamplingParams sampled = SamplingParams.greedy().withTemperature(0.8f).withSeed(11);
        for (String prompt : prompts) {
            GenerationRequest greedy = request(prompt);
            GenerationResult expected = plain.generate(greedy);
            TrigramTable table = TrigramTable.fromTokens(SpeculativeFixtures.promptAndOutput(expected));
            for (DecodingStrategy s : List.of(TreeDecoding.of(counting, small), new AdedDecoding(counting, table,
                    AdedDecoding.DEFAULT_ITERATIONS, AdedDecoding.DEFAULT_MAX_DEPTH, 16))) {
                for (GenerationRequest req : List.of(greedy, greedy.withSampling(sampled))) {
                    String where = s.name() + " " + req.sampling() + " on " + prompt;
                    counting.reset();
                    GenerationResult r = s.generate(req);
                    if (req == greedy) {
                        assertSameOutputAsPlain(expected, r, where);
                    }
                    DecodeStats st = r.decodeStats();
                    assertEquals(0, counting.logitRows, where + ": logit rows asked of the forward pass");
                    assertEquals(st.verifications() + st.acceptedTokens(), counting.lmHeadRows, where + ": " + st.summary());
                }
            }
            LookaheadDecoding lookahead = new LookaheadDecoding(counting);
            counting.reset();
            GenerationResult r = lookahead.generate(greedy);
            assertSameOutputAsPlain(expected, r, "lookahead on " + prompt);
            DecodeStats st = r.decodeStats();
            assertEquals(0, counting.logitRows, "lookahead on " + prompt + ": logit rows asked of the forward pass");
            assertTrue(counting.lmHeadRows >= st.verifications() + st.acceptedTokens(), "lookahead: " + counting.lmHeadRows);
            assertTrue(counting.lmHeadRows <= st.verifications() * (1 + lookahead.window()) + st.acceptedTokens(),
                    "lookahead: " + counting.lmHeadRows + " LM-head rows, " + st.summary());
            assertTrue(counting.lmHeadRows < counting.rows - (r.promptIds().length - 1),
                    "lookahead ran the LM head at every row of its passes");
        }
    }

    /** A model that passes every call through and counts logit rows asked of forward, rows fed and LM-head rows run later. */
    static final class CountingModel implements LanguageModel {
        private final LanguageModel model;
        long logitRows;
        long rows;
        long lmHeadRows;

        CountingModel(LanguageModel model) {
            this.model = model;
        }

        void reset() {
            logitRows = rows = lmHeadRows = 0;
        }

        @Override
        public ForwardResult forward(Batch batch) {
            logitRows += batch.totalLogitRows();
            rows += batch.totalRows();
            return model.forward(batch);
        }

        @Override
        public float[][] logitsOfNormed(float[][] normedRows) {
            lmHeadRows += normedRows.length;
            return model.logitsOfNormed(normedRows);
        }

        @Override
        public Path directory() {
            return model.directory();
        }

        @Override
        public ModelConfig config() {
            return model.config();
        }

        @Override
        public GenerationConfig generationConfig() {
            return model.generationConfig();
        }

        @Override
        public Tokenizer tokenizer() {
            return model.tokenizer();
        }

        @Override
        public Backend backend() {
            return model.backend();
        }

        @Override
        public KvCache kvCache() {
            return model.kvCache();
        }

        @Override
        public long parameterCount() {
            return model.parameterCount();
        }

        @Override
        public DType weightDType() {
            return model.weightDType();
        }

        @Override
        public long weightBytesPerToken() {
            return model.weightBytesPerToken();
        }

        @Override
        public long multiplyAddsPerRow() {
            return model.multiplyAddsPerRow();
        }

        @Override
        public void close() {
            // the wrapped model is closed by its owner
        }
    }
}
