package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Real SentencePiece-style (spm32k), Llama 3 and Qwen 3 tokenizer files encode and decode the golden
 * strings exactly as the independent implementation that produced {@code tokenizers/golden.json}.
 */
class ReferenceTokenizerGoldenTest {

    static List<Arguments> goldenCases() {
        return ReferenceTokenizers.goldenCases();
    }

    @Test
    void everyReferenceTokenizerHasItsTwentyGoldenStrings() {
        for (String name : ReferenceTokenizers.NAMES) {
            assertEquals(20, goldenCases().stream().filter(a -> a.get()[0].equals(name)).count(), name);
        }
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("goldenCases")
    void encodeGivesTheGoldenIds(String name, String text, int[] ids) {
        assertArrayEquals(ids, ReferenceTokenizers.load(name).encode(text));
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("goldenCases")
    void decodeOfTheGoldenIdsIsTheNfcText(String name, String text, int[] ids) {
        assertEquals(ReferenceTokenizers.nfc(text), ReferenceTokenizers.load(name).decode(ids));
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("goldenCases")
    void streamingDecodeOneIdAtATimeIsTheNfcText(String name, String text, int[] ids) {
        assertEquals(ReferenceTokenizers.nfc(text), ReferenceTokenizers.streamed(ReferenceTokenizers.load(name), ids));
    }
}
