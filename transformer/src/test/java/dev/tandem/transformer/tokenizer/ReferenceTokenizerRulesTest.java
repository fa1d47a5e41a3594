package dev.tandem.transformer.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Cases beyond the goldens on the real spm32k, llama3 and qwen3 files, each expectation worked out from
 * what the file declares (its normalizer, pre-tokenizer regex, post-processor, decoder).
 */
class ReferenceTokenizerRulesTest {
    private static final String DECOMPOSED = "cafe\u0301"; // e + COMBINING ACUTE ACCENT
    private static final String COMPOSED = "caf\u00E9";

    private static PipelineTokenizer tokenizer(String name) {
        return (PipelineTokenizer) ReferenceTokenizers.load(name);
    }

    // ---------------------------------------------------------------- decomposed accents

    @Test
    void qwen3NfcNormalizerEncodesADecomposedAccentLikeTheComposedOne() {
        PipelineTokenizer qwen = tokenizer("qwen3");
        assertArrayEquals(qwen.encode(COMPOSED), qwen.encode(DECOMPOSED));
        // NFC first, so the regex sees the letter é and "café" is one piece.
        assertEquals(List.of(ByteLevel.spell(COMPOSED)), qwen.preTokenize(DECOMPOSED));
        assertEquals(COMPOSED, qwen.decode(qwen.encode(DECOMPOSED)));
    }

    @Test
    void llama3WithoutNormalizerKeepsTheCombiningAccentAsItsOwnPiece() {
        PipelineTokenizer llama = tokenizer("llama3");
        // No normalizer: U+0301 is a mark, not \p{L}, so "[^\r\n\p{L}\p{N}]?\p{L}+" stops before it and
        // " ?[^\s\p{L}\p{N}]+[\r\n]*" takes it alone. ignore_merges makes that piece, which the vocabulary
        // holds (bytes CC 81), one token.
        assertEquals(List.of("cafe", ByteLevel.spell("\u0301")), llama.preTokenize(DECOMPOSED));
        int accent = llama.tokenId(ByteLevel.spell("\u0301")).orElseThrow();
        assertArrayEquals(concat(llama.encode("cafe"), new int[] {accent}), llama.encode(DECOMPOSED));
        assertFalse(Arrays.equals(llama.encode(COMPOSED), llama.encode(DECOMPOSED)));
        assertEquals(DECOMPOSED, llama.decode(llama.encode(DECOMPOSED)));
    }

    @Test
    void spm32kWithoutUnicodeNormalizerKeepsTheCombiningAccent() {
        PipelineTokenizer spm = tokenizer("spm32k");
        // The normalizer only prepends ▁ and replaces spaces; U+0301 is in the vocabulary and no merge
        // names it, so it ends the encoding as its own token after the encoding of "cafe".
        assertEquals(List.of("▁cafe\u0301"), spm.preTokenize(DECOMPOSED));
        int accent = spm.tokenId("\u0301").orElseThrow();
        assertArrayEquals(concat(spm.encode("cafe"), new int[] {accent}), spm.encode(DECOMPOSED));
        assertFalse(Arrays.equals(spm.encode(COMPOSED), spm.encode(DECOMPOSED)));
        assertEquals(DECOMPOSED, spm.decode(spm.encode(DECOMPOSED)));
    }

    // ---------------------------------------------------------------- Unicode whitespace

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen3"})
    void noBreakSpaceIsWhitespaceToTheSplitRegex(String name) {
        PipelineTokenizer t = tokenizer(name);
        // At the first NBSP the letter alternative fails (an NBSP follows, not a letter), and with a
        // Unicode \s " ?[^\s\p{L}\p{N}]+" cannot take it; "\s+(?!\S)" takes one NBSP, leaving the other to
        // prefix "world" as "[^\r\n\p{L}\p{N}]?\p{L}+" does a space. With an ASCII \s the two NBSPs
        // would be one punctuation piece.
        assertEquals(List.of("hello", ByteLevel.spell("\u00A0"), ByteLevel.spell("\u00A0world")),
                t.preTokenize("hello\u00A0\u00A0world"));
        assertEquals(List.of("end", ByteLevel.spell("\u00A0\u00A0")), t.preTokenize("end\u00A0\u00A0"));
        assertEquals("hello\u00A0\u00A0world", t.decode(t.encode("hello\u00A0\u00A0world")));
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen3"})
    void ideographicSpaceIsWhitespaceToTheSplitRegex(String name) {
        PipelineTokenizer t = tokenizer(name);
        assertEquals(List.of(ByteLevel.spell("你好"), ByteLevel.spell("\u3000"), ByteLevel.spell("\u3000世界")),
                t.preTokenize("你好\u3000\u3000世界"));
        assertEquals("你好\u3000\u3000世界", t.decode(t.encode("你好\u3000\u3000世界")));
    }

    @Test
    void llama3EncodesEachWholeVocabularyPieceAsOneToken() {
        // ignore_merges: "hello" and the lone NBSP are vocabulary entries, so each is one id.
        PipelineTokenizer llama = tokenizer("llama3");
        int[] ids = llama.encode("hello\u00A0\u00A0world");
        assertEquals(llama.tokenId("hello").orElseThrow(), ids[0]);
        assertEquals(llama.tokenId(ByteLevel.spell("\u00A0")).orElseThrow(), ids[1]);
    }

    @Test
    void spm32kReplacesOnlyTheAsciiSpaceWithTheMetaspace() {
        PipelineTokenizer spm = tokenizer("spm32k");
        assertEquals(List.of("▁a▁b"), spm.preTokenize("a b"));
        assertEquals(List.of("▁a\u00A0b"), spm.preTokenize("a\u00A0b"));
        assertEquals(List.of("▁a\u3000b"), spm.preTokenize("a\u3000b"));
        for (String text : List.of("a\u00A0b", "a\u3000b", " \u00A0 x")) {
            assertEquals(text, spm.decode(spm.encode(text)));
        }
    }

    // ---------------------------------------------------------------- post-processor and decoder

    @Test
    void spm32kTemplatePrependsBos() {
        Tokenizer spm = ReferenceTokenizers.load("spm32k");
        assertArrayEquals(new int[] {1, 22557, 28725}, spm.withSpecialTokens(new int[] {22557, 28725}));
        assertArrayEquals(new int[] {1}, spm.withSpecialTokens(new int[0]));
        assertTrue(spm.addsSpecialTokens());
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama3", "qwen3"})
    void byteLevelPostProcessorAddsNothing(String name) {
        Tokenizer t = ReferenceTokenizers.load(name);
        int[] ids = t.encode("Hello, world");
        assertArrayEquals(ids, t.withSpecialTokens(ids));
        assertFalse(t.addsSpecialTokens());
    }

    @Test
    void spm32kDecodeKeepsBosUnlessSkippedAndStripsOnlyTheTextsFirstSpace() {
        Tokenizer spm = ReferenceTokenizers.load("spm32k");
        int[] ids = spm.withSpecialTokens(spm.encode("Hello Hello")); // <s> ▁Hello ▁Hello
        // Replace ▁ -> " " gives "<s>", " Hello", " Hello"; Fuse joins them; Strip removes one leading
        // space of the joined text, and there is none before "<s>".
        assertEquals("<s> Hello Hello", spm.decode(ids));
        assertEquals("Hello Hello", spm.decode(ids, true));
        assertEquals("<s> Hello Hello", ReferenceTokenizers.streamed(spm, ids));
    }

    @Test
    void qwen3SpecialTokenInTextIsOneIdUnlessSpecialTokensAreNotParsed() {
        Tokenizer qwen = ReferenceTokenizers.load("qwen3");
        int endOfText = qwen.tokenId("<|endoftext|>").orElseThrow();
        assertArrayEquals(concat(qwen.encode("a"), new int[] {endOfText}, qwen.encode("b")),
                qwen.encode("a<|endoftext|>b"));
        int[] plain = qwen.encode("a<|endoftext|>b", false);
        assertFalse(Arrays.stream(plain).anyMatch(id -> id == endOfText));
        assertEquals("a<|endoftext|>b", qwen.decode(plain));
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }
}
