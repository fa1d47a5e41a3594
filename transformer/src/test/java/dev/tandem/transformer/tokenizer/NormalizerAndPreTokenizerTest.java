package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Each supported normalizer and pre-tokenizer of tokenizer.json, on hand-written files: the pieces a
 * text is cut into, as the Rust crate documents them (the split behaviours and Digits examples are
 * those of its documentation).
 */
class NormalizerAndPreTokenizerTest {
    @TempDir
    Path tmp;

    /** The pieces of {@code text} under a tokenizer with these normalizer/pre_tokenizer fields. */
    private List<String> pieces(String fields, String text) {
        return HandWrittenTokenizers.load(tmp, List.of("a"), fields).preTokenize(text);
    }

    private String normalized(String normalizer, String text) {
        List<String> pieces = pieces("{\"normalizer\": " + normalizer + "}", text);
        return String.join("", pieces); // no pre-tokenizer: one piece
    }

    // ---------------------------------------------------------------- normalizers

    @Test
    void unicodeNormalFormsComposeAndDecompose() {
        assertEquals("\u00E9", normalized("{\"type\": \"NFC\"}", "e\u0301"));
        assertEquals("e\u0301", normalized("{\"type\": \"NFD\"}", "\u00E9"));
        assertEquals("fi1", normalized("{\"type\": \"NFKC\"}", "\uFB01\u2460"));
        assertEquals("fie\u0301", normalized("{\"type\": \"NFKD\"}", "\uFB01\u00E9"));
    }

    @Test
    void lowercaseLowersEachCharacterOnItsOwn() {
        // Rust's char::to_lowercase: a word-final capital sigma becomes σ, not the final form ς.
        assertEquals("àb σασ", normalized("{\"type\": \"Lowercase\"}", "ÀB ΣΑΣ"));
        assertEquals("i\u0307x", normalized("{\"type\": \"Lowercase\"}", "\u0130X")); // İ lowers to two chars
    }

    @Test
    void prependAddsItsTextToNonEmptyText() {
        assertEquals("▁ab", normalized("{\"type\": \"Prepend\", \"prepend\": \"▁\"}", "ab"));
        assertEquals(List.of(), pieces("{\"normalizer\": {\"type\": \"Prepend\", \"prepend\": \"▁\"}}", ""));
    }

    @Test
    void replaceSubstitutesALiteralOrARegex() {
        assertEquals("a▁b▁▁c", normalized(
                "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"▁\"}", "a b  c"));
        assertEquals("a b c", normalized(
                "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \" {2,}\"}, \"content\": \" \"}", "a  b    c"));
        // The content is literal text, not a regex replacement with group references.
        assertEquals("$1x", normalized(
                "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \"(a)\"}, \"content\": \"$1\"}", "ax"));
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "true  | false | 'a b \n'",
        "false | true  | '\u00A0 a b'",
        "true  | true  | 'a b'",
    })
    void stripRemovesUnicodeWhitespaceFromTheChosenEnds(boolean left, boolean right, String expected) {
        String strip = "{\"type\": \"Strip\", \"strip_left\": " + left + ", \"strip_right\": " + right + "}";
        assertEquals(expected, normalized(strip, "\u00A0 a b \n"));
    }

    @Test
    void sequenceAppliesNormalizersInOrder() {
        // SentencePiece style: prepend ▁, then every space becomes ▁ (including what Prepend added, if a space).
        String spm = """
                {"type": "Sequence", "normalizers": [
                  {"type": "Prepend", "prepend": "▁"},
                  {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}""";
        assertEquals("▁▁a▁b", normalized(spm, " a b"));
        String reversed = """
                {"type": "Sequence", "normalizers": [
                  {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                  {"type": "Prepend", "prepend": "▁"}]}""";
        assertEquals("▁ a", normalized(reversed, "▁a"));
    }

    @Test
    void bertNormalizerCleansSplitsChineseStripsAccentsAndLowers() {
        String bert = "{\"type\": \"BertNormalizer\", \"clean_text\": true, \"handle_chinese_chars\": true,"
                + " \"strip_accents\": null, \"lowercase\": true}";
        assertEquals("a b  北  京  creme", normalized(bert, "A\u0000\tB\u200B\u00A0北京 Cr\u00E8me"));
        // strip_accents null follows lowercase; each flag works on its own.
        String keepCase = "{\"type\": \"BertNormalizer\", \"clean_text\": false, \"handle_chinese_chars\": false,"
                + " \"strip_accents\": null, \"lowercase\": false}";
        assertEquals("Cr\u00E8me\u0000北京", normalized(keepCase, "Cr\u00E8me\u0000北京"));
        String stripOnly = "{\"type\": \"BertNormalizer\", \"clean_text\": false, \"handle_chinese_chars\": false,"
                + " \"strip_accents\": true, \"lowercase\": false}";
        assertEquals("Creme", normalized(stripOnly, "Cr\u00E8me"));
        // Left-out fields take the Rust crate's defaults: everything on.
        assertEquals("a 北 ", normalized("{\"type\": \"BertNormalizer\"}", "\u00C1\u0001北"));
    }

    @Test
    void bertCharacterClassesAreTheRustCratesUnicode8Ones() {
        // The Rust crate's tables are of Unicode 8.0: younger punctuation, format characters and marks
        // count as letters there, and so here, whatever the JDK's Unicode says.
        assertEquals(Character.OTHER_PUNCTUATION, Character.getType(0x061D)); // Unicode 14
        assertEquals(List.of("a\u061Db"), pieces("{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}", "a\u061Db"));
        assertEquals(List.of("a", "\u166D", "b"), pieces("{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                "a\u166Db"), "Po in Unicode 8, So since");
        String bert = "{\"type\": \"BertNormalizer\"}";
        assertEquals(Character.FORMAT, Character.getType(0x0890)); // Unicode 14
        assertEquals("a\u0890b", normalized(bert, "a\u0890b"));
        assertEquals(Character.NON_SPACING_MARK, Character.getType(0x08CA)); // Unicode 14
        assertEquals("a\u08CAb", normalized(bert, "a\u08CAb"));
        for (int[] table : new int[][] {BertCharTables.PUNCTUATION, BertCharTables.REMOVED, BertCharTables.STRIPPED}) {
            for (int i = 1; i < table.length; i++) {
                assertTrue(table[i] > table[i - 1] || (i % 2 == 1 && table[i] == table[i - 1]), "sorted ranges");
            }
        }
    }

    // ---------------------------------------------------------------- Split

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "Removed            | the,final,countdown",
        "Isolated           | the,-,final,-,-,countdown",
        "MergedWithPrevious | the-,final-,-,countdown",
        "MergedWithNext     | the,-final,-,-countdown",
        "Contiguous         | the,-,final,--,countdown",
    })
    void splitBehavioursPlaceTheDelimiters(String behavior, String expected) {
        String split = "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": \""
                + behavior + "\", \"invert\": false}}";
        assertEquals(List.of(expected.split(",")), pieces(split, "the-final--countdown"));
    }

    @Test
    void invertedSplitTreatsTheGapsAsTheDelimiters() {
        String split = """
                {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\\\d+"}, "behavior": "Removed",
                 "invert": true}}""";
        assertEquals(List.of("12", "345"), pieces(split, "a12bc345d"));
    }

    @Test
    void splitRegexClassesAreUnicode() {
        // \s must take U+3000 and \w the letters of any script.
        String split = """
                {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\\\s+"}, "behavior": "Removed",
                 "invert": false}}""";
        assertEquals(List.of("你好", "世界", "x"), pieces(split, "你好\u3000世界\u00A0x"));
    }

    // ---------------------------------------------------------------- other pre-tokenizers

    @Test
    void whitespaceKeepsWordsAndPunctuationRuns() {
        assertEquals(List.of("Hey", "friend", "!", "How", "are", "you", "?!?"),
                pieces("{\"pre_tokenizer\": {\"type\": \"Whitespace\"}}", "Hey friend!  How are you?!?"));
    }

    @Test
    void whitespaceSplitCutsAtUnicodeWhitespaceOnly() {
        assertEquals(List.of("Hey", "friend!", "x"),
                pieces("{\"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"}}", "Hey friend!\u00A0 x "));
    }

    @Test
    void bertPreTokenizerDropsWhitespaceAndIsolatesEachPunctuationCharacter() {
        // The Rust crate's own example.
        assertEquals(List.of("Hey", "friend", "!", "How", "are", "you", "?", "!", "?"),
                pieces("{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}", "Hey friend!     How are you?!?"));
        // ASCII symbols count as punctuation, other symbols do not; any White_Space separates.
        assertEquals(List.of("a", "$", "5", "+", "b", "€5", "c", "_", "d", "«", "e"),
                pieces("{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}", "a$5+b\u00A0€5\u3000c_d«e"));
    }

    @Test
    void digitsAreIsolatedOneByOneOrAsARun() {
        assertEquals(List.of("Call ", "1", "2", "3", " please"),
                pieces("{\"pre_tokenizer\": {\"type\": \"Digits\", \"individual_digits\": true}}", "Call 123 please"));
        assertEquals(List.of("Call ", "123", " please"),
                pieces("{\"pre_tokenizer\": {\"type\": \"Digits\", \"individual_digits\": false}}", "Call 123 please"));
    }

    @Test
    void metaspaceReplacesSpacesPrependsAndSplitsBeforeEachReplacement() {
        String always = "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"always\"}}";
        assertEquals(List.of("▁Hey", "▁friend!"), pieces(always, "Hey friend!"));
        assertEquals(List.of("▁Hey", "▁", "▁", "▁friend!"), pieces(always, "Hey   friend!"));
        String never = "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"never\"}}";
        assertEquals(List.of("Hey", "▁friend!"), pieces(never, "Hey friend!"));
        String whole = "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"always\","
                + " \"split\": false}}";
        assertEquals(List.of("▁Hey▁friend!"), pieces(whole, "Hey friend!"));
        // Files from before prepend_scheme: add_prefix_space true means "always".
        String legacy = "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"add_prefix_space\": true}}";
        assertEquals(List.of("▁Hey"), pieces(legacy, "Hey"));
    }

    @Test
    void metaspaceFirstPrependsOnlyAtTheStartOfTheInput() {
        // Vocabulary ▁=0 a=1 b=2, no merges, and <s>=3: each piece encodes character by character.
        String fields = """
                {"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "%s"},
                 "added_tokens": [{"id": 3, "content": "<s>", "special": true, "lstrip": false,
                   "rstrip": false, "single_word": false, "normalized": false}]}""";
        PipelineTokenizer first = HandWrittenTokenizers.load(tmp, List.of("▁", "a", "b"), fields.formatted("first"));
        assertArrayEquals(new int[] {0, 1}, first.encode("a"));
        assertArrayEquals(new int[] {3, 1}, first.encode("<s>a")); // "a" does not start the input
        assertArrayEquals(new int[] {0, 2, 3, 1}, first.encode("b<s>a"));
        PipelineTokenizer always = HandWrittenTokenizers.load(tmp, List.of("▁", "a", "b"), fields.formatted("always"));
        assertArrayEquals(new int[] {0, 2, 3, 0, 1}, always.encode("b<s>a"));
    }

    @Test
    void byteLevelAddsItsPrefixSpaceToEveryPieceBeforeIt() {
        // A Split before ByteLevel makes two pieces; add_prefix_space applies to each, as in the Rust crate.
        String fields = """
                {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                  {"type": "Split", "pattern": {"String": ","}, "behavior": "Removed", "invert": false},
                  {"type": "ByteLevel", "add_prefix_space": true, "use_regex": false}]}}""";
        assertEquals(List.of("Ġa", "Ġb", "Ġc"), pieces(fields, "a, b,c"));
    }
}
