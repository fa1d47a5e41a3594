package dev.tandem.decoding;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** A text prompt gets the special tokens the tokenizer's post-processor adds; id prompts are taken as given. */
class PromptSpecialTokensTest {
    @TempDir
    Path tmp;

    @Test
    void textPromptsGetThePostProcessorsBosAndIdPromptsDoNot() throws Exception {
        Path dir = TestModels.copyOf("bard-s", tmp.resolve("bard-s-bos"));
        ObjectMapper json = new ObjectMapper();
        Path file = dir.resolve("tokenizer.json");
        ObjectNode tok = (ObjectNode) json.readTree(file.toFile());
        // A SentencePiece-style template: <|endoftext|> (id 2047) before every single sequence.
        tok.set("post_processor", json.readTree("""
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [2047], "tokens": ["<|endoftext|>"]}}}
                """));
        json.writeValue(file.toFile(), tok);
        try (LanguageModel model = ModelLoader.load(dir)) {
            Generator generator = new Generator(model);
            int[] plain = model.tokenizer().encode("ROMEO:");
            GenerationResult fromText = generator.generate(GenerationRequest.of("ROMEO:").withMaxTokens(3));
            assertEquals(2047, fromText.promptIds()[0]);
            assertArrayEquals(plain, Arrays.copyOfRange(fromText.promptIds(), 1, fromText.promptIds().length));
            GenerationResult fromIds = generator.generate(GenerationRequest.ofIds(plain).withMaxTokens(3));
            assertArrayEquals(plain, fromIds.promptIds());
        }
    }
}
