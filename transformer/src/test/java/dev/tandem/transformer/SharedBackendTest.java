package dev.tandem.transformer;

import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.runtime.kv.KvSequence;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** Two models on one shared backend compute what they compute alone; closing a model leaves the backend open. */
class SharedBackendTest {

    private static float[] lastLogits(LanguageModel model, String prompt) {
        try (KvSequence seq = model.newSequence()) {
            return model.forward(Batch.of(Batch.Entry.continuation(seq, model.tokenizer().encode(prompt)))).lastLogits(0);
        }
    }

    @Test
    void modelsSharingABackendMatchModelsWithTheirOwn() {
        float[] small, large;
        try (LanguageModel s = ModelLoader.load(TestModels.model("bard-s"));
             LanguageModel l = ModelLoader.load(TestModels.model("bard-l"))) {
            small = lastLogits(s, "ROMEO:");
            large = lastLogits(l, "ROMEO:");
        }
        try (CpuBackend shared = new CpuBackend(2)) {
            try (LanguageModel s = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withBackend(shared))) {
                try (LanguageModel l = ModelLoader.load(TestModels.model("bard-l"), ModelLoader.Options.defaults().withBackend(shared))) {
                    assertArrayEquals(small, lastLogits(s, "ROMEO:"));
                    assertArrayEquals(large, lastLogits(l, "ROMEO:"));
                }
                // bard-l is closed; the shared backend still serves bard-s.
                assertArrayEquals(small, lastLogits(s, "ROMEO:"));
            }
        }
    }
}
