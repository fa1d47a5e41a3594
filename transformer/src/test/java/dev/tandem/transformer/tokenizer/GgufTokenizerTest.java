package dev.tandem.transformer.tokenizer;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.weights.GgufValue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A tokenizer written to GGUF metadata ({@link GgufTokenizer#toMetadata}) and read back ({@link GgufTokenizer#fromMetadata})
 * encodes as the {@code tokenizer.json} it came from: the three reference tokenizers on their golden strings (ids from an
 * independent implementation), and bard-l's on its golden prompts.
 */
class GgufTokenizerTest {
    private static final Map<String, Map<String, GgufValue>> METADATA = new ConcurrentHashMap<>();
    private static final Map<String, Tokenizer> FROM_GGUF = new ConcurrentHashMap<>();

    private static Map<String, GgufValue> metadata(String name) {
        return METADATA.computeIfAbsent(name, n -> GgufTokenizer.toMetadata(ReferenceTokenizers.file(n),
                ReferenceTokenizers.load(n).vocabSize(), null, List.of()));
    }

    private static Tokenizer fromGguf(String name) {
        return FROM_GGUF.computeIfAbsent(name, n -> GgufTokenizer.fromMetadata(metadata(n), n + ".gguf"));
    }

    static List<Arguments> goldenCases() {
        return ReferenceTokenizers.goldenCases();
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("goldenCases")
    void referenceTokenizersEncodeTheSameThroughGguf(String name, String text, int[] ids) {
        Tokenizer t = fromGguf(name);
        assertArrayEquals(ids, t.encode(text), name + " through GGUF metadata");
        assertEquals(ReferenceTokenizers.load(name).decode(ids), t.decode(ids), name + " decoding");
    }

    @Test
    void theMetadataIsWhatLlamaCppExpects() {
        assertEquals(GgufValue.string("llama"), metadata("spm32k").get("tokenizer.ggml.model"));
        assertTrue(metadata("spm32k").containsKey("tokenizer.ggml.scores"));
        assertEquals(GgufValue.string("gpt2"), metadata("llama3").get("tokenizer.ggml.model"));
        assertEquals(GgufValue.string("llama-bpe"), metadata("llama3").get("tokenizer.ggml.pre"));
        assertEquals(GgufValue.string("qwen2"), metadata("qwen3").get("tokenizer.ggml.pre"));
        List<GgufValue> types = metadata("spm32k").get("tokenizer.ggml.token_type").elements();
        assertEquals(GgufValue.i32(GgufTokenizer.UNKNOWN), types.get(0));
        assertEquals(GgufValue.i32(GgufTokenizer.CONTROL), types.get(1));
        assertEquals(GgufValue.i32(GgufTokenizer.BYTE), types.get(3)); // <0x00>
        List<GgufValue> qwen = metadata("qwen3").get("tokenizer.ggml.token_type").elements();
        assertEquals(GgufValue.i32(GgufTokenizer.CONTROL), qwen.get(151643)); // <|endoftext|>
        assertEquals(GgufValue.i32(GgufTokenizer.USER_DEFINED), qwen.get(151668)); // </think>, not special
    }

    @Test
    void bardTokenizerEncodesItsGoldenPromptsTheSame() {
        java.nio.file.Path dir = TestModels.model("bard-l");
        Map<String, GgufValue> m = GgufTokenizer.toMetadata(dir.resolve("tokenizer.json"), 2048, 2047, List.of(2047));
        assertEquals(GgufValue.string("gpt-2"), m.get("tokenizer.ggml.pre"));
        Tokenizer back = GgufTokenizer.fromMetadata(m, "bard-l.gguf");
        Tokenizer direct = Tokenizers.load(dir.resolve("tokenizer.json"));
        for (TestModels.GoldenCase c : TestModels.goldenCases(dir)) {
            assertArrayEquals(c.promptIds(), back.encode(c.prompt()), c.prompt());
            assertArrayEquals(direct.encode(c.prompt() + " <|endoftext|>\n x"), back.encode(c.prompt() + " <|endoftext|>\n x"));
        }
    }

    @Test
    void unknownModelsAndPreTokenizersAreOneSentence() {
        Map<String, GgufValue> m = new LinkedHashMap<>(metadata("llama3"));
        m.put("tokenizer.ggml.pre", GgufValue.string("deepseek-coder"));
        TandemException e = assertThrows(TandemException.class, () -> GgufTokenizer.fromMetadata(m, "x.gguf"));
        assertEquals("x.gguf: metadata tokenizer.ggml.pre is \"deepseek-coder\", a pre-tokenizer Tandem does not know (it"
                + " knows default, gpt-2, llama-bpe, llama3, llama-v3, qwen2).", e.getMessage());
        m.put("tokenizer.ggml.model", GgufValue.string("t5"));
        e = assertThrows(TandemException.class, () -> GgufTokenizer.fromMetadata(m, "x.gguf"));
        assertTrue(e.getMessage().contains("tokenizer.ggml.model is \"t5\""), e.getMessage());
        m.remove("tokenizer.ggml.model");
        e = assertThrows(TandemException.class, () -> GgufTokenizer.fromMetadata(m, "x.gguf"));
        assertEquals("x.gguf: metadata tokenizer.ggml.model is missing, so the file has no tokenizer Tandem can read.", e.getMessage());
    }
}
