package dev.tandem.decoding.rag;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Block-sparse RAG attention on the CUDA backend (its kernels' host build in every build, a GPU where one is present,
 * skipped with the reason elsewhere): the mask descriptor of attached passages reaches the split-K attention kernel,
 * and the logits equal the one-pass segment prefill's on the same backend bit for bit, as on the CPU.
 */
class CudaRagTest {

    @ParameterizedTest
    @ValueSource(strings = {CudaTestBackends.HOST, CudaTestBackends.GPU})
    void attachedPassagesEqualTheOnePassPrefillOnCuda(String which) throws IOException {
        try (Backend backend = CudaTestBackends.open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-s"),
                     ModelLoader.Options.defaults().withBackend(backend).withKvTokens(4096))) {
            assertTrue(model.backend().name().startsWith("cuda"), model.backend().name());
            int[] question = model.tokenizer().encode(RagDecodingTest.QUESTION);
            List<int[]> passages = RagDecodingTest.passages(model, 0, 1, 2);
            List<float[]> expected = RagDecodingTest.onePass(model, RagDecodingTest.SYSTEM, passages, question, 4);
            try (PassageCache cache = new PassageCache(model, 200)) {
                List<float[]> got = RagDecodingTest.attached(model, cache, RagDecodingTest.SYSTEM, passages, question, 4);
                for (int i = 0; i < expected.size(); i++) {
                    assertArrayEquals(expected.get(i), got.get(i), "row " + i + " on " + which);
                }
                GenerationResult r = new RagDecoding(model, cache, q -> passages).withSystemPrefix(RagDecodingTest.SYSTEM)
                        .generate(new GenerationRequest(RagDecodingTest.QUESTION, null, 5, SamplingParams.greedy(), List.of(),
                                List.of(), 0, 0));
                for (int i = 0; i < 5; i++) {
                    assertEquals(Sampler.argmax(expected.get(i)), r.generatedIds()[i], "token " + i + " on " + which);
                }
            }
            assertEquals(0, model.kvCache().usedBlocks());
        }
    }
}
