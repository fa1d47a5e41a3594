package dev.tandem.transformer;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Weights copied into memory at load (the default; f16 widened to f32 on the way) give the same
 * logits, bit for bit, as weights read through the file mapping, for every checkpoint dtype we ship.
 */
class ResidentWeightsTest {

    @Test
    void residentAndMappedWeightsGiveBitIdenticalLogits() throws IOException {
        boolean sawF16 = false;
        for (GoldenModelTest.ModelDir m : GoldenModelTest.modelDirs()) {
            ModelLoader.Options base = ModelLoader.Options.defaults().withThreads(2).withKvTokens(64);
            try (LanguageModel resident = ModelLoader.load(m.dir(), base);
                 LanguageModel mapped = ModelLoader.load(m.dir(), base.withMappedWeights(true))) {
                assertEquals(mapped.weightDType(), resident.weightDType(), m.label() + ": the checkpoint's dtype is reported");
                assertEquals(mapped.parameterCount(), resident.parameterCount(), m.label());
                sawF16 |= resident.weightDType() == DType.F16;
                int[] prompt = TestModels.goldenCases(m.dir()).getFirst().promptIds();
                List<float[]> a = logits(resident, prompt), b = logits(mapped, prompt);
                for (int r = 0; r < a.size(); r++) {
                    assertArrayEquals(b.get(r), a.get(r), m.label() + " row " + r);
                }
            }
        }
        assertTrue(sawF16, "a checkpoint stored in f16 is among the models checked");
    }

    private static List<float[]> logits(LanguageModel model, int[] prompt) {
        try (KvSequence seq = model.newSequence()) {
            ForwardResult r = model.forward(Batch.of(Batch.Entry.continuationAllLogits(seq, prompt)));
            return java.util.stream.IntStream.range(0, prompt.length).mapToObj(i -> r.logits(0, i)).toList();
        }
    }
}
