package dev.tandem.decoding.rag;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.TestModels;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.BertFixtures;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import dev.tandem.transformer.weights.GgufExport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link PassageIndex} and {@link Chunker} on the first paragraphs of War and Peace ({@code rag/corpus.txt}, from the
 * public-domain corpus the bard models were trained on), cut with bard-s's tokenizer and embedded by small random BERT
 * encoders.
 */
class PassageIndexTest {
    static final BertConfig CONFIG = new BertConfig(2048, 32, 2, 4, 48, 40, 2, 1e-12);
    static final int N = 16;

    @TempDir
    static Path shared;
    static Path bardS;
    static Path corpus;
    static List<String> paragraphs;
    static BertEncoder encoder;
    static PassageIndex index;

    @BeforeAll
    static void build() throws IOException {
        bardS = TestModels.model("bard-s");
        String text;
        try (InputStream in = PassageIndexTest.class.getResourceAsStream("/rag/corpus.txt")) {
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        // The resource separates its paragraphs by exactly one empty line; the file the index reads mixes other blank
        // lines (white space, CRLF, several in a row) and repeats the second paragraph, so some chunks tie exactly.
        paragraphs = new ArrayList<>(List.of(text.strip().split("\n\n")));
        paragraphs.add(paragraphs.get(1));
        String[] separators = {"\n\n", "\n \t\n\n\n", "\r\n\r\n", "\n\u00a0\n"};
        StringBuilder file = new StringBuilder("\n\n");
        for (int i = 0; i < paragraphs.size(); i++) {
            file.append(i == 0 ? "" : separators[i % separators.length]).append(paragraphs.get(i));
        }
        corpus = Files.writeString(shared.resolve("corpus.txt"), file.append("\n\n").toString());
        encoder = Encoders.openDirectory(BertFixtures.writeDirectory(shared.resolve("enc-a"), CONFIG, 1), null, 1);
        index = PassageIndex.build(corpus, bardS, encoder, N, false, Progress.NONE);
    }

    @AfterAll
    static void close() {
        encoder.close();
    }

    private static double cosine(float[] a, float[] b) {
        double ab = 0, aa = 0, bb = 0;
        for (int j = 0; j < a.length; j++) {
            ab += (double) a[j] * b[j];
        }
        for (float x : a) {
            aa += (double) x * x;
        }
        for (float x : b) {
            bb += (double) x * x;
        }
        return aa == 0 || bb == 0 ? 0 : ab / (Math.sqrt(aa) * Math.sqrt(bb));
    }

    @Test
    void documentsAreTheTextBetweenBlankLines() {
        String text = read(corpus);
        List<Chunker.Document> docs = Chunker.documents(text);
        assertEquals(paragraphs.size(), docs.size());
        for (int i = 0; i < docs.size(); i++) {
            assertEquals(i, docs.get(i).number());
            assertEquals(paragraphs.get(i), docs.get(i).text(), "document " + i);
            String line = text.split("\n", -1)[docs.get(i).line() - 1];
            assertEquals(paragraphs.get(i).lines().findFirst().orElseThrow(), line.strip(), "document " + i + "'s first line");
        }
        assertEquals(List.of(), Chunker.documents(" \n\t\n\r\n"));
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void chunksHoldAtMostNIdsAndConcatenateToTheirDocument() {
        Tokenizer tokenizer = Tokenizers.load(bardS.resolve("tokenizer.json"));
        assertEquals(paragraphs.size(), index.documents());
        for (int n : new int[] {1, 7, N, Chunker.MAX_CHUNK_TOKENS}) {
            List<PassageIndex.Chunk> chunks = n == N ? IntStream.range(0, index.size()).mapToObj(index::chunk).toList()
                    : new Chunker(tokenizer, n).chunks(Chunker.documents(read(corpus)));
            for (int d = 0; d < paragraphs.size(); d++) {
                int doc = d;
                List<PassageIndex.Chunk> of = chunks.stream().filter(c -> c.document() == doc).toList();
                int[] want = tokenizer.encode(paragraphs.get(d), false);
                int[] got = of.stream().flatMapToInt(c -> Arrays.stream(c.ids())).toArray();
                assertArrayEquals(want, got, "N " + n + ", document " + d);
                int at = 0;
                for (int k = 0; k < of.size(); k++) {
                    PassageIndex.Chunk c = of.get(k);
                    assertEquals(at, c.offset(), "N " + n + ", document " + d + ", its chunk " + k);
                    assertTrue(c.ids().length >= 1 && c.ids().length <= n);
                    assertTrue(k == of.size() - 1 || c.ids().length == n, "only a document's last chunk is short");
                    assertEquals(tokenizer.decode(c.ids(), false), c.text());
                    at += c.ids().length;
                }
            }
            for (int i = 0; i < chunks.size(); i++) {
                assertEquals(i, chunks.get(i).number());
            }
        }
        assertThrows(TandemException.class, () -> new Chunker(tokenizer, 0));
        assertThrows(TandemException.class, () -> new Chunker(tokenizer, Chunker.MAX_CHUNK_TOKENS + 1));
    }

    @Test
    void eachChunksOwnVectorFindsItFirst() {
        assertEquals(CONFIG.hiddenSize(), index.dimension());
        for (int i = 0; i < index.size(); i++) {
            float[] v = index.vector(i);
            int first = i;
            for (int j = 0; j < i; j++) {
                if (Arrays.equals(index.vector(j), v)) {
                    first = j; // an identical chunk earlier in the corpus wins the tie
                    break;
                }
            }
            PassageIndex.Hit top = index.search(v, 1).getFirst();
            assertEquals(first, top.chunk().number(), "chunk " + i);
            assertEquals(1.0, top.score(), 1e-6, "chunk " + i);
            assertEquals(index.chunk(first), top.chunk());
        }
    }

    @Test
    void topKIsABruteForceSortOfEveryCosineTiesIncluded() {
        int ties = 0;
        for (int i = 0; i < index.size(); i++) {
            for (int j = i + 1; j < index.size(); j++) {
                ties += Arrays.equals(index.vector(i), index.vector(j)) ? 1 : 0;
            }
        }
        assertTrue(ties > 0, "the repeated paragraph gives identical vectors, so the ordering of ties is tested");
        SplittableRandom rnd = new SplittableRandom(7);
        List<float[]> queries = new ArrayList<>();
        queries.add(index.vector(3));
        queries.add(encoder.embed(List.of("Anna Pavlovna greeted the prince"), BertEncoder.Pooling.MEAN, true, false)[0]);
        for (int q = 0; q < 5; q++) {
            float[] v = new float[index.dimension()];
            for (int j = 0; j < v.length; j++) {
                v[j] = (float) rnd.nextGaussian();
            }
            queries.add(v);
        }
        queries.add(new float[index.dimension()]); // a zero query: every score 0, so the order is the chunks' own
        for (float[] q : queries) {
            double[] cos = new double[index.size()];
            for (int i = 0; i < cos.length; i++) {
                cos[i] = cosine(q, index.vector(i));
            }
            List<Integer> sorted = IntStream.range(0, cos.length).boxed()
                    .sorted(Comparator.<Integer>comparingDouble(i -> -cos[i]).thenComparingInt(i -> i)).toList();
            for (int k : new int[] {1, 2, 5, index.size(), index.size() + 3}) {
                List<PassageIndex.Hit> hits = index.search(q, k);
                assertEquals(Math.min(k, index.size()), hits.size());
                for (int r = 0; r < hits.size(); r++) {
                    assertEquals(sorted.get(r), hits.get(r).chunk().number(), "k " + k + ", rank " + r);
                    assertEquals(cos[sorted.get(r)], hits.get(r).score(), 1e-12, "k " + k + ", rank " + r);
                }
            }
        }
    }

    @Test
    void retrievalEmbedsTheQuestionAsTheChunksWereEmbedded() {
        String question = "Is Genoa a family estate of the Buonapartes?";
        float[] q = encoder.embed(List.of(question), BertEncoder.Pooling.MEAN, true, true)[0];
        List<PassageIndex.Hit> bySearch = index.search(q, 4);
        assertEquals(bySearch, index.retrieve(encoder, question, 4));
        Embedder embedder = Embedder.batching(encoder);
        assertEquals(bySearch, index.retrieve(embedder, question, 4));
        assertThrows(IllegalArgumentException.class,
                () -> index.retrieve(Embedder.latency(encoder, BertEncoder.Pooling.CLS, true, false), question, 4));
    }

    @Test
    void writingThenReadingGivesTheSameIndex() {
        Path file = shared.resolve("round-trip.idx");
        index.write(file);
        PassageIndex back = PassageIndex.read(file);
        assertEquals(index.size(), back.size());
        assertEquals(index.documents(), back.documents());
        assertEquals(index.dimension(), back.dimension());
        assertEquals(N, back.chunkTokens());
        assertEquals(index.encoder(), back.encoder());
        assertEquals(index.decoder(), back.decoder());
        assertEquals(index.decoderVocabSize(), back.decoderVocabSize());
        for (int i = 0; i < index.size(); i++) {
            assertEquals(index.chunk(i), back.chunk(i), "chunk " + i);
            float[] a = index.vector(i), b = back.vector(i);
            for (int j = 0; j < a.length; j++) {
                assertEquals(Float.floatToRawIntBits(a[j]), Float.floatToRawIntBits(b[j]), "chunk " + i + " value " + j);
            }
        }
        assertEquals(index.search(index.vector(5), 7), back.search(index.vector(5), 7));
        back.requireEncoder(encoder);
        back.requireDecoder(bardS);
    }

    @Test
    void anotherEncoderIsRefusedInOneSentence() throws IOException {
        // The same weights in another folder are the same encoder: identity is by content, not by name.
        try (BertEncoder copy = Encoders.openDirectory(BertFixtures.writeDirectory(shared.resolve("enc-a-copy"), CONFIG, 1), null, 1);
             BertEncoder other = Encoders.openDirectory(BertFixtures.writeDirectory(shared.resolve("enc-b"), CONFIG, 2), null, 1)) {
            index.requireEncoder(copy);
            assertEquals(index.retrieve(encoder, "the prince", 3), index.retrieve(copy, "the prince", 3));
            Path file = shared.resolve("encoder-check.idx");
            index.write(file);
            PassageIndex read = PassageIndex.read(file);
            for (Executable refused : List.<Executable>of(() -> read.requireEncoder(other), () -> read.retrieve(other, "the prince", 3),
                    () -> read.retrieve(Embedder.batching(other), "the prince", 3))) {
                TandemException e = assertThrows(TandemException.class, refused);
                assertEquals(file + " was built with the encoder enc-a (sha256 " + encoder.identity().sha256().substring(0, 8)
                        + "…), not enc-b (sha256 " + other.identity().sha256().substring(0, 8) + "…); use that encoder, or rebuild "
                        + "the index with tandem index --encoder enc-b.", e.getMessage());
            }
        }
    }

    @Test
    void anotherDecoderTokenizerIsRefusedInOneSentence() {
        index.requireDecoder(TestModels.model("bard-l")); // another model with the very same tokenizer.json
        Path dlm = TestModels.model("bard-dlm");
        TandemException e = assertThrows(TandemException.class, () -> index.requireDecoder(dlm));
        String m = e.getMessage();
        assertTrue(m.startsWith("the passage index was built for the tokenizer of bard-s (sha256 "), m);
        assertTrue(m.contains("not that of bard-dlm (sha256 ") && m.endsWith("rebuild it with tandem index --model bard-dlm."), m);
        assertOneSentence(m);
    }

    @Test
    void aChunkLongerThanTheEncoderIsRefusedUnlessTruncated() {
        // bard-s's tokenizer stands in as the encoder's, so a chunk of 64 decoder tokens is about 64 encoder tokens: over 40.
        TandemException e = assertThrows(TandemException.class,
                () -> PassageIndex.build(corpus, bardS, encoder, 64, false, Progress.NONE));
        assertTrue(e.getMessage().startsWith("chunk 0 (token 0 of document 0, which starts at " + corpus + " line 3) encodes to "),
                e.getMessage());
        assertTrue(e.getMessage().endsWith("more than the encoder's 40 positions (max_position_embeddings); give a smaller chunk "
                + "size, or truncate such chunks."), e.getMessage());
        PassageIndex cut = PassageIndex.build(corpus, bardS, encoder, 64, true, Progress.NONE);
        assertEquals(64, cut.chunkTokens());
        assertTrue(cut.size() < index.size());
    }

    @Test
    void badCorporaAndSizesAreRefusedInOneSentence() throws IOException {
        Path missing = shared.resolve("missing.txt");
        assertMessage("the corpus file " + missing + " does not exist.", () -> PassageIndex.build(missing, bardS, encoder, N, false,
                Progress.NONE));
        Path blank = Files.writeString(shared.resolve("blank.txt"), "\n  \n\n");
        assertMessage("the corpus file " + blank + " holds no text; it is UTF-8 text whose documents are separated by blank lines.",
                () -> PassageIndex.build(blank, bardS, encoder, N, false, Progress.NONE));
        Path latin1 = Files.write(shared.resolve("latin1.txt"), new byte[] {'c', 'a', 'f', (byte) 0xe9, '\n'});
        TandemException e = assertThrows(TandemException.class, () -> PassageIndex.build(latin1, bardS, encoder, N, false, Progress.NONE));
        assertTrue(e.getMessage().startsWith("the corpus file " + latin1 + " is not valid UTF-8"), e.getMessage());
        for (int n : new int[] {0, 257}) {
            assertMessage("the chunk size must be from 1 to 256 decoder tokens, but was " + n + ".",
                    () -> PassageIndex.build(corpus, bardS, encoder, n, false, Progress.NONE));
        }
        e = assertThrows(TandemException.class, () -> PassageIndex.build(corpus, shared.resolve("enc-a"), encoder, N, false,
                Progress.NONE));
        assertOneSentence(e.getMessage()); // an encoder is no decoder
    }

    @Test
    void badFilesAreRefusedInOneSentenceNamingTheFile() throws IOException {
        Path good = shared.resolve("good.idx");
        index.write(good);
        byte[] bytes = Files.readAllBytes(good);
        Path bad = shared.resolve("bad.idx");

        Files.write(bad, "not an index at all".getBytes(StandardCharsets.UTF_8));
        assertMessage(bad + " is not a Tandem passage index (it does not start with TNDMPIDX); build one with tandem index.", reading(bad));
        byte[] v2 = bytes.clone();
        v2[8] = 2;
        Files.write(bad, v2);
        assertMessage(bad + " is a passage index of format version 2, but this Tandem reads version 1; rebuild it with tandem index.",
                reading(bad));
        int headerSize = ByteBuffer.wrap(bytes, 12, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        for (int cut : new int[] {10, 16 + headerSize / 2, 16 + headerSize + 10, bytes.length / 2, bytes.length - 1}) {
            Files.write(bad, Arrays.copyOf(bytes, cut));
            TandemException e = assertThrows(TandemException.class, reading(bad), "cut at " + cut);
            assertTrue(e.getMessage().startsWith(bad + " is truncated: "), e.getMessage());
            assertOneSentence(e.getMessage());
        }
        Files.write(bad, Arrays.copyOf(bytes, bytes.length + 3));
        TandemException longer = assertThrows(TandemException.class, reading(bad));
        assertTrue(longer.getMessage().startsWith(bad + " is not a valid passage index: it has 3 bytes more than its header"),
                longer.getMessage());
        byte[] flipped = bytes.clone();
        flipped[16 + headerSize + 5] ^= 0x10; // inside the first vector
        Files.write(bad, flipped);
        assertMessage(bad + " is corrupt: its checksum does not match its contents; rebuild it with tandem index.", reading(bad));

        // A header that disagrees with data it describes (its checksum made right, so only the disagreement is left).
        Files.write(bad, withHeader(bytes, h -> h.put("chunk_tokens", N / 2)));
        assertMessage(bad + " is not a valid passage index: chunk 0 has " + N + " ids, not 1 to the chunk size of " + N / 2 + ".",
                reading(bad));
        Files.write(bad, withHeader(bytes, h -> h.put("documents", 2)));
        TandemException docs = assertThrows(TandemException.class, reading(bad));
        assertTrue(docs.getMessage().matches(".* is not a valid passage index: chunk \\d+ is of document 2, but its header says 2 "
                + "documents\\."), docs.getMessage());
        Files.write(bad, withHeader(bytes, h -> h.put("chunks", h.get("chunks").intValue() + 1)));
        assertTrue(assertThrows(TandemException.class, reading(bad)).getMessage().startsWith(bad + " is truncated: "));
        Files.write(bad, withHeader(bytes, h -> ((ObjectNode) h.get("encoder")).put("pooling", "cls")));
        assertMessage(bad + " is not a valid passage index: its vectors are pooled by \"cls\", and only \"mean\" is read.", reading(bad));
        Files.write(bad, withHeader(bytes, h -> h.remove("dimension")));
        assertMessage(bad + " is not a valid passage index: its header's \"dimension\" is missing, not an integer from 1 to "
                + Integer.MAX_VALUE + ".", reading(bad));

        Path missing = shared.resolve("no-such.idx");
        assertMessage("the passage index " + missing + " does not exist.", reading(missing));
        assertMessage("the passage index " + shared + " is a directory, not an index file.", reading(shared));
    }

    /** {@code bytes} (a whole index) with its header changed by {@code edit} and its checksum made to match. */
    private static byte[] withHeader(byte[] bytes, Consumer<ObjectNode> edit) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ByteBuffer in = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int oldSize = in.getInt(12);
        ObjectNode h = (ObjectNode) json.readTree(Arrays.copyOfRange(bytes, 16, 16 + oldSize));
        edit.accept(h);
        byte[] header = json.writeValueAsBytes(h);
        int size = (header.length + 7) / 8 * 8;
        ByteBuffer out = ByteBuffer.allocate(bytes.length - oldSize + size).order(ByteOrder.LITTLE_ENDIAN);
        out.put(bytes, 0, 12).putInt(size).put(header);
        while (out.position() < 16 + size) {
            out.put((byte) ' ');
        }
        out.put(bytes, 16 + oldSize, bytes.length - 16 - oldSize - 4);
        CRC32C crc = new CRC32C();
        crc.update(out.array(), 0, out.position());
        out.putInt((int) crc.getValue());
        return out.array();
    }

    @Test
    void aFailedWriteLeavesTheTargetAsItWas() throws IOException {
        Path dir = Files.createDirectories(shared.resolve("failed-write"));
        Path file = dir.resolve("index.idx");
        Progress failing = (done, total) -> {
            if (done > total / 2) {
                throw new IllegalStateException("stopped half way");
            }
        };
        assertThrows(IllegalStateException.class, () -> index.write(file, failing));
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(List.of(), left.toList(), "neither the index nor a temporary file");
        }
        Path other = shared.resolve("other-corpus.txt");
        Files.writeString(other, paragraphs.get(0) + "\n");
        PassageIndex small = PassageIndex.build(other, bardS, encoder, N, false, Progress.NONE);
        small.write(file);
        byte[] before = Files.readAllBytes(file);
        assertThrows(IllegalStateException.class, () -> index.write(file, failing));
        assertArrayEquals(before, Files.readAllBytes(file), "the old index is whole");
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(List.of(file), left.toList());
        }
        assertNotEquals(small.size(), index.size());
        assertEquals(small.size(), PassageIndex.read(file).size());
        Path noFolder = shared.resolve("no-folder").resolve("index.idx");
        assertMessage("the folder of the passage index " + noFolder + " does not exist.", () -> index.write(noFolder));
        assertFalse(Files.exists(noFolder.getParent()));
    }

    private static Executable reading(Path file) {
        return () -> PassageIndex.read(file);
    }

    private static void assertMessage(String expected, Executable call) {
        TandemException e = assertThrows(TandemException.class, call);
        assertEquals(expected, e.getMessage());
        assertOneSentence(e.getMessage());
    }

    private static void assertOneSentence(String m) {
        assertFalse(m.contains("\n"), m);
        assertTrue(m.endsWith("."), m);
        assertFalse(m.contains("Exception"), m);
    }

    @Test
    void aGgufTokenizerIsIdentifiedByItsMetadataWhateverTheWeightType(@TempDir Path tmp) {
        Path f32 = tmp.resolve("bard-s-f32.gguf"), q8 = tmp.resolve("bard-s-q8_0.gguf"), bardL = tmp.resolve("bard-l.gguf");
        GgufExport.export(bardS, f32, GgufExport.Options.ofType(DType.F32), Progress.NONE);
        GgufExport.export(bardS, q8, GgufExport.Options.ofType(DType.Q8_0), Progress.NONE);
        GgufExport.export(TestModels.model("bard-l"), bardL, GgufExport.Options.ofType(DType.F32), Progress.NONE);
        PassageIndex.TokenizerIdentity a = PassageIndex.TokenizerIdentity.of(f32);
        assertEquals("bard-s-f32.gguf", a.name());
        assertTrue(a.sameTokenizer(PassageIndex.TokenizerIdentity.of(q8)), "quantizing the weights keeps the tokenizer");
        // bard-s and bard-l share their tokenizer file and special ids, so their GGUF files name the same tokenizer
        assertTrue(PassageIndex.TokenizerIdentity.of(bardS).sameTokenizer(PassageIndex.TokenizerIdentity.of(TestModels.model("bard-l"))));
        assertTrue(a.sameTokenizer(PassageIndex.TokenizerIdentity.of(bardL)));
    }
}
