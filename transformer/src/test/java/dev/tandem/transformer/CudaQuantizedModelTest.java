package dev.tandem.transformer;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.cuda.CudaBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.weights.GgufExport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A quantized GGUF model on the CUDA backend (its blocks uploaded as they are, computed on by the quantized kernels) gives
 * the CPU backend's logits for the same file to float rounding and its greedy path, on the host build of the kernels in
 * every build and on a GPU where one is present.
 */
class CudaQuantizedModelTest {
    private static final CudaTestBackends.PerClass BACKENDS = new CudaTestBackends.PerClass();

    /** CPU and CUDA sum each dot product in another order: normwise relative differences of float rounding, far below 1e-4. */
    static final double TOLERANCE = 1e-4;
    static final int STEPS = 8;

    @TempDir
    static Path tmp;

    @AfterAll
    static void close() {
        BACKENDS.close();
    }

    static Stream<Arguments> cases() {
        return Stream.of("host", "gpu").flatMap(which -> Stream.of(DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q6_K)
                .map(type -> Arguments.of(which, type)));
    }

    @ParameterizedTest(name = "{0}: bard-l {1}")
    @MethodSource("cases")
    void quantizedFileGivesTheCpuLogitsAndGreedyPath(String which, DType type) throws Exception {
        CudaBackend backend = BACKENDS.get(which);
        Path file = tmp.resolve("bard-l-" + type.lowerName() + ".gguf");
        if (!Files.exists(file)) {
            GgufExport.export(TestModels.model("bard-l"), file, GgufExport.Options.ofType(type), Progress.NONE);
        }
        TestModels.GoldenCase c = TestModels.goldenCases(TestModels.model("bard-l")).getFirst();
        try (LanguageModel cpu = ModelLoader.load(file);
             LanguageModel cuda = ModelLoader.load(file, ModelLoader.Options.defaults().withBackend(backend));
             KvSequence a = cpu.newSequence(); KvSequence b = cuda.newSequence()) {
            assertEquals(type, cuda.weightDType());
            float[] la = cpu.forward(Batch.of(Batch.Entry.continuation(a, c.promptIds()))).lastLogits(0);
            float[] lb = cuda.forward(Batch.of(Batch.Entry.continuation(b, c.promptIds()))).lastLogits(0);
            for (int step = 0; step < STEPS; step++) {
                double rel = QuantizedModelTest.relativeError(la, lb);
                assertTrue(rel <= TOLERANCE, which + " " + type.lowerName() + " step " + step + ": logits " + rel + " from the CPU's");
                int next = TestModels.argmax(la);
                assertEquals(next, TestModels.argmax(lb), which + " " + type.lowerName() + " step " + step + ": greedy id");
                la = cpu.forward(Batch.of(Batch.Entry.continuation(a, next))).lastLogits(0);
                lb = cuda.forward(Batch.of(Batch.Entry.continuation(b, next))).lastLogits(0);
            }
        }
    }
}
