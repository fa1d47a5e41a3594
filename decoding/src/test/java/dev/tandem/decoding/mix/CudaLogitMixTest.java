package dev.tandem.decoding.mix;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.cuda.CudaBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The logit-mixing methods on the CUDA backend (the host build of the kernels in every build, a GPU where one is
 * present): greedy tokens are the argmax of the mixed rows (traced), a greedy generation copies less than one row of
 * logits to the host in all (an id per token), and a seeded sampled generation repeats itself. The kernel's bits are
 * checked against {@link dev.tandem.runtime.LogitMix#apply} in the runtime's backend-equivalence suite.
 */
class CudaLogitMixTest {
    private static final int TOKENS = 12;

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void mixingRunsWhereTheLogitsAre(String which) {
        try (Backend backend = CudaTestBackends.open(which);
             LanguageModel expert = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend));
             LanguageModel amateur = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(backend))) {
            CudaBackend cuda = (CudaBackend) backend;
            for (LogitMixDecoding method : List.of(LogitMixDecoding.contrastive(expert, amateur, 0.1, 0.5),
                    LogitMixDecoding.contextAware(expert, "KING RICHARD III:\nNow is the winter of our discontent\n", 0.5))) {
                GenerationRequest request = GenerationRequest.of("ROMEO:").withMaxTokens(TOKENS);
                long before = cuda.bytesCopiedToHost();
                GenerationResult greedy = method.generate(request);
                long copied = cuda.bytesCopiedToHost() - before;
                assertTrue(copied < 4L * expert.config().vocabSize(), method.name() + " copied " + copied
                        + " bytes to the host for " + TOKENS + " greedy tokens: less than one row of logits in all");
                // The same generation traced: each mixed row read back; its argmax is the token chosen.
                List<float[]> rows = new ArrayList<>();
                GenerationResult traced = method.traced(rows::add).generate(request);
                assertArrayEquals(greedy.generatedIds(), traced.generatedIds(), method.name());
                for (int i = 0; i < rows.size(); i++) {
                    assertTrue(argmax(rows.get(i)) == traced.generatedIds()[i], method.name() + " token " + i);
                }
                GenerationRequest sampled = request.withSampling(SamplingParams.greedy().withTemperature(0.8f).withSeed(4));
                assertArrayEquals(method.generate(sampled).generatedIds(), method.generate(sampled).generatedIds(), method.name());
            }
            assertTrue(expert.kvCache().usedBlocks() == 0 && amateur.kvCache().usedBlocks() == 0, "KV blocks left behind");
        }
    }

    private static int argmax(float[] row) {
        int best = 0;
        for (int t = 1; t < row.length; t++) {
            best = row[t] > row[best] ? t : best;
        }
        return best;
    }
}
