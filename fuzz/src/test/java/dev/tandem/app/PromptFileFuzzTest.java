package dev.tandem.app;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.fuzz.Contract;

import java.nio.file.Path;

/**
 * The JSON-lines file of {@code generate --prompt-file}: strict UTF-8, one value per line, strings or
 * {@code {"prompt", "stream"}} objects. Seeds: prompt files as the README and tests write them.
 */
class PromptFileFuzzTest {
    private static final Path DIR = Contract.scratchDirectory();

    @FuzzTest
    void promptFile(byte[] lines) throws Exception {
        Path file = Contract.write(DIR, "prompts.jsonl", lines);
        Contract.holds(() -> GenerateCommand.readPromptFile(file));
    }
}
