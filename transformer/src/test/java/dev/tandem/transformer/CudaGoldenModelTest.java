package dev.tandem.transformer;

import com.fasterxml.jackson.databind.JsonNode;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.runtime.cuda.CudaBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link GoldenModelTest}'s cases on the CUDA backend: every family checkpoint (bf16 weights with biases and
 * llama3 RoPE, mistral's head_dim, qwen2's tied embeddings and linear RoPE, qwen3's f16 weights and q/k norms)
 * and bard-s reproduce their float32 reference logits within {@value GoldenModelTest#LOGIT_TOLERANCE} and
 * their greedy paths exactly, on the host build of the kernels in every build and on a GPU where one is
 * present (elsewhere that half reports itself skipped, with the reason). bard-l's cases run in the decoding
 * module's CudaEndToEndTest.
 */
class CudaGoldenModelTest {
    private static final CudaTestBackends.PerClass BACKENDS = new CudaTestBackends.PerClass();

    @AfterAll
    static void close() {
        BACKENDS.close();
    }

    private static CudaBackend backend(String which) {
        return BACKENDS.get(which);
    }

    /** (target, label, directory, case index, case) for every golden case but bard-m's and bard-l's. */
    static Stream<Arguments> cases() throws IOException {
        List<Arguments> out = new ArrayList<>();
        if (GoldenModelTest.class.getResource("/families") == null) {
            // A GPU bundle leaves the family checkpoints behind (bench/gpu/prepare.sh): say so as a skipped case.
            out.add(Arguments.of("gpu", "families/", null, -1, null));
        }
        for (Arguments a : GoldenModelTest.cases(false).toList()) {
            String label = (String) a.get()[0];
            if (label.equals("bard-m") || label.equals("bard-l")) {
                continue; // bard-l runs end to end in the decoding module; bard-m adds nothing the others lack
            }
            for (String which : new String[] {"host", "gpu"}) {
                Object[] args = a.get();
                out.add(Arguments.of(which, args[0], args[1], args[2], args[3]));
            }
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0}: {1} case {3}")
    @MethodSource("cases")
    void logitsAndGreedyPathMatchTheReference(String which, String label, Path dir, int index, JsonNode c) {
        assumeTrue(dir != null, "the family checkpoints are not on this test classpath: a GPU bundle leaves them behind "
                + "(bench/gpu/prepare.sh); the build runs them on the host build of the kernels");
        assumeTrue(c != null, label + " has no golden cases (GoldenModelTest reports that)");
        CudaBackend backend = backend(which);
        String what = which + " " + label + " case " + index;
        try (LanguageModel model = ModelLoader.load(dir, ModelLoader.Options.defaults().withBackend(backend));
             KvSequence seq = model.newSequence()) {
            int[] promptIds = TestModels.ints(c.get("prompt_ids"));
            float[] logits = model.forward(Batch.of(Batch.Entry.continuation(seq, promptIds))).lastLogits(0);
            JsonNode expected = c.get("last_logits");
            double maxDiff = 0;
            for (int i = 0; i < logits.length; i++) {
                maxDiff = Math.max(maxDiff, Math.abs(logits[i] - expected.get(i).asDouble()));
            }
            assertTrue(maxDiff <= GoldenModelTest.LOGIT_TOLERANCE, what + ": max |logit − reference| = " + maxDiff);
            int[] greedy = TestModels.ints(c.get("greedy_ids"));
            int[] got = new int[greedy.length];
            for (int step = 0; step < greedy.length; step++) {
                got[step] = TestModels.argmax(logits);
                if (step + 1 < greedy.length) {
                    logits = model.forward(Batch.of(Batch.Entry.continuation(seq, got[step]))).lastLogits(0);
                }
            }
            assertArrayEquals(greedy, got, what + ": greedy path");
        }
    }
}
