package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tandem tokenize} against the reference tokenizers' goldens, in-process. */
class TokenizeCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final Path REFERENCE = TestModels.modelsDir().getParent()
            .resolve("transformer/src/test/resources/tokenizers");

    record Run(int exit, String out, String err) {
        List<String> lines() {
            return out.lines().toList();
        }
    }

    static Run tandem(String stdin, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)),
                new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    static JsonNode goldens(String name) throws Exception {
        return JSON.readTree(REFERENCE.resolve("golden.json").toFile()).get("tokenizers").get(name);
    }

    @ParameterizedTest
    @ValueSource(strings = {"spm32k", "llama3", "qwen3"})
    void everyGoldenStringEncodesToItsIdsAndDecodesToItsNfcForm(String name) throws Exception {
        JsonNode cases = goldens(name);
        String file = REFERENCE.resolve(name).resolve("tokenizer.json.gz").toString();
        StringBuilder texts = new StringBuilder();
        StringBuilder ids = new StringBuilder();
        for (JsonNode c : cases) {
            texts.append(JSON.writeValueAsString(c.get("text").textValue())).append('\n');
            ids.append(JSON.writeValueAsString(c.get("ids"))).append('\n');
        }
        Run encoded = tandem(texts.toString(), "tokenize", "--tokenizer", file);
        assertEquals(0, encoded.exit(), encoded.err());
        Run decoded = tandem(ids.toString(), "tokenize", "--tokenizer", file, "--decode");
        assertEquals(0, decoded.exit(), decoded.err());
        assertEquals(cases.size(), encoded.lines().size());
        assertEquals(cases.size(), decoded.lines().size());
        for (int i = 0; i < cases.size(); i++) {
            String text = cases.get(i).get("text").textValue();
            assertEquals(cases.get(i).get("ids"), JSON.readTree(encoded.lines().get(i)), name + ": " + text);
            assertEquals(Normalizer.normalize(text, Normalizer.Form.NFC), JSON.readTree(decoded.lines().get(i)).textValue(),
                    name + ": " + text);
        }
    }

    @Test
    void addSpecialTokensAppliesThePostProcessorAndSpecialsCanBePlainText() throws Exception {
        String spm = REFERENCE.resolve("spm32k/tokenizer.json.gz").toString();
        JsonNode first = goldens("spm32k").get(0);
        String line = JSON.writeValueAsString(first.get("text").textValue()) + "\n";
        Run withBos = tandem(line, "tokenize", "--tokenizer", spm, "--add-special-tokens");
        assertEquals(0, withBos.exit(), withBos.err());
        JsonNode ids = JSON.readTree(withBos.lines().getFirst());
        assertEquals(1, ids.get(0).asInt(), "spm32k's TemplateProcessing starts with <s> = 1");
        assertEquals(first.get("ids").size() + 1, ids.size());

        String qwen = REFERENCE.resolve("qwen3/tokenizer.json.gz").toString();
        Run special = tandem("\"a<|endoftext|>\"\n", "tokenize", "--tokenizer", qwen);
        Run plain = tandem("\"a<|endoftext|>\"\n", "tokenize", "--tokenizer", qwen, "--special-tokens-as-text");
        assertEquals("[64,151643]", special.lines().getFirst());
        assertTrue(JSON.readTree(plain.lines().getFirst()).size() > 2, plain.out());
        Run skipped = tandem("[64,151643]\n", "tokenize", "--tokenizer", qwen, "--decode", "--skip-special-tokens");
        assertEquals("\"a\"", skipped.lines().getFirst());
    }

    @Test
    void modelDirectoryAndBlankLinesWork() {
        Run r = tandem("\"ROMEO:\"\n\n\"\"\n", "tokenize", "--model", TestModels.model("bard-s").toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals(2, r.lines().size());
        assertEquals("[]", r.lines().get(1));
    }

    @Test
    void aBadLineStopsWithItsNumberAfterAnsweringTheLinesBefore() {
        String bard = TestModels.model("bard-s").toString();
        String[][] cases = {
                {"\"ok\"\n[1,2]\n", "line 2", "tokenize", "--model", bard},
                {"\"ok\"\n{not json\n", "line 2", "tokenize", "--model", bard},
                {"[1, 99999]\n", "line 1", "tokenize", "--model", bard, "--decode"},
                {"[1, 2.5]\n", "line 1", "tokenize", "--model", bard, "--decode"},
                {"\"text\"\n", "line 1", "tokenize", "--model", bard, "--decode"},
        };
        for (String[] c : cases) {
            String[] args = java.util.Arrays.copyOfRange(c, 2, c.length);
            Run r = tandem(c[0], args);
            assertNotEquals(0, r.exit());
            String last = r.err().strip().lines().reduce((a, b) -> b).orElse("");
            assertTrue(last.startsWith("tandem: stdin " + c[1]) && last.endsWith("."), c[0] + " → " + r.err());
            assertEquals(c[0].startsWith("\"ok\"") ? 1 : 0, r.lines().size(), r.out());
        }
        for (String[] args : new String[][] {
                {"tokenize", "--tokenizer", "no-such-file.json"},
                {"tokenize", "--model", bard, "--skip-special-tokens"},
                {"tokenize", "--model", bard, "--decode", "--add-special-tokens"},
                {"tokenize", "--model", bard, "--tokenizer", "x.json"}}) {
            Run r = tandem("", args);
            assertNotEquals(0, r.exit(), String.join(" ", args));
            assertTrue(r.err().strip().lines().reduce((a, b) -> b).orElse("").startsWith("tandem: "), r.err());
        }
    }
}
