package dev.tandem.app;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;

/**
 * {@code tandem generate --chat}: the prompt ids are the tokenizer's encoding of the conversation as Python Jinja2
 * renders it (transformer's {@code src/test/resources/chat/llama3/expected-cli-who-are-you.txt}, written by
 * {@code tools/chat/render_expected.py}), with nothing added.
 */
class ChatCliTest {

    static final Path LLAMA3 = TestModels.modelsDir().getParent().resolve("transformer/src/test/resources/chat/llama3");

    record Run(int exit, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new Run(exit, out.toString(), err.toString());
    }

    @Test
    void thePromptIdsAreThePythonRenderingEncoded() throws Exception {
        Path model = TestModels.model("bard-s");
        Run r = run("generate", "--model", model.toString(), "--chat", "--chat-template",
                LLAMA3.resolve("tokenizer_config.json").toString(), "--prompt", "Who are you?", "--max-tokens", "8",
                "--format", "json");
        assertEquals(0, r.exit(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        Tokenizer tokenizer = Tokenizers.load(model.resolve("tokenizer.json"));
        String expected = Files.readString(LLAMA3.resolve("expected-cli-who-are-you.txt"));
        int[] ids = new int[o.get("prompt_ids").size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = o.get("prompt_ids").get(i).asInt();
        }
        assertArrayEquals(tokenizer.encode(expected), ids);
        assertEquals(expected, tokenizer.decode(ids));
        assertEquals(8, o.get("generated_ids").size());
    }

    @Test
    void aSystemMessageComesFirst() throws Exception {
        Path model = TestModels.model("bard-s");
        Run r = run("generate", "--model", model.toString(), "--chat", "--system", "Be brief.", "--chat-template",
                LLAMA3.resolve("tokenizer_config.json").toString(), "--prompt", "Who are you?", "--max-tokens", "2",
                "--format", "json");
        assertEquals(0, r.exit(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        Tokenizer tokenizer = Tokenizers.load(model.resolve("tokenizer.json"));
        int[] ids = new int[o.get("prompt_ids").size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = o.get("prompt_ids").get(i).asInt();
        }
        assertTrue(tokenizer.decode(ids).startsWith(
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"),
                tokenizer.decode(ids));
    }

    @Test
    void aModelWithoutTemplateIsRefused() {
        Run r = run("generate", "--model", TestModels.model("bard-s").toString(), "--chat", "--prompt", "Who are you?",
                "--max-tokens", "2");
        assertEquals(2, r.exit(), r.err());
        String last = r.err().strip().lines().reduce((a, b) -> b).orElse("");
        assertTrue(last.contains("has no chat template in tokenizer_config.json; give --chat-template FILE."), r.err());
        assertFalse(r.out().contains("Who"), r.out());
    }

    @Test
    void systemWithoutChatIsAUsageError() {
        Run r = run("generate", "--model", TestModels.model("bard-s").toString(), "--system", "x", "--prompt", "hi");
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().contains("add --chat"), r.err());
    }
}
