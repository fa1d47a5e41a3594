package dev.tandem.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.config.ModelConfig;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A {@code config.json}: parsed on its own, and then loaded as a whole model beside bard-s's real
 * weights and tokenizer, so that a config which parses but does not fit its weights (a defaulted key,
 * a huge {@code max_position_embeddings}) must still be refused in one sentence and never sizes an
 * allocation. Seeds: every {@code config.json} in the repository.
 */
class ModelConfigFuzzTest {
    private static final Path DIR = Contract.scratchDirectory();
    private static final Backend BACKEND = Backends.open(Backends.DEFAULT, 1);
    private static final ModelLoader.Options LOAD = ModelLoader.Options.defaults().withBackend(BACKEND)
            .withKvMemory(1L << 20);

    static {
        try {
            Path bardS = TestModels.model("bard-s");
            for (String name : new String[] {"model.safetensors", "tokenizer.json"}) {
                Path link = Files.createSymbolicLink(DIR.resolve(name), bardS.resolve(name).toAbsolutePath());
                link.toFile().deleteOnExit();
            }
        } catch (Exception e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @FuzzTest
    void config(byte[] json) throws Exception {
        Contract.write(DIR, ModelConfig.CONFIG_FILE, json);
        Contract.holds(() -> ModelConfig.load(DIR));
        Contract.holds(() -> {
            try (LanguageModel lm = ModelLoader.load(DIR, LOAD)) {
                lm.parameterCount();
            }
        });
    }
}
