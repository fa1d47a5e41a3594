package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.tandem.transformer.TestModels;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Streaming decode emits only whole characters and adds up to the batch decode. */
class StreamingDecoderTest {
    private static final Tokenizer TOKENIZER =
            Tokenizers.load(TestModels.model("bard-s").resolve("tokenizer.json"));

    @Test
    void pushesNeverSplitACharacterAndConcatenateToTheFullDecode() {
        String text = "Emoji 🙂👍🏽 and CJK 你好世界, then 日本語 and more 🇫🇷!";
        int[] ids = TOKENIZER.encode(text);
        // The test means something only if some token ends inside a character.
        assertTrue(Arrays.stream(ids).anyMatch(id -> !isCompleteUtf8(TOKENIZER.tokenBytes(id))),
                "expected at least one token holding part of a UTF-8 character");

        StreamingDecoder decoder = TOKENIZER.streamingDecoder();
        StringBuilder streamed = new StringBuilder();
        for (int id : ids) {
            String piece = decoder.push(id);
            assertFalse(piece.contains("\uFFFD"), "replacement character in push result " + piece);
            assertFalse(hasLoneSurrogate(piece), "lone surrogate in push result");
            streamed.append(piece);
        }
        streamed.append(decoder.flush());
        assertEquals(TOKENIZER.decode(ids), streamed.toString());
        assertEquals(text, streamed.toString());
    }

    @Test
    void flushReturnsAnUnfinishedCharacterAsReplacement() {
        byte[] smile = "🙂".getBytes(StandardCharsets.UTF_8);
        int firstByte = TOKENIZER.tokenId(ByteLevel.spell(new byte[] {smile[0]})).orElseThrow();
        StreamingDecoder decoder = TOKENIZER.streamingDecoder();
        assertEquals("", decoder.push(firstByte));
        assertEquals(TOKENIZER.decode(new int[] {firstByte}), decoder.flush());
        assertEquals("", decoder.flush());
    }

    @Test
    void randomIdSequencesStreamToTheSameTextAsBatchDecode() {
        // Random ids make every kind of malformed UTF-8; streaming must replace it exactly as decode does.
        Random random = new Random(42);
        for (int trial = 0; trial < 20_000; trial++) {
            int[] ids = new int[1 + random.nextInt(12)];
            for (int i = 0; i < ids.length; i++) {
                // Favour the single-byte tokens (ids below 256 here) so multi-byte sequences get built.
                ids[i] = random.nextBoolean() ? random.nextInt(256) : random.nextInt(TOKENIZER.vocabSize());
            }
            StreamingDecoder decoder = TOKENIZER.streamingDecoder();
            StringBuilder streamed = new StringBuilder();
            for (int id : ids) {
                String piece = decoder.push(id);
                assertFalse(hasLoneSurrogate(piece), "lone surrogate for ids " + Arrays.toString(ids));
                streamed.append(piece);
            }
            streamed.append(decoder.flush());
            assertEquals(TOKENIZER.decode(ids), streamed.toString(), "ids " + Arrays.toString(ids));
        }
    }

    @Test
    void everyShortSequenceOfBoundaryBytesStreamsLikeBatchDecode() {
        // Bytes at the edges of every UTF-8 rule (continuation ranges, overlong and surrogate leads,
        // bytes that never lead), in all sequences of up to four single-byte tokens.
        int[] edges = {0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1,
            0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xF8, 0xFF};
        int[] byteIds = new int[edges.length];
        for (int i = 0; i < edges.length; i++) {
            byteIds[i] = TOKENIZER.tokenId(ByteLevel.spell(new byte[] {(byte) edges[i]}))
                    .orElseThrow();
        }
        for (int length = 1; length <= 4; length++) {
            int combinations = (int) Math.pow(edges.length, length);
            int[] ids = new int[length];
            for (int code = 0; code < combinations; code++) {
                for (int i = 0, c = code; i < length; i++, c /= edges.length) {
                    ids[i] = byteIds[c % edges.length];
                }
                StreamingDecoder decoder = TOKENIZER.streamingDecoder();
                StringBuilder streamed = new StringBuilder();
                for (int id : ids) {
                    streamed.append(decoder.push(id));
                }
                streamed.append(decoder.flush());
                String expected = TOKENIZER.decode(ids);
                if (!expected.equals(streamed.toString())) {
                    assertEquals(expected, streamed.toString(), "ids " + Arrays.toString(ids));
                }
            }
        }
    }

    @Test
    void byteLevelDecodeEqualsOneShotUtf8DecodingOfTheTokensBytes() {
        // decode runs the same chunked steps as streaming; cutting at token boundaries must not change
        // how malformed bytes are replaced compared with decoding all bytes at once.
        int[] edges = {0x41, 0x80, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF};
        int[] byteIds = new int[edges.length];
        for (int i = 0; i < edges.length; i++) {
            byteIds[i] = TOKENIZER.tokenId(ByteLevel.spell(new byte[] {(byte) edges[i]})).orElseThrow();
        }
        for (int length = 1; length <= 4; length++) {
            int[] ids = new int[length];
            for (int code = 0; code < Math.pow(edges.length, length); code++) {
                ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                for (int i = 0, c = code; i < length; i++, c /= edges.length) {
                    ids[i] = byteIds[c % edges.length];
                    bytes.write(edges[c % edges.length]);
                }
                String oneShot = bytes.toString(StandardCharsets.UTF_8);
                if (!oneShot.equals(TOKENIZER.decode(ids))) {
                    assertEquals(oneShot, TOKENIZER.decode(ids), "ids " + Arrays.toString(ids));
                }
            }
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

    private static boolean hasLoneSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
                    return true;
                }
                i++;
            } else if (Character.isLowSurrogate(c)) {
                return true;
            }
        }
        return false;
    }
}
