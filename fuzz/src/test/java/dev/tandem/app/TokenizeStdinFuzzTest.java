package dev.tandem.app;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.fuzz.Contract;
import dev.tandem.transformer.TestModels;

import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Arrays;

/**
 * {@code tandem tokenize} reading JSON lines on stdin, through the command line itself: the first byte
 * picks encoding or {@code --decode}, the rest is stdin. The contract is the command's: exit 0, or exit
 * 1 or 2 with one sentence as the only line on stderr (never a stack trace or an internal error).
 * Seeds: lines of text and of ids.
 */
class TokenizeStdinFuzzTest {
    private static final String BARD_S = TestModels.model("bard-s").toString();

    @FuzzTest
    void tokenizeStdin(byte[] input) {
        boolean decode = input.length > 0 && (input[0] & 1) == 1;
        byte[] stdin = input.length > 0 ? Arrays.copyOfRange(input, 1, input.length) : input;
        StringWriter err = new StringWriter();
        String[] args = decode ? new String[] {"tokenize", "--model", BARD_S, "--decode"}
                : new String[] {"tokenize", "--model", BARD_S};
        int exit = Main.run(args, new ByteArrayInputStream(stdin), new PrintWriter(new StringWriter(), true),
                new PrintWriter(err, true));
        String stderr = err.toString();
        if (exit == 0) {
            if (!stderr.isEmpty()) {
                throw new AssertionError("exit 0 with something on stderr: " + stderr);
            }
            return;
        }
        if (exit != 1 && exit != 2) {
            throw new AssertionError("exit " + exit + ": " + stderr);
        }
        String line = stderr.endsWith("\n") ? stderr.substring(0, stderr.length() - 1) : stderr;
        if (!line.startsWith("tandem: ") || line.startsWith("tandem: internal error")) {
            throw new AssertionError("exit " + exit + " without one sentence: " + stderr);
        }
        Contract.assertOneSentence(line.substring("tandem: ".length()));
    }
}
