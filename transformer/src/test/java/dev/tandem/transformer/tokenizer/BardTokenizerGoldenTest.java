package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.TestModels;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The bundled bard models' tokenizers reproduce the ids their golden.json was computed from. */
class BardTokenizerGoldenTest {
    private static final List<String> MODELS = List.of("bard-s", "bard-m", "bard-l");

    static Stream<Arguments> goldenCases() throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<Arguments> cases = new ArrayList<>();
        for (String model : MODELS) {
            JsonNode golden = json.readTree(TestModels.model(model).resolve("golden.json").toFile());
            for (JsonNode c : golden.path("cases")) {
                int[] ids = new int[c.path("prompt_ids").size()];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = c.path("prompt_ids").get(i).intValue();
                }
                cases.add(Arguments.of(model, c.path("prompt").textValue(), ids));
            }
        }
        return cases.stream();
    }

    private static Tokenizer tokenizer(String model) {
        return Tokenizers.load(TestModels.model(model).resolve("tokenizer.json"));
    }

    @Test
    void everyBundledModelHasGoldenCases() throws IOException {
        assertFalse(goldenCases().toList().isEmpty());
        assertEquals(MODELS.size(), goldenCases().map(a -> a.get()[0]).distinct().count());
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("goldenCases")
    void encodeOfPromptEqualsGoldenPromptIds(String model, String prompt, int[] promptIds) {
        assertArrayEquals(promptIds, tokenizer(model).encode(prompt));
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("goldenCases")
    void decodeOfGoldenPromptIdsEqualsPrompt(String model, String prompt, int[] promptIds) {
        assertEquals(prompt, tokenizer(model).decode(promptIds));
    }

    @ParameterizedTest
    @MethodSource("models")
    void bundledTokenizerHas2048IdsWithEndOfTextLast(String model) {
        Tokenizer t = tokenizer(model);
        assertEquals(2048, t.vocabSize());
        assertEquals(2047, t.tokenId("<|endoftext|>").orElseThrow());
    }

    static Stream<String> models() {
        return MODELS.stream();
    }
}
