package dev.tandem.decoding.rag;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.bert.Embedder;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * REFRAG's mixed prefill on the CUDA backend (its kernels' host build in every build, a GPU where one is present, skipped
 * with the reason elsewhere): a prompt of token rows and projected vector rows, fed by the task in mixed entries, decodes
 * greedily exactly as the same rows fed run by run in entries of one kind each, on the same backend.
 */
class CudaRefragTest {

    @ParameterizedTest
    @ValueSource(strings = {CudaTestBackends.HOST, CudaTestBackends.GPU})
    void aMixedPrefillDecodesAsItsRowsFedRunByRunOnCuda(String which) {
        try (Backend backend = CudaTestBackends.open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-s"),
                     ModelLoader.Options.defaults().withBackend(backend).withKvTokens(4096));
             Embedder encoder = RefragDecodingTest.randomEncoder(new AtomicInteger())) {
            assertTrue(model.backend().name().startsWith("cuda"), model.backend().name());
            List<int[]> passages = RagDecodingTest.passages(model, 0, 2);
            ChunkProjection projection = RefragDecodingTest.randomProjection(new SplittableRandom(3),
                    model.config().hiddenSize(), encoder.dimension());
            RefragDecoding refrag = new RefragDecoding(model, encoder, projection, new ChunkEmbeddingCache(100), q -> passages)
                    .withSystemPrefix(RagDecodingTest.SYSTEM).withChunkTokens(6).withPolicy(ExpansionPolicy.similarity(0.5));
            GenerationRequest r = new GenerationRequest(RagDecodingTest.QUESTION, null, 5, SamplingParams.greedy(), List.of(),
                    List.of(), 0, 0);
            RefragPrompt prompt = refrag.prompt(r, passages);
            assertTrue(prompt.compressedChunks() > 0 && prompt.compressedChunks() < prompt.chunks().size());
            int[] expected = new int[r.maxTokens()];
            try (KvSequence kv = model.newSequence()) {
                float[] last = null;
                for (int from = 0; from < prompt.rows(); ) {
                    boolean vectors = prompt.vectors()[from] != null;
                    int to = from + 1;
                    while (to < prompt.rows() && (prompt.vectors()[to] != null) == vectors) {
                        to++;
                    }
                    Batch.Entry run = vectors
                            ? Batch.Entry.continuationOfEmbeddings(kv, Arrays.copyOfRange(prompt.vectors(), from, to))
                            : Batch.Entry.continuation(kv, Arrays.copyOfRange(prompt.ids(), from, to));
                    last = model.forward(Batch.of(run)).lastLogits(0);
                    from = to;
                }
                for (int i = 0; i < expected.length; i++) {
                    expected[i] = Sampler.argmax(last);
                    last = model.forward(Batch.of(Batch.Entry.continuation(kv, expected[i]))).lastLogits(0);
                }
            }
            GenerationResult got = refrag.generate(r);
            assertArrayEquals(expected, got.generatedIds(), "on " + which);
            assertEquals(0, model.kvCache().usedBlocks());
        }
    }
}
