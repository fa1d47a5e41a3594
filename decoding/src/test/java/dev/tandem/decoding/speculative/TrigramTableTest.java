package dev.tandem.decoding.speculative;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The trigram table: counts, back-off and order; capped online updates; copies that do not leak; corpus files. */
class TrigramTableTest {
    // Trigrams: (1,2)→3 twice, (1,2)→4 once, (2,3)→1 twice, (3,1)→2 twice, (2,4)→5, (4,5)→2, (5,2)→6.
    // Bigrams after 2: 3 twice, 4 once, 6 once.
    static final int[] STREAM = {1, 2, 3, 1, 2, 3, 1, 2, 4, 5, 2, 6};

    /** The excerpt the decoding tests build their corpus table from (see AdedDecodingTest). */
    static Path excerpt() throws URISyntaxException {
        return Path.of(TrigramTableTest.class.getResource("/corpus/excerpt.txt").toURI());
    }

    static Tokenizer bardTokenizer() {
        return Tokenizers.load(TestModels.model("bard-l").resolve("tokenizer.json"));
    }

    private static void assertSuccessors(List<TrigramTable.Successor> actual, double[] expected) {
        assertEquals(expected.length / 2, actual.size(), actual.toString());
        for (int i = 0; i < actual.size(); i++) {
            assertEquals((int) expected[2 * i], actual.get(i).token(), actual.toString());
            assertEquals(expected[2 * i + 1], actual.get(i).probability(), 1e-12, actual.toString());
        }
    }

    @Test
    void countsGiveProbabilitiesMostLikelyFirst() {
        TrigramTable t = TrigramTable.fromTokens(STREAM);
        assertEquals(STREAM.length, t.corpusTokens());
        assertEquals(7, t.corpusTrigrams());
        assertSuccessors(t.successors(1, 2, 8), new double[] {3, 2.0 / 3, 4, 1.0 / 3});
        assertSuccessors(t.successors(1, 2, 1), new double[] {3, 2.0 / 3});
        assertSuccessors(t.successors(2, 3, 8), new double[] {1, 1.0});
    }

    @Test
    void anUnseenPairBacksOffToTheBigramWithLowerIdsFirstOnTies() {
        TrigramTable t = TrigramTable.fromTokens(STREAM);
        double[] afterTwo = {3, 0.5, 4, 0.25, 6, 0.25};
        assertSuccessors(t.successors(9, 2, 8), afterTwo);
        assertSuccessors(t.successors(-1, 2, 8), afterTwo); // a one-token context
        assertSuccessors(t.successors(9, 2, 2), new double[] {3, 0.5, 4, 0.25});
        assertEquals(List.of(), t.successors(1, 99, 8)); // b never seen: nothing
        assertEquals(List.of(), t.successors(1, 2, 0));
        assertEquals(List.of(), TrigramTable.empty().successors(1, 2, 8));
    }

    @Test
    void onlineCountsRaiseATrigramUpToTheCap() {
        TrigramTable t = TrigramTable.fromTokens(STREAM);
        int[] seen = {1, 2, 4};
        t.observe(seen, 0, 3);
        // O(1,2,4) = 1: P(4) = (K · 1/3 + 1) / (K + 1), P(3) = K · 2/3 / (K + 1).
        double k = TrigramTable.ONLINE_PRIOR;
        assertSuccessors(t.successors(1, 2, 8), new double[] {4, (k / 3 + 1) / (k + 1), 3, k * 2 / 3 / (k + 1)});
        for (int i = 0; i < 3 * TrigramTable.ONLINE_CAP; i++) {
            t.observe(seen, 2, 3);
        }
        double cap = TrigramTable.ONLINE_CAP;
        double[] capped = {4, (k / 3 + cap) / (k + cap), 3, k * 2 / 3 / (k + cap)};
        assertSuccessors(t.successors(1, 2, 8), capped);
        t.observe(seen, 0, 3);
        assertSuccessors(t.successors(1, 2, 8), capped);
        // The bigram (2, 4) was raised and capped too: P(4 | 2) = (K · 1/4 + cap) / (K + cap).
        assertEquals((k / 4 + cap) / (k + cap), t.successors(-1, 2, 1).getFirst().probability(), 1e-12);
    }

    @Test
    void onlineCountsAloneMakeAContextKnown() {
        TrigramTable t = TrigramTable.empty();
        int[] seen = {7, 8, 9, 7, 8, 10, 7, 8, 9};
        t.observe(seen, 0, 2); // only the bigram (7, 8): no trigram ends before index 2
        assertSuccessors(t.successors(5, 7, 8), new double[] {8, 1.0}); // (5, 7) unseen: back-off to 7
        assertEquals(List.of(), t.successors(7, 8, 8));
        t.observe(seen, 2, seen.length);
        assertSuccessors(t.successors(7, 8, 8), new double[] {9, 2.0 / 3, 10, 1.0 / 3});
        assertThrows(IndexOutOfBoundsException.class, () -> t.observe(seen, 3, 10));
        assertThrows(IllegalArgumentException.class, () -> t.observe(new int[] {1, -4}, 0, 2));
        assertThrows(IllegalArgumentException.class, () -> TrigramTable.fromTokens(new int[] {1, TrigramTable.MAX_TOKEN}));
    }

    @Test
    void copiesShareTheCorpusButNotTheOnlineCounts() {
        TrigramTable base = TrigramTable.fromTokens(STREAM);
        base.observe(new int[] {1, 2, 4}, 0, 3);
        List<TrigramTable.Successor> before = base.successors(1, 2, 8);
        TrigramTable a = base.copy();
        TrigramTable b = base.copy();
        assertEquals(before, a.successors(1, 2, 8)); // a copy starts from the base's online counts
        for (int i = 0; i < 5; i++) {
            a.observe(new int[] {1, 2, 6}, 0, 3);
        }
        assertEquals(6, a.successors(1, 2, 8).getFirst().token());
        assertEquals(before, base.successors(1, 2, 8));
        assertEquals(before, b.successors(1, 2, 8));
        base.observe(new int[] {1, 2, 5, 5, 5}, 0, 5);
        assertEquals(before, b.successors(1, 2, 8));
        assertEquals(List.of(), b.successors(2, 5, 8).stream().filter(s -> s.token() == 5).toList());
    }

    @Test
    void chunkedTokenizationEqualsTokenizingTheWholeText() throws Exception {
        Tokenizer tokenizer = bardTokenizer();
        String text = Files.readString(excerpt(), StandardCharsets.UTF_8).substring(0, 20_000);
        List<Integer> chunked = new ArrayList<>();
        int pieces = 0;
        for (int from = 0; from < text.length(); pieces++) {
            int to = TrigramTable.chunkEnd(text, from, 300);
            assertTrue(to > from);
            for (int id : tokenizer.encode(text.substring(from, to))) {
                chunked.add(id);
            }
            from = to;
        }
        assertTrue(pieces > 50, pieces + " pieces");
        assertArrayEquals(tokenizer.encode(text), chunked.stream().mapToInt(Integer::intValue).toArray());
    }

    @Test
    void aCorpusFileIsTokenizedWithProgressInBytes() throws Exception {
        Tokenizer tokenizer = bardTokenizer();
        Path file = excerpt();
        List<long[]> updates = new ArrayList<>();
        TrigramTable t = TrigramTable.fromCorpus(tokenizer, file, (done, total) -> updates.add(new long[] {done, total}));
        int[] all = tokenizer.encode(Files.readString(file, StandardCharsets.UTF_8));
        assertEquals(all.length, t.corpusTokens());
        assertEquals(TrigramTable.fromTokens(all).successors(all[0], all[1], 8), t.successors(all[0], all[1], 8));
        long size = Files.size(file);
        assertTrue(updates.size() >= 2, updates.size() + " updates");
        for (int i = 0; i < updates.size(); i++) {
            assertEquals(size, updates.get(i)[1]);
            assertTrue(i == 0 || updates.get(i)[0] > updates.get(i - 1)[0]);
        }
        assertEquals(size, updates.getLast()[0]);
        // "First Citizen:" is followed by a newline in the excerpt, every time.
        int[] firstCitizen = tokenizer.encode("First Citizen:");
        int n = firstCitizen.length;
        assertEquals(tokenizer.encode("\n")[0], t.successors(firstCitizen[n - 2], firstCitizen[n - 1], 1).getFirst().token());
    }

    @Test
    void aByteOrderMarkIsSkipped(@TempDir Path tmp) throws IOException {
        Tokenizer tokenizer = bardTokenizer();
        String text = "First Citizen:\nSpeak, speak.\n";
        Path file = Files.writeString(tmp.resolve("bom.txt"), "\uFEFF" + text, StandardCharsets.UTF_8);
        long[] last = {-1, -1};
        TrigramTable t = TrigramTable.fromCorpus(tokenizer, file, (done, total) -> {
            last[0] = done;
            last[1] = total;
        });
        assertEquals(tokenizer.encode(text).length, t.corpusTokens());
        assertArrayEquals(new long[] {Files.size(file), Files.size(file)}, last);
    }

    @Test
    void badCorpusFilesAreRefusedInOneSentenceNamingTheFile(@TempDir Path tmp) throws IOException {
        Tokenizer tokenizer = bardTokenizer();
        Path missing = tmp.resolve("missing.txt");
        Path empty = Files.write(tmp.resolve("empty.txt"), new byte[0]);
        Path latin1 = Files.write(tmp.resolve("latin1.txt"), "caf\u00e9 cr\u00e8me".getBytes(StandardCharsets.ISO_8859_1));
        Path directory = Files.createDirectory(tmp.resolve("dir"));
        for (Path bad : List.of(missing, empty, latin1, directory)) {
            TandemException e = assertThrows(TandemException.class, () -> TrigramTable.fromCorpus(tokenizer, bad), bad.toString());
            String m = e.getMessage();
            assertTrue(m.contains(bad.toString()), m);
            assertTrue(m.endsWith("."), m);
            assertEquals(1, m.split("\\. ").length, "one sentence: " + m);
        }
        assertTrue(assertThrows(TandemException.class, () -> TrigramTable.fromCorpus(tokenizer, missing)).getMessage()
                .endsWith("does not exist."));
        assertTrue(assertThrows(TandemException.class, () -> TrigramTable.fromCorpus(tokenizer, latin1)).getMessage()
                .endsWith("is not valid UTF-8."));
        assertTrue(assertThrows(TandemException.class, () -> TrigramTable.fromCorpus(tokenizer, empty)).getMessage()
                .endsWith("is empty."));
    }

    /** A corpus past the size read into memory is refused before it is read (a sparse file: no disk used). */
    @Test
    void aCorpusTooLargeToHoldIsRefusedBeforeReading(@TempDir Path tmp) throws IOException {
        Path huge = tmp.resolve("huge.txt");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(huge.toFile(), "rw")) {
            f.setLength(TrigramTable.MAX_CORPUS_BYTES + 1);
        }
        String m = assertThrows(TandemException.class, () -> TrigramTable.fromCorpus(bardTokenizer(), huge)).getMessage();
        assertEquals("the corpus file " + huge + " has " + (TrigramTable.MAX_CORPUS_BYTES + 1) + " bytes, more than the "
                + TrigramTable.MAX_CORPUS_BYTES + " a trigram table is built from; give a smaller excerpt.", m);
    }
}
