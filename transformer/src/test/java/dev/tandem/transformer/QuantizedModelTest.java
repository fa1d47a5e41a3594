package dev.tandem.transformer;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.runtime.quant.QuantBlocks;
import dev.tandem.transformer.weights.GgufCheckpoint;
import dev.tandem.transformer.weights.GgufExport;
import dev.tandem.transformer.weights.WeightStore;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * bard-l written in a block format ({@link GgufExport.Options#ofType}) computes the f32 model's function to the
 * precision of the format: along every golden path (teacher-forced) the logits stay within a small multiple of the
 * weights' own rounding error, and Q8_0's greedy choice differs from the f32 model's only at near-ties. Free-running, the
 * first divergence from the golden ids and the f32 margin there are printed (docs/benchmarks.md quotes them).
 */
class QuantizedModelTest {

    @TempDir
    static Path tmp;

    /**
     * How much larger than the weights' own relative quantization error the logits' may be. Rounding the weights by a
     * relative ε (normwise, over every matrix) moves each layer's output by about ε, and the errors of six layers partly
     * add through the residual stream: bard-l measures 1.6ε (q8_0) to 3.0ε (q6_k). A kernel that decoded blocks wrongly gives errors of
     * order 1.
     */
    static final double PROPAGATION = 4;

    /**
     * The f32 top-2 margin under which a flip of the Q8_0 file's greedy choice counts as a near-tie: Q8_0 rounds each
     * weight to 1/254 of its block's largest magnitude, 8× coarser than f16's 2^-11 (GgufModelTest allows f16 flips under
     * 0.02).
     */
    static final float Q8_0_FLIP_MARGIN = 0.16f;

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void blockFormatsFollowTheF32ModelToTheirPrecision(DType type) {
        Path dir = TestModels.model("bard-l");
        Path file = tmp.resolve("bard-l-" + type.lowerName() + ".gguf");
        GgufExport.export(dir, file, GgufExport.Options.ofType(type), Progress.NONE);
        double weightError = weightRelativeError(dir, file);
        double allowed = PROPAGATION * weightError;
        try (LanguageModel ref = ModelLoader.load(dir); LanguageModel quant = ModelLoader.load(file)) {
            assertEquals(type, quant.weightDType());
            int flips = 0, steps = 0;
            double worst = 0;
            for (TestModels.GoldenCase c : TestModels.goldenCases(dir)) {
                try (KvSequence a = ref.newSequence(); KvSequence b = quant.newSequence()) {
                    float[] la = ref.forward(Batch.of(Batch.Entry.continuation(a, c.promptIds()))).lastLogits(0);
                    float[] lb = quant.forward(Batch.of(Batch.Entry.continuation(b, c.promptIds()))).lastLogits(0);
                    for (int step = 0; step < c.greedyIds().length; step++, steps++) {
                        double rel = relativeError(la, lb);
                        worst = Math.max(worst, rel);
                        assertTrue(rel <= allowed, c.prompt() + ": " + type.lowerName() + " logits at step " + step
                                + " are " + rel + " away from f32's, normwise, more than " + PROPAGATION
                                + " times the weights' own error " + weightError);
                        int golden = c.greedyIds()[step];
                        int got = TestModels.argmax(lb);
                        if (got != golden) {
                            float margin = la[golden] - la[got];
                            if (type == DType.Q8_0) {
                                assertTrue(margin < Q8_0_FLIP_MARGIN, c.prompt() + ": the q8_0 file chose " + got + " over "
                                        + golden + " at step " + step + ", where the f32 margin is " + margin);
                            }
                            flips++;
                        }
                        la = ref.forward(Batch.of(Batch.Entry.continuation(a, golden))).lastLogits(0);
                        lb = quant.forward(Batch.of(Batch.Entry.continuation(b, golden))).lastLogits(0);
                    }
                }
            }
            System.out.printf("bard-l %s GGUF: weights' relative error %.4f; %d greedy flips in %d teacher-forced steps;"
                    + " largest relative logit error %.4f (%.1f times the weights')%n", type.lowerName(), weightError, flips, steps,
                    worst, worst / weightError);
            printFirstDivergences(ref, quant, dir, type);
        }
    }

    /** Free-running greedy decoding of both models: where each golden case first parts, and the f32 top-2 margin there. */
    private static void printFirstDivergences(LanguageModel ref, LanguageModel quant, Path dir, DType type) {
        for (TestModels.GoldenCase c : TestModels.goldenCases(dir)) {
            try (KvSequence b = quant.newSequence(); KvSequence a = ref.newSequence()) {
                float[] lb = quant.forward(Batch.of(Batch.Entry.continuation(b, c.promptIds()))).lastLogits(0);
                float[] la = ref.forward(Batch.of(Batch.Entry.continuation(a, c.promptIds()))).lastLogits(0);
                String verdict = "same " + c.greedyIds().length + " ids";
                for (int step = 0; step < c.greedyIds().length; step++) {
                    int got = TestModels.argmax(lb);
                    if (got != c.greedyIds()[step]) {
                        verdict = "first divergence at step " + step + " (f32 top-2 margin " + topTwoMargin(la) + ")";
                        break;
                    }
                    lb = quant.forward(Batch.of(Batch.Entry.continuation(b, got))).lastLogits(0);
                    la = ref.forward(Batch.of(Batch.Entry.continuation(a, got))).lastLogits(0);
                }
                System.out.printf("bard-l %s free-running, %s: %s%n", type.lowerName(), c.prompt().replace("\n", "\\n"), verdict);
            }
        }
    }

    /** Normwise relative error of every matrix of the GGUF file against the directory's, decoded as the kernels decode it. */
    static double weightRelativeError(Path dir, Path file) {
        double diff = 0, norm = 0;
        try (WeightStore ref = WeightStore.open(dir); GgufCheckpoint quant = GgufCheckpoint.open(file, false)) {
            for (String name : quant.names()) {
                Tensor q = quant.tensor(name);
                if (q.rank() != 2) {
                    continue;
                }
                Tensor r = ref.get(name);
                int rows = (int) q.dim(0), width = (int) q.dim(1);
                float[] a = new float[width], b = new float[width];
                for (int row = 0; row < rows; row++) {
                    for (int i = 0; i < width; i++) {
                        a[i] = r.getFloat((long) row * width + i);
                    }
                    if (q.dtype().isQuantized()) {
                        QuantBlocks.dequantize(q.dtype(), q.segment(), q.dtype().bytesFor((long) row * width), b, 0, width);
                    } else {
                        for (int i = 0; i < width; i++) {
                            b[i] = q.getFloat((long) row * width + i);
                        }
                    }
                    for (int i = 0; i < width; i++) {
                        diff += (a[i] - (double) b[i]) * (a[i] - (double) b[i]);
                        norm += (double) a[i] * a[i];
                    }
                }
            }
        }
        return Math.sqrt(diff / norm);
    }

    static double relativeError(float[] ref, float[] got) {
        double diff = 0, norm = 0;
        for (int i = 0; i < ref.length; i++) {
            diff += (ref[i] - (double) got[i]) * (ref[i] - (double) got[i]);
            norm += (double) ref[i] * ref[i];
        }
        return Math.sqrt(diff / norm);
    }

    static float topTwoMargin(float[] x) {
        int best = TestModels.argmax(x);
        float second = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < x.length; i++) {
            if (i != best && x[i] > second) {
                second = x[i];
            }
        }
        return x[best] - second;
    }
}
