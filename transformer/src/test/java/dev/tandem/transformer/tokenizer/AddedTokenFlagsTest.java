package dev.tandem.transformer.tokenizer;

import static dev.tandem.transformer.tokenizer.HandWrittenTokenizers.asciiIds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The flags of {@code added_tokens} (lstrip, rstrip, single_word, normalized, special), each checked on
 * a hand-written tokenizer whose model spells every printable ASCII character as its own token (id =
 * code - 32, no merges), after a Lowercase normalizer. So plain text encodes to one id per lower-cased
 * character, and every expected encoding below follows from the flags alone.
 */
class AddedTokenFlagsTest {
    private static final int MASK = 100;
    private static final int LEFT = 101;
    private static final int RIGHT = 102;
    private static final int CAT = 103;
    private static final int DOG = 104;
    private static final int COW = 105;
    private static final int END = 106;
    private static final int XY = 107;
    private static final int XYZ = 108;

    private static PipelineTokenizer tokenizer;

    @BeforeAll
    static void load(@TempDir Path tmp) {
        tokenizer = HandWrittenTokenizers.load(tmp, HandWrittenTokenizers.printableAscii(), """
                {
                  "normalizer": {"type": "Lowercase"},
                  "decoder": {"type": "Fuse"},
                  "added_tokens": [
                    {"id": 100, "content": "<mask>", "special": true, "lstrip": true, "rstrip": true,
                     "single_word": false, "normalized": false},
                    {"id": 101, "content": "[L]", "special": false, "lstrip": true, "rstrip": false,
                     "single_word": false, "normalized": false},
                    {"id": 102, "content": "[R]", "special": false, "lstrip": false, "rstrip": true,
                     "single_word": false, "normalized": false},
                    {"id": 103, "content": "cat", "special": false, "lstrip": false, "rstrip": false,
                     "single_word": true, "normalized": false},
                    {"id": 104, "content": "Dog", "special": false, "lstrip": false, "rstrip": false,
                     "single_word": false, "normalized": true},
                    {"id": 105, "content": "Cow", "special": false, "lstrip": false, "rstrip": false,
                     "single_word": false, "normalized": false},
                    {"id": 106, "content": "<|end|>", "special": true, "lstrip": false, "rstrip": false,
                     "single_word": false, "normalized": false},
                    {"id": 107, "content": "xy", "special": false, "lstrip": false, "rstrip": false,
                     "single_word": false, "normalized": false},
                    {"id": 108, "content": "xyz", "special": false, "lstrip": false, "rstrip": false,
                     "single_word": false, "normalized": false}
                  ]
                }
                """);
    }

    @Test
    void lstripAndRstripTakeTheWhitespaceOnBothSides() {
        assertArrayEquals(concat(asciiIds("a"), ids(MASK), asciiIds("b")), tokenizer.encode("a <mask> b"));
        assertArrayEquals(concat(asciiIds("a"), ids(MASK), asciiIds("b")), tokenizer.encode("a \t<mask>\n  b"));
    }

    @Test
    void lstripAloneTakesOnlyTheWhitespaceBefore() {
        assertArrayEquals(concat(asciiIds("a"), ids(LEFT), asciiIds(" b")), tokenizer.encode("a  [L] b"));
    }

    @Test
    void rstripAloneTakesOnlyTheWhitespaceAfter() {
        assertArrayEquals(concat(asciiIds("a "), ids(RIGHT), asciiIds("b")), tokenizer.encode("a [R]  b"));
    }

    @Test
    void lstripDoesNotReachBackIntoWhitespaceThePreviousTokenTook() {
        // [R] takes the two spaces; [L] finds none left to take.
        assertArrayEquals(concat(ids(RIGHT, LEFT), asciiIds("x")), tokenizer.encode("[R]  [L]x"));
    }

    @Test
    void singleWordTokenMatchesOnlyWhenNoWordCharacterTouchesIt() {
        assertArrayEquals(ids(CAT), tokenizer.encode("cat"));
        assertArrayEquals(concat(asciiIds("a "), ids(CAT), asciiIds(".")), tokenizer.encode("a cat."));
        assertArrayEquals(asciiIds("concat"), tokenizer.encode("concat"));
        assertArrayEquals(asciiIds("cats"), tokenizer.encode("cats"));
        assertArrayEquals(asciiIds("cat_1"), tokenizer.encode("cat_1")); // '_' is a word character (\w)
    }

    @Test
    void normalizedTokenIsMatchedByItsNormalizedContentInNormalizedText() {
        // "Dog" normalizes to "dog"; "HOT DOG" and "hot Dog" both normalize to "hot dog".
        assertArrayEquals(concat(asciiIds("hot "), ids(DOG)), tokenizer.encode("HOT DOG"));
        assertArrayEquals(concat(asciiIds("hot "), ids(DOG)), tokenizer.encode("hot Dog"));
        assertArrayEquals(concat(asciiIds("hot"), ids(DOG), asciiIds("s")), tokenizer.encode("hotdogs"));
    }

    @Test
    void tokenNotNormalizedIsMatchedOnlyInTheRawText() {
        assertArrayEquals(ids(COW), tokenizer.encode("Cow"));
        // Lower-cased, "COW" becomes "cow", but the raw text never held "Cow".
        assertArrayEquals(asciiIds("cow"), tokenizer.encode("COW"));
        assertArrayEquals(asciiIds("cow"), tokenizer.encode("cow"));
    }

    @Test
    void specialTokensArePlainTextWhenSpecialTokensAreNotParsed() {
        assertArrayEquals(concat(asciiIds("a"), ids(END), asciiIds("b")), tokenizer.encode("a<|end|>b"));
        assertArrayEquals(asciiIds("a<|end|>b"), tokenizer.encode("a<|end|>b", false));
        // Not matched, so its lstrip/rstrip do not apply either.
        assertArrayEquals(asciiIds("a <mask> b"), tokenizer.encode("A <MASK> B", false));
    }

    @Test
    void nonSpecialAddedTokensStillMatchWhenSpecialTokensAreNotParsed() {
        assertArrayEquals(concat(asciiIds("a "), ids(CAT)), tokenizer.encode("a cat", false));
    }

    @Test
    void longestAddedTokenWinsAtTheLeftmostPosition() {
        assertArrayEquals(ids(XYZ), tokenizer.encode("xyz"));
        assertArrayEquals(concat(ids(XY), asciiIds("y")), tokenizer.encode("xyy"));
        assertArrayEquals(concat(asciiIds("a"), ids(XYZ), asciiIds("z")), tokenizer.encode("axyzz"));
    }

    @Test
    void decodeKeepsSpecialTokensUnlessAskedToSkipThem() {
        int[] ids = concat(asciiIds("a"), ids(MASK, CAT, END));
        assertEquals("a<mask>cat<|end|>", tokenizer.decode(ids));
        assertEquals("a<mask>cat<|end|>", tokenizer.decode(ids, false));
        assertEquals("acat", tokenizer.decode(ids, true)); // cat is an added token, but not special
    }

    private static int[] ids(int... ids) {
        return ids;
    }

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(Arrays::stream).toArray();
    }
}
