package dev.tandem.decoding.diffusion;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.cuda.CudaBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.synth.SyntheticCheckpoints;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Masked diffusion on the CUDA backend (the host build of the kernels in every build, a GPU where present) with
 * the selection made on the device ({@code tandem_select_rows_f32}): the same passes, positions and tokens as the
 * CPU backend for low-confidence, margin and threshold unmasking, only the chosen positions and tokens coming back
 * (never a row of logits), and the rows it keeps there freed with the request. On a small synthetic diffusion
 * checkpoint written by the test (random weights, bidirectional, a mask token), so the GPU check needs no model
 * from models/ for it; a short canvas, because the host build is slow. (bard-dlm's golden traces run on the CPU in
 * DiffusionGoldenTest, through the same Backend.selectRows.)
 */
class CudaDiffusionTest {
    @TempDir
    Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void theDeviceChoosesWhatTheCpuChooses(String which) throws IOException {
        List<DiffusionParams> runs = List.of(DiffusionParams.lowConfidence(8).withBlockLength(4),
                DiffusionParams.lowConfidence(8).withBlockLength(4).withRule(UnmaskRule.MARGIN),
                DiffusionParams.lowConfidence(8).withBlockLength(4).withThreshold(0.1));
        GenerationRequest request = GenerationRequest.ofIds(40, 41, 42, 43, 44);
        Path dir = tmp.resolve("synthetic-dlm");
        SyntheticCheckpoints.write(SyntheticCheckpoints.Spec.ofConfigJson("synthetic diffusion model", """
                {"model_type": "llama", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, "is_causal": false,
                 "mask_token_id": 298}""", DType.F32, 11), dir, false, Progress.NONE);
        try (LanguageModel onCpu = ModelLoader.load(dir);
             Backend backend = CudaTestBackends.open(which);
             LanguageModel model = ModelLoader.load(dir, ModelLoader.Options.defaults().withBackend(backend))) {
            CudaBackend cuda = (CudaBackend) backend;
            new DiffusionDecoding(model, runs.getFirst()).generate(request); // the model's scratch, allocated once
            for (DiffusionParams params : runs) {
                DiffusionDecoding.Traced expected = new DiffusionDecoding(onCpu, params).generateTraced(request, e -> {});
                long allocated = backend.allocatedBytes();
                long before = cuda.bytesCopiedToHost();
                DiffusionDecoding.Traced got = new DiffusionDecoding(model, params).generateTraced(request, e -> {});
                long copied = cuda.bytesCopiedToHost() - before;
                String where = which + " " + params.rule();
                assertEquals(expected.trace().size(), got.trace().size(), where + ": passes");
                for (int s = 0; s < expected.trace().size(); s++) {
                    assertArrayEquals(expected.trace().get(s), got.trace().get(s), where + ": step " + s);
                }
                assertArrayEquals(expected.result().generatedIds(), got.result().generatedIds(), where);
                assertTrue(copied < 4L * model.config().vocabSize(), where + ": " + copied + " bytes came back, under a row of logits");
                assertEquals(allocated, backend.allocatedBytes(), where + ": the kept rows are freed");
            }
        }
    }
}
