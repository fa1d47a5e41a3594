package dev.tandem.decoding.mix;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.cuda.CudaBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The logit-mixing methods on the CUDA backend (the host build of the kernels in every build, a GPU where one is
 * present): greedy tokens are the argmax of the mixed rows (traced), a greedy generation copies less than one row of
 * logits to the host in all (an id per token; LOL's layer logits stay there too), and a seeded sampled generation
 * repeats itself; DoLa scores as on the CPU. The kernel's bits are
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
                    LogitMixDecoding.contextAware(expert, "KING RICHARD III:\nNow is the winter of our discontent\n", 0.5),
                    LogitMixDecoding.lowerLayerContrast(expert, amateur, 0, 0.1, 0.5, 1))) {
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

    /**
     * DoLa on the CUDA backend: its layer logits come from the same backend ops as on the CPU, so each step's score row
     * equals the CPU's within float rounding and the greedy tokens are the same.
     */
    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void layerContrastScoresAsOnTheCpu(String which) {
        GenerationRequest request = GenerationRequest.of("ROMEO:").withMaxTokens(TOKENS);
        List<float[]> cpuRows = new ArrayList<>();
        GenerationResult cpu;
        try (LanguageModel model = ModelLoader.load(TestModels.model("bard-l"))) {
            cpu = LayerContrastDecoding.dola(model, 0, 2, 4).traced(cpuRows::add).generate(request);
        }
        try (Backend backend = CudaTestBackends.open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend))) {
            List<float[]> rows = new ArrayList<>();
            GenerationResult cuda = LayerContrastDecoding.dola(model, 0, 2, 4).traced(rows::add).generate(request);
            assertArrayEquals(cpu.generatedIds(), cuda.generatedIds(), which);
            for (int i = 0; i < rows.size(); i++) {
                for (int t = 0; t < rows.get(i).length; t++) {
                    float a = cpuRows.get(i)[t], b = rows.get(i)[t];
                    assertTrue(a == b || Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(a)),
                            which + " position " + i + " token " + t + ": " + a + " on the CPU, " + b + " on CUDA");
                }
            }
            assertTrue(model.kvCache().usedBlocks() == 0, "KV blocks left behind");
        }
    }

    /**
     * caad on the device: its store built with the device's passes, the state row written beside the model's row and
     * mixed there; a greedy token copies only the state to the host (not a row of logits), the traced rows' argmax is the
     * token, and w = 0 is the device's plain decoding bit for bit.
     */
    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void groundedDecodingRunsWhereTheLogitsAre(String which, @TempDir Path dir) throws IOException {
        Path grounding = Files.writeString(dir.resolve("g.jsonl"), """
                {"text": "ROMEO:", "continuation": "\\nBut, soft! what light through yonder window breaks?"}
                {"text": "KING RICHARD III:", "continuation": "\\nNow is the winter of our discontent"}
                """);
        try (Backend backend = CudaTestBackends.open(which);
             LanguageModel model = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(backend))) {
            CudaBackend cuda = (CudaBackend) backend;
            GroundingStore store = GroundingStore.open(model, grounding);
            LogitMixDecoding method = LogitMixDecoding.grounded(model, store, 4, 1.5);
            GenerationRequest request = GenerationRequest.of("ROMEO:").withMaxTokens(TOKENS).withEosTokenIds(List.of());
            long before = cuda.bytesCopiedToHost();
            GenerationResult greedy = method.generate(request);
            long copied = cuda.bytesCopiedToHost() - before;
            assertTrue(copied < (long) TOKENS * 4 * model.config().vocabSize(), "caad copied " + copied + " bytes to the host for "
                    + TOKENS + " greedy tokens: less than a row of logits a token");
            List<float[]> rows = new ArrayList<>();
            GenerationResult traced = method.traced(rows::add).generate(request);
            assertArrayEquals(greedy.generatedIds(), traced.generatedIds());
            for (int i = 0; i < rows.size(); i++) {
                assertEquals(argmax(rows.get(i)), traced.generatedIds()[i], "token " + i);
            }
            LogitMixDecoding neutral = LogitMixDecoding.grounded(model, store, 4, 0);
            GenerationRequest sampled = request.withLogprobs(2).withSampling(SamplingParams.greedy().withTemperature(0.8f).withSeed(4));
            GenerationResult plain = new Generator(model).generate(sampled);
            GenerationResult got = neutral.generate(sampled);
            assertArrayEquals(plain.generatedIds(), got.generatedIds(), "w = 0, sampled");
            assertEquals(plain.logprobs(), got.logprobs(), "w = 0: the same log-probabilities, bit for bit");
            assertEquals(0, model.kvCache().usedBlocks(), "KV blocks left behind");
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
