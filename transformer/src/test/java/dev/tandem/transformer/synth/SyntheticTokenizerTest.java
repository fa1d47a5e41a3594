package dev.tandem.transformer.synth;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SyntheticTokenizerTest {

    @TempDir
    Path dir;

    private Tokenizer load(int vocab) throws Exception {
        Path f = dir.resolve("tokenizer-" + vocab + ".json");
        Files.write(f, SyntheticTokenizer.json(vocab));
        return Tokenizers.load(f);
    }

    @Test
    void wordsAreBreadthFirst() {
        assertEquals("a", SyntheticTokenizer.word(0));
        assertEquals("z", SyntheticTokenizer.word(25));
        assertEquals("aa", SyntheticTokenizer.word(26));
        assertEquals("az", SyntheticTokenizer.word(51));
        assertEquals("ba", SyntheticTokenizer.word(52));
        assertEquals("zz", SyntheticTokenizer.word(26 + 675));
        assertEquals("aaa", SyntheticTokenizer.word(26 + 676));
    }

    @Test
    void vocabularyHasExactlyTheRequestedSizeAndEveryIdDecodes() throws Exception {
        for (int vocab : new int[] {258, 300, 2048, 32000}) {
            Tokenizer t = load(vocab);
            assertEquals(vocab, t.vocabSize(), "vocab " + vocab);
            for (int id = 0; id < vocab; id++) {
                t.decode(new int[] {id});
                t.tokenBytes(id);
            }
            assertEquals(vocab - 1, t.tokenId(SyntheticTokenizer.END_OF_TEXT).orElseThrow());
            assertEquals("\u0120", t.tokenContent(32));
            assertEquals("\u0100", t.tokenContent(0));
            assertEquals("a", t.tokenContent('a'));
            assertEquals("\u0120a", t.tokenContent(256));
            assertEquals("\u0120" + SyntheticTokenizer.word(vocab - 258), t.tokenContent(vocab - 2));
            assertEquals(" a", t.decode(new int[] {256}));
        }
    }

    @Test
    void encodesIntoTheLongestPseudoWordsAndRoundTrips() throws Exception {
        Tokenizer small = load(2048);
        int[] hello = small.encode(" hello");
        assertEquals("[\u0120he, l, l, o]", Arrays.toString(Arrays.stream(hello).mapToObj(small::tokenContent).toArray()));
        Tokenizer big = load(151936);
        assertEquals("[\u0120hell, o]", Arrays.toString(Arrays.stream(big.encode(" hello")).mapToObj(big::tokenContent).toArray()));

        for (Tokenizer t : new Tokenizer[] {small, big, load(258)}) {
            for (String s : new String[] {" hello world", "Hello, World! 123\n\ttabs  and  spaces",
                    "h\u00e9llo \u2603 \u65e5\u672c\u8a9e \ud83d\ude00", "", " the quick brown fox"}) {
                assertEquals(s, t.decode(t.encode(s)), s);
            }
            int eot = t.vocabSize() - 1;
            assertArrayEquals(new int[] {eot}, t.encode(SyntheticTokenizer.END_OF_TEXT));
            assertEquals(SyntheticTokenizer.END_OF_TEXT, t.decode(new int[] {eot}));
        }
        // A random-looking run of merged ids decodes to space-separated pseudo-words.
        String text = big.decode(new int[] {256, 300, 5000, 100000});
        assertTrue(text.matches("( [a-z]+){4}"), text);
    }

    @Test
    void rejectsTooSmallAVocabulary() {
        TandemException e = assertThrows(TandemException.class, () -> SyntheticTokenizer.json(257));
        assertTrue(e.getMessage().contains("at least 258"), e.getMessage());
    }
}
