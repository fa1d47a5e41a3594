package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * BPE model rules (merge order, ignore_merges, unk, byte fallback) and GPT-2 byte-level BPE rules,
 * checked by hand on the bundled bard-s tokenizer and on tiny ones.
 */
class BpeTokenizerTest {
    private static final ObjectMapper JSON = BardTokenizerFiles.JSON;
    private static final Path BARD_S = BardTokenizerFiles.BARD_S;
    private static final PipelineTokenizer TOKENIZER = (PipelineTokenizer) Tokenizers.load(BARD_S);
    private static final int END_OF_TEXT = 2047;

    @TempDir
    Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {
        "",
        "Hello, world!",
        "  leading and trailing spaces   ",
        "tabs\tand\t\ttabs",
        "line one\nline two\n\n\nline five\r\n",
        "digits 0 12 345 6789 3.14159 1,000,000",
        "punctuation: ()[]{}<>!?;:'\"`~@#$%^&*-_=+\\|/",
        "Accented Latin: café, naïve, Ærøskøbing, São Paulo",
        "CJK: 你好，世界。日本語のテキスト。한국어",
        "emoji: 🙂👍🏽👨‍👩‍👧 🇫🇷",
        "contractions: I'm, you're, it's, we've, they'll, he'd, don't",
        "WEIRD CAPS: 'S 'T 'RE",
        "mixed\u00A0nbsp\u3000ideographic\u2003em space",
        "<|endoftext|> between <|endoftext|>text<|endoftext|>",
    })
    void decodeOfEncodeIsIdentity(String text) {
        assertEquals(text, TOKENIZER.decode(TOKENIZER.encode(text)));
        assertEquals(text, TOKENIZER.decode(TOKENIZER.encode(text, false)));
    }

    @Test
    void helloWorldPreTokenizesToHelloAndSpaceWorld() {
        assertEquals(List.of("Hello", "Ġworld"), TOKENIZER.preTokenize("Hello world"));
    }

    @Test
    void whitespaceRunLeavesItsLastSpaceToTheFollowingWord() {
        // \s+(?!\S) stops one short of a word, so " ?\p{L}+" gets the space: "  a" -> "Ġ", "Ġa".
        assertEquals(List.of("Ġ", "Ġa"), TOKENIZER.preTokenize("  a"));
        assertEquals(List.of("a", "ĠĠ"), TOKENIZER.preTokenize("a  "));
        assertEquals(List.of("a", "Ċ", "Ċ", "b"), TOKENIZER.preTokenize("a\n\nb"));
    }

    @Test
    void contractionsAndDigitRunsAreSeparatePreTokens() {
        assertEquals(List.of("I", "'ll", "Ġdon", "'t"), TOKENIZER.preTokenize("I'll don't"));
        assertEquals(List.of("abc", "Ġ12345", "!?"), TOKENIZER.preTokenize("abc 12345!?"));
    }

    @Test
    void unicodeWhitespaceCountsAsWhitespaceLikeTheRustCrate() {
        // With ASCII-only \s, the two NBSPs would be one punctuation piece "ÂłÂł".
        assertEquals(List.of("x", "Âł", "Âł", "y"), TOKENIZER.preTokenize("x\u00A0\u00A0y"));
    }

    @Test
    void endOfTextInsideTextEncodesToItsSingleId() {
        int[] ids = TOKENIZER.encode("Hello<|endoftext|>world");
        int[] expected = concat(TOKENIZER.encode("Hello"), new int[] {END_OF_TEXT}, TOKENIZER.encode("world"));
        assertArrayEquals(expected, ids);
    }

    @Test
    void endOfTextIsPlainTextWhenSpecialTokensAreNotParsed() {
        int[] ids = TOKENIZER.encode("Hello<|endoftext|>world", false);
        assertFalse(Arrays.stream(ids).anyMatch(id -> id == END_OF_TEXT));
        int[] special = TOKENIZER.encode("<|endoftext|>", false);
        assertTrue(special.length > 1, "several ids for the spelled-out token");
        assertEquals("<|endoftext|>", TOKENIZER.decode(special));
    }

    @Test
    void specialTokenDecodesToItsContent() {
        assertEquals("a<|endoftext|>", TOKENIZER.decode(new int[] {TOKENIZER.encode("a")[0], END_OF_TEXT}));
        assertEquals("<|endoftext|>", TOKENIZER.tokenContent(END_OF_TEXT));
        assertArrayEquals("<|endoftext|>".getBytes(StandardCharsets.UTF_8), TOKENIZER.tokenBytes(END_OF_TEXT));
    }

    @Test
    void tokenContentIsTheVocabSpellingAndTokenBytesTheRawBytes() {
        int the = TOKENIZER.tokenId("Ġthe").orElseThrow();
        assertEquals("Ġthe", TOKENIZER.tokenContent(the));
        assertArrayEquals(" the".getBytes(StandardCharsets.UTF_8), TOKENIZER.tokenBytes(the));
        assertArrayEquals(new int[] {the}, TOKENIZER.encode(" the"));
        assertTrue(TOKENIZER.tokenId("no such token").isEmpty());
        assertThrows(IllegalArgumentException.class, () -> TOKENIZER.tokenContent(-1));
        assertThrows(IllegalArgumentException.class, () -> TOKENIZER.tokenBytes(TOKENIZER.vocabSize()));
        assertThrows(IllegalArgumentException.class, () -> TOKENIZER.decode(new int[] {TOKENIZER.vocabSize()}));
    }

    @Test
    void lowestRankMergeAppliesFirst() throws IOException {
        // "abc": with (b,c) ranked first it becomes a+bc then abc; with (a,b) first it stops at ab+c.
        Tokenizer bcFirst = tiny(List.of("b c", "a b", "a bc"));
        assertArrayEquals(new int[] {5}, bcFirst.encode("abc"));
        Tokenizer abFirst = tiny(List.of("a b", "b c", "a bc"));
        assertArrayEquals(new int[] {3, 2}, abFirst.encode("abc"));
    }

    @Test
    void equalRankMergesApplyLeftmostFirst() throws IOException {
        // "aaa" has the pair (a,a) twice, overlapping: the left one wins, giving aa+a, not a+aa.
        Tokenizer t = tiny(List.of("a a"));
        assertArrayEquals(new int[] {6, 0}, t.encode("aaa"));
        assertArrayEquals(new int[] {6, 6}, t.encode("aaaa"));
    }

    @Test
    void mergesWrittenAsArraysEqualMergesWrittenAsStrings() throws IOException {
        Tokenizer strings = tiny(List.of("b c", "a b", "a bc"));
        Tokenizer arrays = tiny(List.of(List.of("b", "c"), List.of("a", "b"), List.of("a", "bc")));
        for (String s : List.of("abc", "cab", "bcabca", "aabbcc")) {
            assertArrayEquals(strings.encode(s), arrays.encode(s), s);
        }
    }

    @Test
    void ignoreMergesEncodesAWholeVocabularyPieceAsOneToken() throws IOException {
        // With only "a b" to merge, "abc" becomes ab+c; ignore_merges takes the vocabulary's "abc" as it is.
        assertArrayEquals(new int[] {3, 2}, tiny(List.of("a b")).encode("abc"));
        ObjectNode root = tinyJson(List.of("a b"));
        ((ObjectNode) root.path("model")).put("ignore_merges", true);
        assertArrayEquals(new int[] {5}, load(root).encode("abc"));
        assertArrayEquals(new int[] {3, 0}, load(root).encode("aba")); // not in the vocabulary: merged
    }

    @Test
    void unknownCharactersBecomeTheUnkTokenFusedIntoOneWithFuseUnk() throws IOException {
        // Vocabulary a b c ab bc abc aa: x and y are unknown; no pre-tokenizer, so "xya" is one piece.
        ObjectNode root = tinyJson(List.of());
        root.remove("pre_tokenizer");
        ObjectNode model = (ObjectNode) root.path("model");
        ((ObjectNode) model.path("vocab")).put("<unk>", 7);
        assertArrayEquals(new int[] {0}, load(root).encode("xya")); // no unk token: dropped
        model.put("unk_token", "<unk>");
        assertArrayEquals(new int[] {7, 7, 0}, load(root).encode("xya"));
        model.put("fuse_unk", true);
        assertArrayEquals(new int[] {7, 0, 7}, load(root).encode("xyax"));
    }

    @Test
    void byteFallbackSpellsAnUnknownCharacterWithItsUtf8ByteTokens() throws IOException {
        // 你 is E4 BD A0 in UTF-8; é (C3 A9) lacks <0xA9>, so it falls back to unk instead.
        ObjectNode root = tinyJson(List.of());
        root.remove("pre_tokenizer");
        ObjectNode model = (ObjectNode) root.path("model");
        ObjectNode vocab = (ObjectNode) model.path("vocab");
        vocab.put("<unk>", 7).put("<0xE4>", 8).put("<0xBD>", 9).put("<0xA0>", 10).put("<0xC3>", 11);
        model.put("unk_token", "<unk>").put("byte_fallback", true);
        Tokenizer t = load(root);
        assertArrayEquals(new int[] {0, 8, 9, 10, 1}, t.encode("a你b"));
        assertArrayEquals(new int[] {7}, t.encode("é"));
    }

    @Test
    void byteFallbackFlagChangesNothingWhenEveryCharacterIsInTheVocabulary() throws IOException {
        // Byte-level spelling only makes characters of the 256-character alphabet, all in bard-s's vocabulary.
        Tokenizer withFallback = Tokenizers.load(modifiedBardS(
                root -> ((ObjectNode) root.path("model")).put("byte_fallback", true)));
        String text = "Emoji 🙂 and CJK 你好, café.";
        assertArrayEquals(TOKENIZER.encode(text), withFallback.encode(text));
    }

    @Test
    void vocabularyEntryOutsideTheByteLevelAlphabetDecodesAsItsOwnUtf8() throws IOException {
        // Such an entry cannot come out of byte-level encoding, but it loads, and the ByteLevel decoder
        // renders a token with a character outside its alphabet as that token's own UTF-8.
        Tokenizer t = Tokenizers.load(modifiedBardS(
                root -> ((ObjectNode) root.path("model").path("vocab")).put("▁the", 5000)));
        assertEquals("▁the", t.tokenContent(5000));
        assertEquals("a▁the", t.decode(new int[] {t.encode("a")[0], 5000}));
    }

    @Test
    void splitBeforeByteLevelCutsDigitRunsIntoThrees() throws IOException {
        PipelineTokenizer split = (PipelineTokenizer) Tokenizers.load(modifiedBardS(root -> {
            ArrayNode steps = root.putObject("pre_tokenizer").put("type", "Sequence").putArray("pretokenizers");
            ObjectNode digits = steps.addObject().put("type", "Split").put("behavior", "Isolated").put("invert", false);
            digits.putObject("pattern").put("Regex", "\\p{N}{1,3}");
            steps.addObject().put("type", "ByteLevel").put("add_prefix_space", false).put("use_regex", false);
        }));
        assertEquals(List.of("abcĠ", "123", "45"), split.preTokenize("abc 12345"));
        assertEquals("abc 12345", split.decode(split.encode("abc 12345")));
    }

    @Test
    void addPrefixSpacePrependsASpaceOnlyWhenMissing() throws IOException {
        Tokenizer prefixed = Tokenizers.load(modifiedBardS(
                root -> ((ObjectNode) root.path("pre_tokenizer")).put("add_prefix_space", true)));
        assertArrayEquals(TOKENIZER.encode(" Hello world"), prefixed.encode("Hello world"));
        assertArrayEquals(TOKENIZER.encode(" Hello world"), prefixed.encode(" Hello world"));
    }

    @Test
    void useRegexFalseKeepsTheWholeTextAsOnePreToken() throws IOException {
        PipelineTokenizer noRegex = (PipelineTokenizer) Tokenizers.load(modifiedBardS(
                root -> ((ObjectNode) root.path("pre_tokenizer")).put("use_regex", false)));
        assertEquals(List.of("HelloĠworld"), noRegex.preTokenize("Hello world"));
        assertEquals("Hello world", noRegex.decode(noRegex.encode("Hello world")));
    }

    @Test
    void nfcNormalizerComposesBeforeEncoding() throws IOException {
        Tokenizer nfc = Tokenizers.load(modifiedBardS(root -> root.putObject("normalizer").put("type", "NFC")));
        assertArrayEquals(nfc.encode("caf\u00E9"), nfc.encode("cafe\u0301"));
    }

    @Test
    void gzipCompressedFileLoadsLikeThePlainOne() throws IOException {
        Path gz = tmp.resolve("tokenizer.json.gz");
        try (OutputStream out = new GZIPOutputStream(Files.newOutputStream(gz))) {
            out.write(Files.readAllBytes(BARD_S));
        }
        Tokenizer fromGzip = Tokenizers.load(gz);
        String text = "First Citizen:\nBefore we proceed any further, hear me speak.";
        assertArrayEquals(TOKENIZER.encode(text), fromGzip.encode(text));
    }

    @Test
    void concurrentEncodesGiveTheSameIdsAsSequentialOnes() throws Exception {
        List<String> texts = IntStream.range(0, 400)
                .mapToObj(i -> "Word" + i + " and word" + (i * 7919 % 1000) + ", said the citizen " + i + ".")
                .toList();
        Tokenizer fresh = Tokenizers.load(BARD_S);
        List<int[]> expected = texts.stream().map(TOKENIZER::encode).toList();
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<Boolean>> results = new ArrayList<>();
            for (int thread = 0; thread < 8; thread++) {
                int offset = thread;
                results.add(pool.submit(() -> {
                    for (int k = 0; k < texts.size(); k++) {
                        int i = (k + offset * 50) % texts.size();
                        if (!Arrays.equals(expected.get(i), fresh.encode(texts.get(i)))) {
                            return false;
                        }
                    }
                    return true;
                }));
            }
            for (Future<Boolean> r : results) {
                assertTrue(r.get());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void wordCacheStaysBounded() {
        PipelineTokenizer t = (PipelineTokenizer) Tokenizers.load(BARD_S);
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 12_000; i++) {
            text.append(" w").append(Integer.toString(i, 26).replace('0', 'z').replace('1', 'y'));
        }
        t.encode(text.toString());
        assertTrue(t.cachedWords() <= 10_000, "cache holds " + t.cachedWords() + " words");
        assertTrue(t.cachedWords() > 0);
    }

    // ---------------------------------------------------------------- helpers

    /** A tokenizer over the vocabulary a b c ab bc abc, plus "aa", with the given merges. */
    private Tokenizer tiny(List<?> merges) throws IOException {
        return load(tinyJson(merges));
    }

    private static ObjectNode tinyJson(List<?> merges) {
        ObjectNode root = JSON.createObjectNode();
        root.putArray("added_tokens");
        root.putNull("normalizer");
        root.putObject("pre_tokenizer").put("type", "ByteLevel").put("add_prefix_space", false).put("use_regex", true);
        ObjectNode model = root.putObject("model").put("type", "BPE");
        ObjectNode vocab = model.putObject("vocab");
        String[] tokens = {"a", "b", "c", "ab", "bc", "abc", "aa"};
        for (int i = 0; i < tokens.length; i++) {
            vocab.put(tokens[i], i);
        }
        model.set("merges", JSON.valueToTree(merges));
        return root;
    }

    private Tokenizer load(ObjectNode root) throws IOException {
        Path file = Files.createTempFile(tmp, "tiny", ".json");
        JSON.writeValue(file.toFile(), root);
        return Tokenizers.load(file);
    }

    private Path modifiedBardS(Consumer<ObjectNode> change) throws IOException {
        return BardTokenizerFiles.modifiedBardS(tmp, change);
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }
}
