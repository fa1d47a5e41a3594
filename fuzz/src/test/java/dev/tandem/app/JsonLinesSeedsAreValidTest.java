package dev.tandem.app;

import dev.tandem.fuzz.SeedsAreValidTest;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** As {@link SeedsAreValidTest}, for the JSON-lines inputs: every seed prompt file and stdin is accepted. */
class JsonLinesSeedsAreValidTest {
    @Test
    void promptFileSeedsParse() throws Exception {
        for (Path seed : SeedsAreValidTest.seeds(PromptFileFuzzTest.class, "promptFile")) {
            assertFalse(GenerateCommand.readPromptFile(seed).isEmpty(), seed.toString());
        }
    }

    @Test
    void tokenizeStdinSeedsSucceed() throws Exception {
        for (Path seed : SeedsAreValidTest.seeds(TokenizeStdinFuzzTest.class, "tokenizeStdin")) {
            byte[] input = Files.readAllBytes(seed);
            boolean decode = (input[0] & 1) == 1;
            String[] args = decode ? new String[] {"tokenize", "--model", TestModels.model("bard-s").toString(), "--decode"}
                    : new String[] {"tokenize", "--model", TestModels.model("bard-s").toString()};
            StringWriter err = new StringWriter();
            int exit = Main.run(args, new ByteArrayInputStream(Arrays.copyOfRange(input, 1, input.length)),
                    new PrintWriter(new StringWriter(), true), new PrintWriter(err, true));
            assertEquals(0, exit, seed + ": " + err);
        }
    }
}
