package dev.tandem.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.transformer.config.GenerationConfig;

import java.nio.file.Path;

/** A {@code generation_config.json}. Seeds: files written as Hugging Face writes them. */
class GenerationConfigFuzzTest {
    private static final Path DIR = Contract.scratchDirectory();

    @FuzzTest
    void generationConfig(byte[] json) throws Exception {
        Contract.write(DIR, GenerationConfig.FILE, json);
        Contract.holds(() -> GenerationConfig.load(DIR));
    }
}
