package dev.tandem.app;

import dev.tandem.runtime.DType;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code tandem quantize}: the file it writes is the model (greedy text of {@code generate} equal to the directory's at
 * f32, the type asked for where rows are whole blocks, each fallback named), and its refusals leave no file.
 */
class QuantizeCliTest {

    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    private static String lastLine(String s) {
        return s.strip().lines().reduce((a, b) -> b).orElse("");
    }

    @Test
    void anF32FileGeneratesTheDirectorysText(@TempDir Path tmp) {
        Path dir = TestModels.model("bard-l");
        Path file = tmp.resolve("bard-l.gguf");
        Run q = run("quantize", "--model", dir.toString(), "--type", "f32", "--out", file.toString());
        assertEquals(0, q.exit(), q.err());
        assertTrue(q.out().strip().matches("wrote " + java.util.regex.Pattern.quote(file.toString())
                + ": 57 tensors, f32, [0-9.]+ MB in [0-9.]+ s"), q.out());
        String[] prompt = {"generate", "--prompt", "ROMEO:", "--max-tokens", "24", "--temperature", "0", "--threads", "1"};
        Run fromDir = run(concat(prompt, "--model", dir.toString()));
        Run fromFile = run(concat(prompt, "--model", file.toString()));
        assertEquals(0, fromFile.exit(), fromFile.err());
        assertEquals(generatedText(fromDir.out()), generatedText(fromFile.out()));
    }

    @Test
    void blockFormatsFallBackWhereRowsAreNotWholeBlocksAndSaySo(@TempDir Path tmp) {
        Path file = tmp.resolve("bard-l-q4_k.gguf");
        Run q = run("quantize", "--model", TestModels.model("bard-l").toString(), "--type", "q4_k", "--out", file.toString());
        assertEquals(0, q.exit(), q.err());
        String first = q.out().lines().findFirst().orElse("");
        assertTrue(first.startsWith("6 of 57 tensors are not whole blocks of q4_k: blk.0.ffn_down.weight (rows of 688) at f16, "),
                first);
        try (LanguageModel m = ModelLoader.load(file)) {
            assertEquals(DType.Q4_K, m.weightDType());
        }
    }

    @Test
    void refusalsAreOneSentenceAndLeaveNoFile(@TempDir Path tmp) throws Exception {
        Path dir = TestModels.model("bard-l");
        Path out = tmp.resolve("x.gguf");
        Run badType = run("quantize", "--model", dir.toString(), "--type", "q5_1", "--out", out.toString());
        assertEquals(2, badType.exit());
        assertEquals("tandem: --type must be f32, f16, bf16, q8_0, q4_0, q4_k or q6_k, but was \"q5_1\".", lastLine(badType.err()));
        Run notGguf = run("quantize", "--model", dir.toString(), "--type", "q8_0", "--out", tmp.resolve("x.bin").toString());
        assertEquals(2, notGguf.exit());
        assertEquals("tandem: --out must name a .gguf file, but was " + tmp.resolve("x.bin") + ".", lastLine(notGguf.err()));
        Path gguf = tmp.resolve("in.gguf");
        assertEquals(0, run("quantize", "--model", dir.toString(), "--type", "q8_0", "--out", gguf.toString()).exit());
        Run fromGguf = run("quantize", "--model", gguf.toString(), "--type", "q4_0", "--out", out.toString());
        assertEquals(2, fromGguf.exit());
        assertEquals("tandem: --model takes a Hugging Face model directory; " + gguf + " is already a GGUF file.",
                lastLine(fromGguf.err()));
        Run noDir = run("quantize", "--model", tmp.resolve("absent").toString(), "--type", "q8_0", "--out", out.toString());
        assertEquals(1, noDir.exit());
        assertTrue(lastLine(noDir.err()).startsWith("tandem: "), noDir.err());
        assertFalse(Files.exists(out));
        try (var files = Files.list(tmp)) {
            assertEquals(1, files.count(), "only in.gguf: no temporary file is left behind");
        }
    }

    private static String generatedText(String out) {
        return out.lines().filter(l -> !l.startsWith("[")).reduce("", (a, b) -> a + b + "\n");
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
