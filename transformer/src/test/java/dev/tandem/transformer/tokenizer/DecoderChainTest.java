package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each supported decoder of tokenizer.json on hand-written vocabularies (token i has id i), decoded in
 * one go and streamed one id at a time; expectations follow the Rust crate's decoders (its own unit
 * test examples where it has them).
 */
class DecoderChainTest {
    private static final String SENTENCE_PIECE = """
            {"decoder": {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
              {"type": "ByteFallback"},
              {"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}""";

    @TempDir
    Path tmp;

    /** Decodes ids 0, 1, ... n-1 of a vocabulary of n tokens, checking that streaming agrees. */
    private String decodeAll(List<String> vocab, String fields) {
        return decode(vocab, fields, IntStream.range(0, vocab.size()).toArray());
    }

    private String decode(List<String> vocab, String fields, int[] ids) {
        Tokenizer t = HandWrittenTokenizers.load(tmp, vocab, fields);
        String text = t.decode(ids);
        assertEquals(text, ReferenceTokenizers.streamed(t, ids), "streamed");
        return text;
    }

    @Test
    void withoutADecoderTokensAreJoinedWithSpaces() {
        assertEquals("Hey friend !", decodeAll(List.of("Hey", "friend", "!"), "{}"));
    }

    @Test
    void metaspaceTurnsReplacementsIntoSpacesAndDropsTheFirstTokensLeadingOne() {
        List<String> vocab = List.of("▁Hey", "▁friend!");
        assertEquals("Hey friend!", decodeAll(vocab,
                "{\"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"always\"}}"));
        assertEquals(" Hey friend!", decodeAll(vocab,
                "{\"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"never\"}}"));
        assertEquals("Hey friend!", decodeAll(vocab,
                "{\"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"add_prefix_space\": true}}"));
    }

    @Test
    void wordPieceJoinsContinuationPiecesAndSpacesWords() {
        // The Rust crate's own example: only a token after the first loses its prefix.
        List<String> vocab = List.of("##uelo", "Ara", "##új", "##o", "No", "##guera");
        assertEquals("##uelo Araújo Noguera",
                decodeAll(vocab, "{\"decoder\": {\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": false}}"));
    }

    @Test
    void wordPieceCleanupDropsTheSpaceBeforeSomePunctuationWithinEachToken() {
        List<String> vocab = List.of("hello", ",", "world", "!", "(", "yes", ")", ".", "?", "'", "s");
        String cleanup = "{\"decoder\": {\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": true}}";
        assertEquals("hello, world! ( yes ).? ' s", decodeAll(vocab, cleanup));
        assertEquals("hello , world ! ( yes ) . ? ' s",
                decodeAll(vocab, "{\"decoder\": {\"type\": \"WordPiece\", \"cleanup\": false}}"));
        // Cleanup works on one token at a time, so it cannot join tokens: "do" "not" stays apart.
        assertEquals("do not", decodeAll(List.of("do", "not"), cleanup));
    }

    @Test
    void stripBeforeFuseStripsEveryToken() {
        assertEquals("ey friend!HH", decodeAll(List.of("Hey", " friend!", "HHH"),
                "{\"decoder\": {\"type\": \"Strip\", \"content\": \"H\", \"start\": 1, \"stop\": 0}}"));
        assertEquals("He friend!", decodeAll(List.of("Hey", " friend!"),
                "{\"decoder\": {\"type\": \"Strip\", \"content\": \"y\", \"start\": 0, \"stop\": 1}}"));
    }

    @Test
    void stripAfterFuseStripsTheEndsOfTheWholeText() {
        String fields = """
                {"decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"},
                  {"type": "Strip", "content": " ", "start": 1, "stop": 1}]}}""";
        // Fused: " ab  " -> one leading and one trailing space removed.
        assertEquals("ab ", decodeAll(List.of(" a", "b ", " "), fields));
        Tokenizer t = HandWrittenTokenizers.load(tmp, List.of(" a", "b ", " "), fields);
        StreamingDecoder stream = t.streamingDecoder();
        assertEquals("a", stream.push(0));
        assertEquals("b", stream.push(1)); // its space may be the last character: held
        assertEquals(" ", stream.push(2)); // now it is not
        assertEquals("", stream.flush());
    }

    @Test
    void byteFallbackRunsBecomeTheCharactersTheirBytesSpell() {
        List<String> vocab = List.of("<0xE4>", "<0xBD>", "<0xA0>", "a", "<0xFF>", "▁b");
        assertEquals("你a", decode(vocab, SENTENCE_PIECE, new int[] {0, 1, 2, 3}));
        assertEquals("a你 b", decode(vocab, SENTENCE_PIECE, new int[] {3, 0, 1, 2, 5}));
    }

    @Test
    void byteFallbackRunThatIsNotValidUtf8BecomesOneReplacementPerByte() {
        List<String> vocab = List.of("<0xE4>", "<0xBD>", "<0xA0>", "a", "<0xFF>");
        assertEquals("\uFFFD\uFFFDa", decode(vocab, SENTENCE_PIECE, new int[] {0, 1, 3})); // cut short
        assertEquals("\uFFFD".repeat(4), decode(vocab, SENTENCE_PIECE, new int[] {4, 0, 1, 2}));
        // A valid character followed by a bad byte in the same run: the whole run is replaced.
        assertEquals("\uFFFD".repeat(4) + "a", decode(vocab, SENTENCE_PIECE, new int[] {0, 1, 2, 4, 3}));
    }

    @Test
    void streamingHoldsAByteFallbackRunUntilItEnds() {
        Tokenizer t = HandWrittenTokenizers.load(tmp, List.of("<0xE4>", "<0xBD>", "<0xA0>", "a", "<0xFF>"),
                SENTENCE_PIECE);
        StreamingDecoder stream = t.streamingDecoder();
        assertEquals("", stream.push(0));
        assertEquals("", stream.push(1));
        assertEquals("", stream.push(2)); // "你" is complete, but a bad byte could still follow
        assertEquals("\uFFFD".repeat(4), stream.push(4)); // and one did: the run is invalid, known at once
        assertEquals("\uFFFD", stream.push(0)); // the run goes on, invalid
        assertEquals("a", stream.push(3));
        assertEquals("", stream.flush());
    }

    @Test
    void sentencePieceChainStripsOnlyTheFirstTokensLeadingSpace() {
        List<String> vocab = List.of("▁Hello", "▁world", "<0x0A>");
        assertEquals("Hello world\n world", decode(vocab, SENTENCE_PIECE, new int[] {0, 1, 2, 1}));
        Tokenizer t = HandWrittenTokenizers.load(tmp, vocab, SENTENCE_PIECE);
        StreamingDecoder stream = t.streamingDecoder();
        assertEquals("Hello", stream.push(0));
        assertEquals(" world", stream.push(1));
        assertEquals("", stream.flush());
        assertEquals("world", stream.push(1)); // after flush, a new text begins
    }

    @Test
    void literalReplaceAfterFuseHoldsWhatMayStartAMatch() {
        String fields = """
                {"decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"},
                  {"type": "Replace", "pattern": {"String": "ab"}, "content": "X"}]}}""";
        assertEquals("Xac", decode(List.of("a", "b", "c"), fields, new int[] {0, 1, 0, 2}));
        StreamingDecoder stream = HandWrittenTokenizers.load(tmp, List.of("a", "b", "c"), fields).streamingDecoder();
        assertEquals("", stream.push(0));
        assertEquals("X", stream.push(1));
        assertEquals("", stream.push(0));
        assertEquals("ac", stream.push(2));
        assertEquals("", stream.flush());
    }

    @Test
    void regexReplaceAfterFuseSeesTheWholeText() {
        String fields = """
                {"decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"},
                  {"type": "Replace", "pattern": {"Regex": "a+"}, "content": "-"}]}}""";
        assertEquals("-b-", decode(List.of("a", "b"), fields, new int[] {0, 0, 1, 0}));
    }

    @Test
    void tokenBytesAreWhatATokenAddsInTheMiddleOfATextBeforeUtf8Decoding() {
        Tokenizer t = HandWrittenTokenizers.load(tmp, List.of("▁the", "<0xE4>", "x"), SENTENCE_PIECE);
        assertArrayEquals(" the".getBytes(StandardCharsets.UTF_8), t.tokenBytes(0)); // Strip is for the start
        assertArrayEquals(new byte[] {(byte) 0xE4}, t.tokenBytes(1));
        Tokenizer plain = HandWrittenTokenizers.load(tmp, List.of("a", "b"), "{}");
        assertArrayEquals(" b".getBytes(StandardCharsets.UTF_8), plain.tokenBytes(1)); // joined with a space
    }

    @Test
    void decodingAnUnknownIdNamesIt() {
        Tokenizer t = HandWrittenTokenizers.load(tmp, List.of("a", "b"), SENTENCE_PIECE);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.decode(new int[] {0, 7}));
        assertEquals("token id 7 is outside the vocabulary [0, 2)", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> t.streamingDecoder().push(-1));
    }

    @Test
    void randomIdsStreamExactlyLikeBatchDecodeThroughTheSentencePieceChain() {
        // Byte tokens of every kind (ASCII, leads, continuations, invalid) mixed with ▁ words.
        List<String> vocab = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            vocab.add(String.format("<0x%02X>", b));
        }
        vocab.addAll(List.of("▁", "▁a", "b▁", "▁▁", "c"));
        Tokenizer t = HandWrittenTokenizers.load(tmp, vocab, SENTENCE_PIECE);
        Random random = new Random(7);
        for (int trial = 0; trial < 5_000; trial++) {
            int[] ids = random.ints(1 + random.nextInt(10), 0, vocab.size()).toArray();
            assertEquals(t.decode(ids), ReferenceTokenizers.streamed(t, ids), Arrays.toString(ids));
        }
    }
}
