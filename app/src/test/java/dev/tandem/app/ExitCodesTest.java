package dev.tandem.app;

import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Exit codes (README, {@code tandem --help}): 2 for every usage error — an unknown option, a value of
 * the wrong form, options that do not go together — however it is detected (by picocli or by the
 * command); 1 for every other failure (a bad file, a model that does not load); each with one
 * sentence as the last line of stderr.
 */
class ExitCodesTest {
    @TempDir
    Path tmp;

    private record Run(int exit, String err) {}

    private static Run tandem(String stdin, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)),
                new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, err.toString());
    }

    private static void assertExit(int expected, String stdin, String... args) {
        Run r = tandem(stdin, args);
        String last = r.err().strip().lines().reduce((a, b) -> b).orElse("");
        assertEquals(expected, r.exit(), String.join(" ", args) + " → " + r.err());
        assertTrue(last.startsWith("tandem: ") && last.endsWith("."), String.join(" ", args) + " → " + r.err());
    }

    @Test
    void everyUsageErrorExitsTwo() {
        String bardS = TestModels.model("bard-s").toString();
        List<String[]> usage = new ArrayList<>();
        // Found by picocli.
        usage.add(new String[] {"generate", "--no-such-option"});
        usage.add(new String[] {"generate", "--max-tokens", "many"});
        usage.add(new String[] {"nonsense"});
        usage.add(new String[] {});
        // Found by the commands.
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--threads", "-1"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--kv-dtype", "f16"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--kv-memory", "lots"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--max-tokens", "-3"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--temperature", "-1"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--top-p", "2"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--method", "telepathy"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--format", "xml"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--device", "quantum"});
        usage.add(new String[] {"generate", "--model", bardS, "--prompt", "A", "--method", "speculative"});
        usage.add(new String[] {"generate", "--model", bardS});
        usage.add(new String[] {"tokenize", "--model", bardS, "--skip-special-tokens"});
        usage.add(new String[] {"synth", "--shape", "smollm2-135m", "--dtype", "f8", "--out", "unused"});
        usage.add(new String[] {"bench", "--suite", "nonsense", "--model", bardS});
        usage.add(new String[] {"bench", "--threads", "0"});
        usage.add(new String[] {"bench", "--suite", "methods", "--gammas", "2,0"});
        usage.add(new String[] {"bench", "--suite", "engine", "--methods", "telepathy"});
        List<String> wrong = new ArrayList<>();
        for (String[] args : usage) {
            Run r = tandem("", args);
            String last = r.err().strip().lines().reduce((a, b) -> b).orElse("");
            if (r.exit() != 2 || !last.startsWith("tandem: ") || !last.endsWith(".")) {
                wrong.add(String.join(" ", args) + " → exit " + r.exit() + ": " + last);
            }
        }
        assertTrue(wrong.isEmpty(), String.join("\n", wrong));
    }

    /**
     * A signal ends the JVM with 128 + its number (130 for SIGINT, 143 for SIGTERM). {@code tokenize}
     * waiting on stdin is a command that is surely still running when the signal comes.
     */
    @ParameterizedTest
    @CsvSource({"INT, 130", "TERM, 143"})
    void aSignalExitsWithOneHundredTwentyEightPlusItsNumber(String signal, int expected) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "tokenize", "--model",
                TestModels.model("bard-s").toString()).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        try {
            var stdin = p.getOutputStream();
            stdin.write("\"ROMEO:\"\n".getBytes(StandardCharsets.UTF_8));
            stdin.flush();
            var stdout = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            assertTrue(stdout.readLine().startsWith("["), "tokenize answered the first line");
            Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(p.pid())).inheritIO().start();
            assertEquals(0, kill.waitFor());
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the command ended");
            assertEquals(expected, p.exitValue());
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void helpListsTheExitCodes() {
        for (String command : new String[] {null, "generate", "tokenize", "synth", "bench"}) {
            StringWriter out = new StringWriter();
            String[] args = command == null ? new String[] {"--help"} : new String[] {command, "--help"};
            assertEquals(0, Main.run(args, new PrintWriter(out, true), new PrintWriter(new StringWriter(), true)));
            String help = out.toString();
            for (String code : new String[] {"Exit codes:", "  0 ", "  1 ", "  2 ", "  130 ", "  143 "}) {
                assertTrue(help.contains(code), command + " --help lacks \"" + code + "\":\n" + help);
            }
        }
    }

    /** Issue 13: --threads far above the processors was accepted silently and made decoding 100–500× slower. */
    @Test
    void threadsAboveTheProcessorsAreCappedWithANote() throws Exception {
        int processors = Runtime.getRuntime().availableProcessors();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(new String[] {"generate", "--model", TestModels.model("bard-s").toString(), "--prompt", "A",
                "--max-tokens", "2", "--threads", "512", "--format", "json"}, new PrintWriter(out, true), new PrintWriter(err, true));
        assertEquals(0, exit, err.toString());
        assertTrue(err.toString().contains("tandem: note: --threads 512 is more than the " + processors
                + " processors of this machine; using " + processors + "."), err.toString());
        String backend = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toString()).at("/stats/backend").asText();
        assertTrue(backend.contains(processors + " thread"), backend);
    }

    private static Run tandemBytes(byte[] stdin, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new ByteArrayInputStream(stdin), new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, err.toString());
    }

    private static String lastLine(Run r) {
        return r.err().strip().lines().reduce((a, b) -> b).orElse("");
    }

    /**
     * Issue 13: tokenize read the first JSON value of a line and dropped the rest, and invalid UTF-8 became
     * U+FFFD without a word. One reader (JsonLines) now serves tokenize and --prompt-file alike.
     */
    @Test
    void everyJsonLinesInputIsStrictAlike() throws Exception {
        String bardS = TestModels.model("bard-s").toString();
        Run trailing = tandem("\"ok\"\n\"one\" \"two\"\n", "tokenize", "--model", bardS);
        assertEquals(1, trailing.exit());
        assertEquals("tandem: stdin line 2 holds more than one JSON value.", lastLine(trailing));
        byte[] badUtf8 = {'"', 'o', 'k', '"', '\n', '"', (byte) 0xC3, (byte) 0x28, '"', '\n'};
        Run utf8 = tandemBytes(badUtf8, "tokenize", "--model", bardS);
        assertEquals(1, utf8.exit());
        assertEquals("tandem: stdin line 2 is not valid UTF-8.", lastLine(utf8));
        Run duplicate = tandem("\"ok\"\n{\"a\": 1, \"a\": 2}\n", "tokenize", "--model", bardS, "--decode");
        assertTrue(lastLine(duplicate).startsWith("tandem: stdin line 1 "), lastLine(duplicate)); // line 1 is no id array
        Run notJson = tandem("{not json\n", "tokenize", "--model", bardS);
        assertEquals("tandem: stdin line 1 is not valid JSON at column 2.", lastLine(notJson));

        Path file = tmp.resolve("prompts.jsonl");
        Files.writeString(file, "\"A\"\n\"B\" \"C\"\n");
        Run fileTrailing = tandem("", "generate", "--model", bardS, "--prompt-file", file.toString(), "--max-tokens", "1");
        assertEquals(1, fileTrailing.exit());
        assertTrue(lastLine(fileTrailing).startsWith("tandem: " + file + " line 2 holds more than one JSON value; "), lastLine(fileTrailing));
        Files.write(file, badUtf8);
        Run fileUtf8 = tandem("", "generate", "--model", bardS, "--prompt-file", file.toString(), "--max-tokens", "1");
        assertTrue(lastLine(fileUtf8).startsWith("tandem: " + file + " line 2 is not valid UTF-8"), lastLine(fileUtf8));
        Files.writeString(file, "{\"prompt\": \"A\", \"prompt\": \"B\"}\n");
        Run fileDuplicate = tandem("", "generate", "--model", bardS, "--prompt-file", file.toString(), "--max-tokens", "1");
        assertTrue(lastLine(fileDuplicate).startsWith("tandem: " + file + " line 1 has the field \"prompt\" twice at column "),
                lastLine(fileDuplicate));
        // A byte-order mark before the first line is not an error.
        Files.write(file, "\uFEFF\"A\"\n".getBytes(StandardCharsets.UTF_8));
        assertEquals(0, tandem("", "generate", "--model", bardS, "--prompt-file", file.toString(), "--max-tokens", "1").exit());
    }

    @Test
    void otherFailuresExitOne() throws Exception {
        String bardS = TestModels.model("bard-s").toString();
        Path notJson = Files.writeString(tmp.resolve("prompts.jsonl"), "{\"prompt\": \"A\"\n");
        assertExit(1, "", "generate", "--model", tmp.resolve("missing").toString(), "--prompt", "A");
        assertExit(1, "", "generate", "--model", bardS, "--prompt-file", notJson.toString());
        assertExit(1, "not json\n", "tokenize", "--model", bardS);
        assertExit(1, "", "bench", "--report", notJson.toString());
        // The reason in words, no Java class name (it was "(java.io.IOException: Is a directory)").
        Run dir = tandem("", "generate", "--model", bardS, "--prompt-file", tmp.toString());
        assertEquals("tandem: cannot read the prompt file " + tmp + " (is a directory).", lastLine(dir));
    }
}
