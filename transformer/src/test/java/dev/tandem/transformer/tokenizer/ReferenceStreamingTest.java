package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Streaming decode of the real tokenizers where characters span several tokens: byte-fallback
 * {@code <0xNN>} runs (spm32k) and byte-level tokens (llama3, qwen3).
 */
class ReferenceStreamingTest {
    private static final String TEXT = "Emoji 🙂🚀👍🏽 and 👨\u200d👩\u200d👧, CJK 你好世界 龘 𠀀 日本語, flags 🇫🇷🇯🇵!";

    @ParameterizedTest
    @ValueSource(strings = {"spm32k", "llama3", "qwen3"})
    void everyPushIsWholeCharactersAndTheyAddUpToDecode(String name) {
        Tokenizer t = ReferenceTokenizers.load(name);
        int[] ids = t.encode(TEXT);
        // The test means something only if some token holds part of a UTF-8 character.
        assertTrue(Arrays.stream(ids).anyMatch(id -> !isCompleteUtf8(t.tokenBytes(id))),
                "expected a token holding part of a character");
        String decoded = t.decode(ids);
        assertEquals(TEXT, decoded);

        StreamingDecoder decoder = t.streamingDecoder();
        StringBuilder streamed = new StringBuilder();
        for (int id : ids) {
            String piece = decoder.push(id);
            assertFalse(ReferenceTokenizers.hasLoneSurrogate(piece), "half a character pushed: " + piece);
            assertFalse(piece.contains("\uFFFD"), "replacement character pushed: " + piece);
            streamed.append(piece);
            assertTrue(decoded.startsWith(streamed.toString()), "pushed text is not a prefix of decode: " + streamed);
        }
        streamed.append(decoder.flush());
        assertEquals(decoded, streamed.toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"spm32k", "llama3", "qwen3"})
    void randomIdSequencesStreamToTheSameTextAsBatchDecode(String name) {
        Tokenizer t = ReferenceTokenizers.load(name);
        // Random ids make every kind of malformed UTF-8. Half are drawn from the byte tokens: <0x00>..<0xFF>
        // are ids 3..258 in spm32k; the byte-level alphabet's single characters are spread in llama3/qwen3.
        int[] byteTokens = new int[256];
        for (int b = 0; b < 256; b++) {
            String token = name.equals("spm32k") ? String.format("<0x%02X>", b) : ByteLevel.spell(new byte[] {(byte) b});
            byteTokens[b] = t.tokenId(token).orElseThrow();
        }
        Random random = new Random(11);
        for (int trial = 0; trial < 3_000; trial++) {
            int[] ids = new int[1 + random.nextInt(10)];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = random.nextBoolean() ? byteTokens[random.nextInt(256)] : random.nextInt(t.vocabSize());
            }
            assertEquals(t.decode(ids), ReferenceTokenizers.streamed(t, ids), "ids " + Arrays.toString(ids));
        }
    }

    private static boolean isCompleteUtf8(byte[] bytes) {
        try {
            StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }
}
