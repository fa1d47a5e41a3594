package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.tokenizer.Tokenizer.EncoderInput;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The WordPiece tokenizer.json of all-MiniLM-L6-v2 (BERT's normalizer, pre-tokenizer, model, template
 * and decoder) encodes as the independent implementation behind {@code minilm/golden.json}, and
 * encodes and decodes the edge cases of {@code minilm/rust_cases.json} as the Hugging Face crate does.
 */
class WordPieceTokenizerTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static PipelineTokenizer miniLm() {
        return (PipelineTokenizer) ReferenceTokenizers.load("minilm");
    }

    private static JsonNode resource(String name) {
        try (InputStream in = WordPieceTokenizerTest.class.getResourceAsStream("/tokenizers/minilm/" + name)) {
            return JSON.readTree(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static int[] ints(JsonNode array) {
        int[] values = new int[array.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = array.get(i).intValue();
        }
        return values;
    }

    static List<Arguments> goldenCases() {
        List<Arguments> cases = new ArrayList<>();
        for (JsonNode c : resource("golden.json").path("minilm")) {
            cases.add(Arguments.of(c.path("text").textValue(), ints(c.path("ids"))));
        }
        return cases;
    }

    static List<Arguments> rustCases() {
        List<Arguments> cases = new ArrayList<>();
        for (JsonNode c : resource("rust_cases.json").path("cases")) {
            cases.add(Arguments.of(c.path("text").textValue(), ints(c.path("ids")), c.path("decoded").textValue(),
                    c.path("decodedSkippingSpecial").textValue()));
        }
        return cases;
    }

    static List<Arguments> rustDecodes() {
        List<Arguments> cases = new ArrayList<>();
        for (JsonNode c : resource("rust_cases.json").path("decodes")) {
            cases.add(Arguments.of(ints(c.path("ids")), c.path("decoded").textValue(),
                    c.path("decodedSkippingSpecial").textValue()));
        }
        return cases;
    }

    static List<Arguments> rustPairs() {
        List<Arguments> cases = new ArrayList<>();
        for (JsonNode c : resource("rust_cases.json").path("pairs")) {
            cases.add(Arguments.of(c.path("first").textValue(), c.path("second").textValue(), ints(c.path("ids")),
                    ints(c.path("typeIds"))));
        }
        return cases;
    }

    // ---------------------------------------------------------------- the goldens

    @Test
    void goldenHasItsTwentyStrings() {
        assertEquals(20, goldenCases().size());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenCases")
    void encodeWithSpecialTokensGivesTheGoldenIds(String text, int[] ids) {
        Tokenizer t = miniLm();
        assertArrayEquals(ids, t.withSpecialTokens(t.encode(text)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenCases")
    void encoderInputIsTheGoldenIdsWithEveryTypeIdZero(String text, int[] ids) {
        EncoderInput input = miniLm().encoderInput(miniLm().encode(text));
        assertArrayEquals(ids, input.ids());
        assertArrayEquals(new int[ids.length], input.typeIds());
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("goldenCases")
    void streamingDecodeOfTheGoldenIdsIsTheirDecode(String text, int[] ids) {
        assertEquals(miniLm().decode(ids), ReferenceTokenizers.streamed(miniLm(), ids));
    }

    // ---------------------------------------------------------------- what the Rust crate does

    @ParameterizedTest(name = "{0}")
    @MethodSource("rustCases")
    void edgeCasesEncodeAndDecodeAsTheRustCrate(String text, int[] ids, String decoded, String decodedSkippingSpecial) {
        Tokenizer t = miniLm();
        assertArrayEquals(ids, t.withSpecialTokens(t.encode(text)));
        assertEquals(decoded, t.decode(ids));
        assertEquals(decodedSkippingSpecial, t.decode(ids, true));
        assertEquals(decoded, ReferenceTokenizers.streamed(t, ids));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("rustDecodes")
    void handPickedIdsDecodeAsTheRustCrate(int[] ids, String decoded, String decodedSkippingSpecial) {
        assertEquals(decoded, miniLm().decode(ids));
        assertEquals(decodedSkippingSpecial, miniLm().decode(ids, true));
        assertEquals(decoded, ReferenceTokenizers.streamed(miniLm(), ids));
    }

    @ParameterizedTest(name = "{0} / {1}")
    @MethodSource("rustPairs")
    void pairsAreWrappedAndTypedAsTheRustCrate(String first, String second, int[] ids, int[] typeIds) {
        EncoderInput input = miniLm().encoderInput(miniLm().encode(first), miniLm().encode(second));
        assertArrayEquals(ids, input.ids());
        assertArrayEquals(typeIds, input.typeIds());
    }

    // ---------------------------------------------------------------- rules, one at a time

    @Test
    void emptyTextIsClsThenSep() {
        Tokenizer t = miniLm();
        assertArrayEquals(new int[0], t.encode(""));
        assertArrayEquals(new int[] {101, 102}, t.withSpecialTokens(t.encode(" \t\n ")));
        assertEquals("[CLS] [SEP]", t.decode(new int[] {101, 102}));
        assertEquals("", t.decode(new int[] {101, 102}, true));
    }

    @Test
    void aWordOfMoreThanOneHundredCharactersIsOneUnknownToken() {
        Tokenizer t = miniLm();
        assertEquals("a".repeat(100), t.decode(t.encode("a".repeat(100))));
        assertArrayEquals(new int[] {100}, t.encode("a".repeat(101)));
        // Counted after normalizing: é is e plus an accent, which is stripped.
        assertArrayEquals(t.encode("e".repeat(100)), t.encode("\u00E9".repeat(100)));
        assertArrayEquals(new int[] {100, 1037}, t.encode("b".repeat(101) + " a"), "only that word");
    }

    @Test
    void aWordWithAPieceMissingFromTheVocabularyIsWhollyUnknown() {
        // WordPiece does not keep "abc" and "##def" around an unknown snowman: the word is [UNK].
        assertArrayEquals(new int[] {100}, miniLm().encode("abc\u2603def"));
    }

    @Test
    void accentsAreStrippedAndLettersLowered() {
        Tokenizer t = miniLm();
        assertArrayEquals(t.encode("creme brulee naive"), t.encode("Cr\u00E8me BR\u00DBL\u00C9E nai\u0308ve"));
        assertEquals("creme brulee naive", t.decode(t.encode("Cr\u00E8me BR\u00DBL\u00C9E nai\u0308ve")));
    }

    @Test
    void chineseCharactersAreWordsOfTheirOwn() {
        assertEquals(List.of("中", "文", "abc", "北", "京"), miniLm().preTokenize("中文abc北京"));
        // Kana are not in BERT's CJK blocks: they stay in the word.
        assertEquals(List.of("東", "京", "タワーに", "行", "く"), miniLm().preTokenize("東京タワーに行く"));
    }

    @Test
    void controlAndFormatCharactersAreRemovedAndOtherSpacesSeparate() {
        Tokenizer t = miniLm();
        assertArrayEquals(t.encode("abc"), t.encode("a\u0000b\u200Bc\uFEFF"));
        assertArrayEquals(t.encode("abc"), t.encode("a\u000Bb\u0085c"), "controls that are also spaces go too");
        assertEquals(List.of("a", "b", "c"), miniLm().preTokenize("a\u00A0b\u3000c"));
    }

    @Test
    void punctuationIsSplitOffIncludingAsciiSymbols() {
        assertEquals(List.of("a", "$", "b", "+", "c", "“", "d", "”", "e", "—", "f"),
                miniLm().preTokenize("a$b+c“d”e—f"));
        assertEquals(List.of("a€b", "c"), miniLm().preTokenize("a€b c"), "€ is a symbol, not punctuation");
    }

    @Test
    void decodeJoinsContinuationPiecesAndDropsTheSpaceBeforePunctuation() {
        Tokenizer t = miniLm();
        int[] ids = t.encode("Tokenization works, mostly! Right? Yes.");
        assertTrue(ids.length > 8, "tokenization is more than one piece");
        assertEquals("tokenization works, mostly! right? yes.", t.decode(ids));
        // Other punctuation keeps the space that WordPiece's decoder puts between words.
        assertEquals("a : b ( c )", t.decode(t.encode("a: b (c)")));
    }

    @Test
    void tokenBytesRenderATokenAsItStandsMidText() {
        Tokenizer t = miniLm();
        assertEquals(" hello", new String(t.tokenBytes(7592), StandardCharsets.UTF_8));
        assertEquals("ing", new String(t.tokenBytes(t.tokenId("##ing").orElseThrow()), StandardCharsets.UTF_8));
        assertEquals(",", new String(t.tokenBytes(1010), StandardCharsets.UTF_8));
    }

    @Test
    void specialTokensInTheTextAreMatchedUnlessTurnedOff() {
        Tokenizer t = miniLm();
        assertArrayEquals(new int[] {7592, 103, 2088}, t.encode("hello[MASK]world"));
        assertArrayEquals(new int[] {7592, 1031, 7308, 1033, 2088}, t.encode("hello[MASK]world", false));
    }

    @Test
    void vocabularyIsBertUncased() {
        Tokenizer t = miniLm();
        assertEquals(30522, t.vocabSize());
        assertEquals(100, t.tokenId("[UNK]").orElseThrow());
        assertEquals("##ing", t.tokenContent(t.tokenId("##ing").orElseThrow()));
        assertEquals(0, miniLm().cachedWords());
    }
}
