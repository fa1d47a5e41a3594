package dev.tandem.transformer;

import dev.tandem.runtime.Backends;
import dev.tandem.runtime.TandemException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The backend is chosen at load by name; cpu is the default and the only one this build has. */
class DeviceOptionTest {

    @Test
    void theDefaultDeviceIsCpuAndNamingItGivesTheSameLogits() {
        assertEquals("cpu", ModelLoader.Options.defaults().device());
        float[] byDefault, byName;
        try (LanguageModel m = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withThreads(1))) {
            assertTrue(m.backend().name().startsWith("cpu"), m.backend().name());
            byDefault = lastLogits(m);
        }
        try (LanguageModel m = ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withThreads(1).withDevice("cpu"))) {
            byName = lastLogits(m);
        }
        org.junit.jupiter.api.Assertions.assertArrayEquals(byDefault, byName);
    }

    @Test
    void anUnknownDeviceIsRefusedWithOneSentence() {
        TandemException e = assertThrows(TandemException.class, () ->
                ModelLoader.load(TestModels.model("bard-s"), ModelLoader.Options.defaults().withDevice("cuda7")));
        assertEquals("unknown device \"cuda7\"; this build has: " + String.join(", ", Backends.names()) + " (or auto).", e.getMessage());
    }

    private static float[] lastLogits(LanguageModel model) {
        try (var seq = model.newSequence()) {
            return model.forward(Batch.of(Batch.Entry.continuation(seq, model.tokenizer().encode("ROMEO:")))).lastLogits(0);
        }
    }
}
