package dev.tandem.transformer;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.weights.GgufCheckpoint;
import dev.tandem.transformer.weights.GgufExport;
import dev.tandem.transformer.weights.GgufFile;
import dev.tandem.transformer.weights.GgufValue;
import dev.tandem.transformer.weights.GgufWriter;
import dev.tandem.transformer.weights.WeightStore;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A model written as GGUF ({@link GgufExport}) and loaded from the file ({@link ModelLoader#load(Path)}) is the model of
 * its directory: at f32 the same logits bit for bit and the golden greedy paths; at f16 the golden greedy paths but
 * where the f32 reference's top-2 margin is small enough for f16 weights to flip it.
 */
class GgufModelTest {

    /**
     * A flip of the f16 file's greedy choice is allowed only where the f32 model's two best logits are closer than
     * this: f16 rounds each weight by up to 2^-11 relatively, which moves bard-l's logits by a few thousandths.
     * (bard-l's goldens are cut where the margin falls under 0.002; their smallest kept margin is 0.0022.)
     */
    static final float F16_FLIP_MARGIN = 0.02f;

    @TempDir
    static Path tmp;
    static Path bardF32;
    static Path bardF16;

    @BeforeAll
    static void export() {
        bardF32 = tmp.resolve("bard-l-f32.gguf");
        bardF16 = tmp.resolve("bard-l-f16.gguf");
        GgufExport.export(TestModels.model("bard-l"), bardF32, GgufExport.Options.floats(DType.F32), Progress.NONE);
        GgufExport.export(TestModels.model("bard-l"), bardF16, GgufExport.Options.floats(DType.F16), Progress.NONE);
    }

    @Test
    void f32FileGivesTheDirectorysLogitsBitForBitAndTheGoldenPaths() {
        Path dir = TestModels.model("bard-l");
        for (boolean mapped : new boolean[] {false, true}) {
            ModelLoader.Options o = ModelLoader.Options.defaults().withMappedWeights(mapped);
            try (LanguageModel fromDir = ModelLoader.load(dir, o); LanguageModel fromGguf = ModelLoader.load(bardF32, o)) {
                assertEquals(architecture(fromDir.config()), architecture(fromGguf.config()));
                assertEquals(bardF32, fromGguf.directory());
                for (TestModels.GoldenCase c : TestModels.goldenCases(dir)) {
                    assertArrayEquals(c.promptIds(), fromGguf.tokenizer().encode(c.prompt()), c.prompt());
                    try (KvSequence a = fromDir.newSequence(); KvSequence b = fromGguf.newSequence()) {
                        float[] la = fromDir.forward(Batch.of(Batch.Entry.continuation(a, c.promptIds()))).lastLogits(0);
                        float[] lb = fromGguf.forward(Batch.of(Batch.Entry.continuation(b, c.promptIds()))).lastLogits(0);
                        for (int step = 0; step < c.greedyIds().length; step++) {
                            assertArrayEquals(la, lb, c.prompt() + ": logits at step " + step);
                            int next = TestModels.argmax(lb);
                            assertEquals(c.greedyIds()[step], next, c.prompt() + ": greedy id at step " + step);
                            la = fromDir.forward(Batch.of(Batch.Entry.continuation(a, next))).lastLogits(0);
                            lb = fromGguf.forward(Batch.of(Batch.Entry.continuation(b, next))).lastLogits(0);
                        }
                    }
                }
            }
        }
    }

    /** What a config says about the computation (not where it came from: torch_dtype, defaulted keys). */
    static List<Object> architecture(dev.tandem.transformer.config.ModelConfig c) {
        return List.of(c.modelType(), c.vocabSize(), c.hiddenSize(), c.intermediateSize(), c.numLayers(), c.numHeads(),
                c.numKvHeads(), c.headDim(), c.maxPositionEmbeddings(), (float) c.rmsNormEps(), (float) c.ropeTheta(),
                String.valueOf(c.ropeScaling()), c.tieWordEmbeddings(), c.qkvBias(), c.outputBias(), c.mlpBias(), c.qkNorm(),
                String.valueOf(c.bosTokenId()), c.eosTokenIds());
    }

    @Test
    void f16FileFollowsTheGoldenPathsButAtNearTies() {
        Path dir = TestModels.model("bard-l");
        try (LanguageModel ref = ModelLoader.load(dir); LanguageModel half = ModelLoader.load(bardF16)) {
            assertEquals(DType.F16, half.weightDType());
            int flips = 0;
            for (TestModels.GoldenCase c : TestModels.goldenCases(dir)) {
                try (KvSequence a = ref.newSequence(); KvSequence b = half.newSequence()) {
                    float[] la = ref.forward(Batch.of(Batch.Entry.continuation(a, c.promptIds()))).lastLogits(0);
                    float[] lb = half.forward(Batch.of(Batch.Entry.continuation(b, c.promptIds()))).lastLogits(0);
                    for (int step = 0; step < c.greedyIds().length; step++) {
                        int golden = c.greedyIds()[step];
                        int got = TestModels.argmax(lb);
                        if (got != golden) {
                            float margin = la[golden] - la[got];
                            assertTrue(margin < F16_FLIP_MARGIN, c.prompt() + ": the f16 file chose " + got + " over "
                                    + golden + " at step " + step + ", where the f32 margin is " + margin);
                            flips++;
                        }
                        // teacher-forced on the golden path, so one flip does not derail the rest of the case
                        la = ref.forward(Batch.of(Batch.Entry.continuation(a, golden))).lastLogits(0);
                        lb = half.forward(Batch.of(Batch.Entry.continuation(b, golden))).lastLogits(0);
                    }
                }
            }
            System.out.println("bard-l f16 GGUF: " + flips + " greedy flips at near-ties along the golden paths");
        }
    }

    @Test
    void llamaQueryAndKeyRowsAreServedInHuggingFaceOrder() {
        try (WeightStore dir = WeightStore.open(TestModels.model("bard-l"));
             GgufCheckpoint gguf = GgufCheckpoint.open(bardF32, false);
             GgufFile raw = GgufFile.open(bardF32)) {
            for (String name : List.of("model.layers.0.self_attn.q_proj.weight", "model.layers.5.self_attn.k_proj.weight",
                    "model.layers.2.mlp.down_proj.weight")) {
                assertArrayEquals(dir.get(name).toFloatArray(), gguf.tensor(name).toFloatArray(), name);
            }
            // in the file, row 1 of a head is Hugging Face's row head_dim / 2 (llama.cpp's rope order)
            Tensor hf = dir.get("model.layers.0.self_attn.q_proj.weight");
            Tensor file = raw.tensor("blk.0.attn_q.weight");
            assertArrayEquals(hf.rows(16, 1).toFloatArray(), file.rows(1, 1).toFloatArray());
            assertArrayEquals(hf.rows(32 + 1, 1).toFloatArray(), file.rows(32 + 2, 1).toFloatArray());
            assertFalse(java.util.Arrays.equals(hf.rows(1, 1).toFloatArray(), file.rows(1, 1).toFloatArray()));
        }
    }

    static Stream<Path> families() throws IOException {
        return GoldenModelTest.modelDirs().stream().filter(m -> m.label().startsWith("families/")).map(GoldenModelTest.ModelDir::dir);
    }

    /** Each family (llama bf16 with llama3 rope and biases, mistral, qwen2 tied with biases, qwen3 f16 with q/k norms). */
    @ParameterizedTest
    @MethodSource("families")
    void familyCheckpointsGiveTheirLogitsThroughGguf(Path dir) {
        Path file = tmp.resolve(dir.getFileName() + ".gguf");
        DType type;
        try (WeightStore w = WeightStore.open(dir)) {
            type = w.dominantDType();
        }
        GgufExport.export(dir, file, GgufExport.Options.floats(type), Progress.NONE);
        try (LanguageModel fromDir = ModelLoader.load(dir); LanguageModel fromGguf = ModelLoader.load(file)) {
            for (TestModels.GoldenCase c : TestModels.goldenCases(dir)) {
                assertArrayEquals(c.promptIds(), fromGguf.tokenizer().encode(c.prompt()), dir + ": " + c.prompt());
                try (KvSequence a = fromDir.newSequence(); KvSequence b = fromGguf.newSequence()) {
                    float[] la = fromDir.forward(Batch.of(Batch.Entry.continuation(a, c.promptIds()))).lastLogits(0);
                    float[] lb = fromGguf.forward(Batch.of(Batch.Entry.continuation(b, c.promptIds()))).lastLogits(0);
                    assertArrayEquals(la, lb, dir + ": " + c.prompt());
                }
            }
        }
    }

    @Test
    void aPathThatIsNeitherADirectoryNorAGgufFileIsOneSentence() throws IOException {
        Path text = Files.writeString(tmp.resolve("notes.txt"), "hello");
        TandemException e = assertThrows(TandemException.class, () -> ModelLoader.load(text));
        assertEquals(text + " is neither a model directory nor a .gguf file.", e.getMessage());
        Path fake = Files.writeString(tmp.resolve("fake.gguf"), "hello");
        e = assertThrows(TandemException.class, () -> ModelLoader.load(fake));
        assertEquals("fake.gguf: the file does not begin with the GGUF magic (\"GGUF\"), so it is not a GGUF file.", e.getMessage());
    }

    @Test
    void anArchitectureTandemDoesNotRunIsOneSentence() {
        Path gemma = tmp.resolve("gemma.gguf");
        GgufWriter.write(gemma, Map.of(GgufCheckpoint.ARCHITECTURE, GgufValue.string("gemma")), List.of(), Progress.NONE);
        TandemException e = assertThrows(TandemException.class, () -> ModelLoader.load(gemma));
        assertEquals("gemma.gguf: metadata general.architecture is \"gemma\", which Tandem does not run (it runs llama, mistral, "
                + "qwen2, qwen3).", e.getMessage());
        e = assertThrows(TandemException.class, () -> ModelLoader.config(gemma));
        assertEquals("gemma.gguf: metadata general.architecture is \"gemma\", which Tandem does not run (it runs llama, mistral, "
                + "qwen2, qwen3).", e.getMessage());
    }
}
