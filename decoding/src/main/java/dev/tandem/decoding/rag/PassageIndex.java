package dev.tandem.decoding.rag;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.Digests;
import dev.tandem.runtime.AtomicFiles;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Utf8Text;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.weights.GgufCheckpoint;
import dev.tandem.transformer.weights.GgufValue;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.EncoderIdentity;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.zip.CRC32C;
import java.util.zip.GZIPInputStream;

/**
 * An exact cosine top-k index of passages for retrieval: a corpus cut into chunks of at most N decoder tokens
 * ({@link Chunker}), each with the unit-length mean-pooled vector a BERT-family encoder gives its text (float32, as
 * sentence-transformers embeds). {@link #search} scans every chunk:
 * <pre>
 *   score_i = q·v_i / (|q|·|v_i|)      each chunk i, in double (0 where a norm is 0)
 *   hits    = the k largest score_i    the lower chunk number first on ties
 * </pre>
 * The answer is exact (no approximation: it depends on the vectors alone, never on how the index was built), and the
 * scan is meant for thousands to a few hundred thousand chunks (one core scans 100,000 chunks of 384 dimensions in about
 * 30 ms); far larger corpora want an approximate index.
 *
 * <p>The index records what its contents depend on: the encoder's {@link EncoderIdentity} (vectors of another encoder
 * are not comparable), the decoder tokenizer's {@link TokenizerIdentity} (the chunks' ids mean text only to that
 * tokenizer) and N. {@link #requireEncoder} and {@link #requireDecoder} refuse another in one sentence.
 *
 * <p><b>The file</b> (version 1; integers and floats little-endian):
 * <pre>
 *   magic        8 bytes   "TNDMPIDX"
 *   version      int32     1
 *   header size  int32     H, a multiple of 8
 *   header       H bytes   a JSON object in UTF-8, padded with spaces:
 *                          {"chunks": C, "documents": D, "dimension": d, "chunk_tokens": N, "ids": I, "text_bytes": T,
 *                           "encoder": {"name": …, "sha256": …, "pooling": "mean"},
 *                           "decoder": {"name": …, "tokenizer_sha256": …, "vocab_size": V}}
 *   vectors      C × d float32, chunk after chunk
 *   chunks       C × (document int32, offset int32, id count int32)
 *   ids          I int32, the chunks' ids one after another
 *   text sizes   C int32, the UTF-8 bytes of each chunk's text
 *   texts        T bytes, the chunks' texts in UTF-8 one after another
 *   checksum     uint32    CRC32C of every byte before it
 * </pre>
 * {@link #write} writes a temporary file beside the target and moves it into place, so a reader sees the old index or
 * the new one, never half of one. {@link #read} refuses in one sentence naming the file: a wrong magic, another
 * version, a truncated file, a checksum that does not match, a header that disagrees with the data.
 *
 * <p>Immutable: many threads may search one index.
 */
public final class PassageIndex {
    /** The version {@link #write} writes and {@link #read} reads. */
    public static final int VERSION = 1;

    private static final byte[] MAGIC = "TNDMPIDX".getBytes(StandardCharsets.US_ASCII);
    private static final int PREAMBLE = MAGIC.length + 2 * Integer.BYTES;
    private static final int MAX_HEADER = 1 << 20;
    private static final String POOLING = "mean";
    /** Chunks embedded in one call of the encoder (it splits a call into passes of its own size). */
    private static final int EMBED_BATCH = 64;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * A chunk: its number (from 0, across the corpus), its document's number, its offset in the document's ids, its
     * decoder ids (at most N; no special tokens) and their decoded text.
     */
    public record Chunk(int number, int document, int offset, int[] ids, String text) {
        public Chunk {
            ids = ids.clone();
            Objects.requireNonNull(text, "text");
        }

        @Override
        public int[] ids() {
            return ids.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Chunk c && number == c.number && document == c.document && offset == c.offset
                    && Arrays.equals(ids, c.ids) && text.equals(c.text);
        }

        @Override
        public int hashCode() {
            return Objects.hash(number, document, offset, Arrays.hashCode(ids), text);
        }

        @Override
        public String toString() {
            return "Chunk[" + number + ", document " + document + " at " + offset + ", " + ids.length + " ids]";
        }
    }

    /** A search result: a chunk and its cosine similarity to the query. */
    public record Hit(Chunk chunk, double score) {
    }

    /**
     * Which tokenizer a decoder has: the model directory's name (for messages) and the SHA-256 of its
     * {@code tokenizer.json} (decompressed when it is {@code tokenizer.json.gz}), 64 lowercase hex digits.
     */
    public record TokenizerIdentity(String name, String sha256) {
        public TokenizerIdentity {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(sha256, "sha256");
        }

        /**
         * The identity of the tokenizer of the model at {@code modelDir}: a directory's tokenizer file, or a GGUF file's
         * {@code tokenizer.*} metadata (so quantizing the weights keeps it).
         *
         * @throws TandemException if the directory or its tokenizer file is missing or unreadable
         */
        public static TokenizerIdentity of(Path modelDir) {
            MessageDigest sha = Digests.sha256();
            if (GgufCheckpoint.isGgufPath(modelDir)) {
                // The tokenizer is the file's tokenizer.* metadata: its keys, types and values, in key order.
                try (GgufCheckpoint checkpoint = GgufCheckpoint.open(modelDir, false)) {
                    new java.util.TreeMap<>(checkpoint.metadata()).forEach((key, value) -> {
                        if (key.startsWith("tokenizer.")) {
                            digest(key, value, sha);
                        }
                    });
                }
            } else {
                if (!Files.isDirectory(modelDir)) {
                    throw new TandemException("model directory not found: " + modelDir + ".");
                }
                Path file = ModelLoader.tokenizerFile(modelDir);
                try (InputStream raw = Files.newInputStream(file);
                     InputStream in = file.getFileName().toString().endsWith(".gz") ? new GZIPInputStream(raw) : raw) {
                    byte[] buf = new byte[1 << 16];
                    for (int n; (n = in.read(buf)) > 0; ) {
                        sha.update(buf, 0, n);
                    }
                } catch (IOException e) {
                    throw new TandemException("cannot read the tokenizer file " + file + " (" + IoErrors.reason(e) + ").", e);
                }
            }
            Path name = modelDir.toAbsolutePath().normalize().getFileName();
            return new TokenizerIdentity(name == null ? modelDir.toString() : name.toString(), HexFormat.of().formatHex(sha.digest()));
        }

        private static void digest(String key, GgufValue value, MessageDigest sha) {
            sha.update((key + "\0" + value.type().shortName() + "\0").getBytes(StandardCharsets.UTF_8));
            if (value.type() == GgufValue.Type.ARRAY) {
                for (GgufValue e : value.elements()) {
                    digest("", e, sha);
                }
            } else {
                sha.update(String.valueOf(value.value()).getBytes(StandardCharsets.UTF_8));
            }
        }

        /** Whether {@code other} is the same tokenizer: the same digest, whatever the name. */
        public boolean sameTokenizer(TokenizerIdentity other) {
            return sha256.equals(other.sha256);
        }

        /** For messages: {@code bard-s (sha256 d79facee…)}. */
        public String describe() {
            return name + " (sha256 " + sha256.substring(0, Math.min(8, sha256.length())) + "…)";
        }
    }

    private final String label;               // the file, or "the passage index" before it has one, for messages
    private final EncoderIdentity encoder;
    private final TokenizerIdentity decoder;
    private final int decoderVocab;
    private final int chunkTokens;
    private final int documents;
    private final int dimension;
    private final float[] vectors;            // chunk i at [i·d, (i+1)·d)
    private final double[] norms;
    private final int[] document;
    private final int[] offset;
    private final int[] idStart;              // chunk i's ids at ids[idStart[i], idStart[i+1])
    private final int[] ids;
    private final String[] texts;

    private PassageIndex(String label, EncoderIdentity encoder, TokenizerIdentity decoder, int decoderVocab, int chunkTokens,
                         int documents, int dimension, float[] vectors, int[] document, int[] offset, int[] idStart, int[] ids,
                         String[] texts) {
        this.label = label;
        this.encoder = encoder;
        this.decoder = decoder;
        this.decoderVocab = decoderVocab;
        this.chunkTokens = chunkTokens;
        this.documents = documents;
        this.dimension = dimension;
        this.vectors = vectors;
        this.document = document;
        this.offset = offset;
        this.idStart = idStart;
        this.ids = ids;
        this.texts = texts;
        this.norms = new double[texts.length];
        for (int i = 0; i < texts.length; i++) {
            norms[i] = Math.sqrt(dot(vectors, (long) i * dimension, vectors, (long) i * dimension, dimension));
        }
    }

    // ---- building ----

    /**
     * A corpus cut into chunks, not yet embedded: the first half of {@link #build}, which needs no encoder, so that bad
     * input is refused before an encoder is loaded.
     *
     * @param file      the corpus file
     * @param decoder   the tokenizer that cut it
     * @param vocabSize that tokenizer's vocabulary size
     */
    public record Corpus(Path file, TokenizerIdentity decoder, int vocabSize, int chunkTokens, List<Chunker.Document> documents,
                         List<Chunk> chunks) {
        public Corpus {
            documents = List.copyOf(documents);
            chunks = List.copyOf(chunks);
        }
    }

    /**
     * {@code corpus} (UTF-8 text, documents separated by blank lines; see {@link Chunker}) in chunks of
     * {@code chunkTokens} tokens of the tokenizer of the decoder in {@code decoderDir}.
     *
     * @throws TandemException if the corpus is missing, unreadable, not UTF-8 or holds no text; the decoder directory
     *                         is not a decoder or has no tokenizer; or N is not from 1 to 256
     */
    public static Corpus chunk(Path corpus, Path decoderDir, int chunkTokens) {
        Chunker.requireChunkTokens(chunkTokens);
        ModelLoader.config(decoderDir); // a decoder, not an encoder or a stray folder
        TokenizerIdentity decoder = TokenizerIdentity.of(decoderDir);
        Tokenizer tokenizer = ModelLoader.tokenizer(decoderDir);
        List<Chunker.Document> docs = Chunker.documents(readCorpus(corpus));
        if (docs.isEmpty()) {
            throw new TandemException("the corpus file " + corpus + " holds no text; it is UTF-8 text whose documents are "
                    + "separated by blank lines.");
        }
        List<Chunk> chunks = new Chunker(tokenizer, chunkTokens).chunks(docs);
        if (chunks.isEmpty()) {
            throw new TandemException("the corpus file " + corpus + " encodes to no tokens, so it has no chunks to index.");
        }
        return new Corpus(corpus, decoder, tokenizer.vocabSize(), chunkTokens, docs, chunks);
    }

    /** {@link #build(Corpus, BertEncoder, boolean, Progress) build}({@link #chunk chunk}(corpus, decoderDir, chunkTokens), …). */
    public static PassageIndex build(Path corpus, Path decoderDir, BertEncoder encoder, int chunkTokens, boolean truncate,
                                     Progress progress) {
        return build(chunk(corpus, decoderDir, chunkTokens), encoder, truncate, progress);
    }

    /**
     * The index of {@code corpus}'s chunks, each embedded by {@code encoder} (mean pooling, unit length). Every chunk is
     * tokenized for the encoder before the first pass, so a chunk too long fails at once; {@code progress} then sees the
     * chunks embedded of the chunks to embed.
     *
     * @param truncate cut a chunk whose text is longer than the encoder's positions (else that is an error)
     * @throws TandemException if a chunk is longer than the encoder's positions (without {@code truncate}), or the
     *                         encoder's vectors are not finite
     */
    public static PassageIndex build(Corpus corpus, BertEncoder encoder, boolean truncate, Progress progress) {
        Objects.requireNonNull(encoder, "encoder");
        Objects.requireNonNull(progress, "progress");
        List<Chunker.Document> docs = corpus.documents();
        List<Chunk> chunks = corpus.chunks();
        int d = encoder.dimension();
        if ((long) chunks.size() * d > Integer.MAX_VALUE - 8) {
            throw new TandemException("the corpus file " + corpus.file() + " makes " + chunks.size() + " chunks, more than an index of "
                    + d + "-dimensional vectors holds (" + (Integer.MAX_VALUE - 8) / d + "); give a larger chunk size or split it.");
        }
        EncoderIdentity identity = encoder.identity();
        List<int[]> inputs = new ArrayList<>(chunks.size());
        for (Chunk c : chunks) {
            inputs.add(encoderInput(encoder, c, docs.get(c.document()), corpus.file(), truncate));
        }
        float[] vectors = new float[chunks.size() * d];
        progress.update(0, chunks.size());
        for (int from = 0; from < chunks.size(); from += EMBED_BATCH) {
            int to = Math.min(chunks.size(), from + EMBED_BATCH);
            float[][] v = encoder.embedIds(inputs.subList(from, to), BertEncoder.Pooling.MEAN, true);
            for (int i = from; i < to; i++) {
                for (float x : v[i - from]) {
                    if (!Float.isFinite(x)) {
                        Chunk c = chunks.get(i);
                        throw new TandemException("the encoder's vector of " + where(corpus.file(), c, docs.get(c.document()))
                                + " is not finite (" + x + "), so it cannot be indexed.");
                    }
                }
                System.arraycopy(v[i - from], 0, vectors, i * d, d);
            }
            progress.update(to, chunks.size());
        }
        int[] document = new int[chunks.size()], offset = new int[chunks.size()], idStart = new int[chunks.size() + 1];
        String[] texts = new String[chunks.size()];
        for (int i = 0; i < chunks.size(); i++) {
            Chunk c = chunks.get(i);
            document[i] = c.document();
            offset[i] = c.offset();
            idStart[i + 1] = idStart[i] + c.ids.length;
            texts[i] = c.text();
        }
        int[] ids = new int[idStart[chunks.size()]];
        for (int i = 0; i < chunks.size(); i++) {
            System.arraycopy(chunks.get(i).ids, 0, ids, idStart[i], chunks.get(i).ids.length);
        }
        return new PassageIndex("the passage index", identity, corpus.decoder(), corpus.vocabSize(), corpus.chunkTokens(), docs.size(),
                d, vectors, document, offset, idStart, ids, texts);
    }

    private static int[] encoderInput(BertEncoder encoder, Chunk c, Chunker.Document doc, Path corpus, boolean truncate) {
        int[] in;
        try {
            in = encoder.tokenize(c.text(), truncate);
        } catch (TandemException e) {
            int n = encoder.tokenizer().withSpecialTokens(encoder.tokenizer().encode(c.text())).length;
            throw new TandemException(where(corpus, c, doc) + " encodes to " + n + " encoder tokens, more than the encoder's "
                    + encoder.config().maxPositions() + " positions (max_position_embeddings); give a smaller chunk size, or "
                    + "truncate such chunks.", e);
        }
        if (in.length == 0) {
            throw new TandemException(where(corpus, c, doc) + " encodes to no encoder tokens, so the encoder gives it no vector.");
        }
        return in;
    }

    private static String where(Path corpus, Chunk c, Chunker.Document doc) {
        return "chunk " + c.number() + " (token " + c.offset() + " of document " + c.document() + ", which starts at " + corpus
                + " line " + doc.line() + ")";
    }

    private static String readCorpus(Path corpus) {
        if (Files.isDirectory(corpus)) {
            throw new TandemException("the corpus " + corpus + " is a directory; give a UTF-8 text file.");
        }
        byte[] bytes;
        try {
            if (Files.size(corpus) > Integer.MAX_VALUE - 16) {
                throw new TandemException("the corpus file " + corpus + " is larger than 2 GB; split it and build an index of "
                        + "each part.");
            }
            bytes = Files.readAllBytes(corpus);
        } catch (NoSuchFileException e) {
            throw new TandemException("the corpus file " + corpus + " does not exist.", e);
        } catch (IOException e) {
            throw new TandemException("cannot read the corpus file " + corpus + " (" + IoErrors.reason(e) + ").", e);
        }
        Utf8Text.requireValid(bytes, "the corpus file " + corpus);
        String text = new String(bytes, StandardCharsets.UTF_8);
        return text.startsWith("\uFEFF") ? text.substring(1) : text;
    }

    // ---- what it holds ----

    /** The number of chunks. */
    public int size() {
        return texts.length;
    }

    /** The number of documents of the corpus (a document that encoded to no ids has no chunk). */
    public int documents() {
        return documents;
    }

    /** The width of the vectors. */
    public int dimension() {
        return dimension;
    }

    /** N: the most decoder tokens of a chunk. */
    public int chunkTokens() {
        return chunkTokens;
    }

    /** The encoder that made the vectors. */
    public EncoderIdentity encoder() {
        return encoder;
    }

    /** The decoder tokenizer that made the chunks' ids. */
    public TokenizerIdentity decoder() {
        return decoder;
    }

    /** The decoder tokenizer's vocabulary size: every id is below it. */
    public int decoderVocabSize() {
        return decoderVocab;
    }

    /** Chunk {@code i}. */
    public Chunk chunk(int i) {
        Objects.checkIndex(i, texts.length);
        return new Chunk(i, document[i], offset[i], Arrays.copyOfRange(ids, idStart[i], idStart[i + 1]), texts[i]);
    }

    /** Chunk {@code i}'s vector (a copy). */
    public float[] vector(int i) {
        Objects.checkIndex(i, texts.length);
        return Arrays.copyOfRange(vectors, i * dimension, (i + 1) * dimension);
    }

    // ---- search ----

    /**
     * The {@code k} chunks most cosine-similar to {@code query} (every chunk when there are fewer), most similar first,
     * the lower chunk number first on ties; exact, by a scan of every chunk.
     *
     * @throws IllegalArgumentException if {@code query} is not {@link #dimension} finite values, or {@code k < 1}
     */
    public List<Hit> search(float[] query, int k) {
        if (query.length != dimension) {
            throw new IllegalArgumentException("a query of " + query.length + " values, but the index's vectors have " + dimension);
        }
        if (k < 1) {
            throw new IllegalArgumentException("k must be at least 1, but was " + k);
        }
        double qNorm = Math.sqrt(dot(query, 0, query, 0, dimension));
        if (!Double.isFinite(qNorm)) {
            throw new IllegalArgumentException("the query has a value that is not finite");
        }
        int n = Math.min(k, texts.length);
        int[] best = new int[n];
        double[] scores = new double[n];
        int filled = 0;
        for (int i = 0; i < texts.length; i++) {
            double s = qNorm == 0 || norms[i] == 0 ? 0 : dot(query, 0, vectors, (long) i * dimension, dimension) / (qNorm * norms[i]);
            if (filled == n && !(s > scores[n - 1])) {
                continue; // an equal score keeps the lower number
            }
            int at = filled == n ? n - 1 : filled++;
            while (at > 0 && s > scores[at - 1]) {
                best[at] = best[at - 1];
                scores[at] = scores[at - 1];
                at--;
            }
            best[at] = i;
            scores[at] = s;
        }
        List<Hit> hits = new ArrayList<>(n);
        for (int r = 0; r < n; r++) {
            hits.add(new Hit(chunk(best[r]), scores[r]));
        }
        return hits;
    }

    /**
     * The {@code k} chunks nearest {@code question}, embedded by {@code encoder} as the index's vectors were (mean pooling,
     * unit length); a question longer than the encoder's positions is cut to them, as sentence-transformers does.
     *
     * @throws TandemException if {@code encoder} is not the encoder the index was built with
     */
    public List<Hit> retrieve(BertEncoder encoder, String question, int k) {
        requireEncoder(encoder);
        return search(encoder.embed(List.of(question), BertEncoder.Pooling.MEAN, true, true)[0], k);
    }

    /**
     * As {@link #retrieve(BertEncoder, String, int)}, the question embedded by {@code embedder} (sharing its passes with
     * other callers; its own truncation applies).
     *
     * @throws TandemException          if the embedder's encoder is not the encoder the index was built with
     * @throws IllegalArgumentException if the embedder does not pool by the mean, as the index's vectors are
     */
    public List<Hit> retrieve(Embedder embedder, String question, int k) {
        requireEncoder(embedder.encoder());
        if (embedder.pooling() != BertEncoder.Pooling.MEAN) {
            throw new IllegalArgumentException("the index holds mean-pooled vectors, but the embedder pools by " + embedder.pooling());
        }
        return search(embedder.embed(question), k);
    }

    private static double dot(float[] a, long aFrom, float[] b, long bFrom, int n) {
        double s = 0;
        int ia = (int) aFrom, ib = (int) bFrom;
        for (int j = 0; j < n; j++) {
            s += (double) a[ia + j] * b[ib + j];
        }
        return s;
    }

    // ---- identity checks ----

    /** @throws TandemException if {@code encoder} is not the encoder the index was built with (by its SHA-256) */
    public void requireEncoder(BertEncoder encoder) {
        requireEncoder(encoder.identity());
    }

    /** @throws TandemException if {@code other} is not the encoder the index was built with (by its SHA-256) */
    public void requireEncoder(EncoderIdentity other) {
        if (!encoder.sameEncoder(other)) {
            String rebuild = other.name().equals(Encoders.MINILM) ? "tandem index (whose default encoder is " + Encoders.MINILM + ")"
                    : "tandem index --encoder " + other.name();
            throw new TandemException(label + " was built with the encoder " + encoder.describe() + ", not " + other.describe()
                    + "; use that encoder, or rebuild the index with " + rebuild + ".");
        }
    }

    /** @throws TandemException if {@code model}'s tokenizer is not the one the index's chunks were cut with */
    public void requireDecoder(LanguageModel model) {
        requireDecoder(TokenizerIdentity.of(model.directory()));
    }

    /** @throws TandemException if the tokenizer of the model in {@code modelDir} is not the one the chunks were cut with */
    public void requireDecoder(Path modelDir) {
        requireDecoder(TokenizerIdentity.of(modelDir));
    }

    /** @throws TandemException if {@code other} is not the tokenizer the index's chunks were cut with */
    public void requireDecoder(TokenizerIdentity other) {
        if (!decoder.sameTokenizer(other)) {
            throw new TandemException(label + " was built for the tokenizer of " + decoder.describe() + ", not that of "
                    + other.describe() + ", so its chunks' token ids would read as other text; rebuild it with tandem index "
                    + "--model " + other.name() + ".");
        }
    }

    // ---- the file ----

    /** {@link #write(Path, Progress)} without progress reports. */
    public void write(Path file) {
        write(file, Progress.NONE);
    }

    /**
     * Writes the index to {@code file} (replacing it): to a temporary file in the same folder, then moved into place.
     * {@code progress} sees the bytes written of the file's size; one that throws stops the write, and the temporary
     * file is deleted as after any failure, so {@code file} is left as it was.
     *
     * @throws TandemException if {@code file} is a directory, its folder does not exist, or writing fails
     */
    public void write(Path file, Progress progress) {
        Path abs = file.toAbsolutePath().normalize();
        if (Files.isDirectory(abs)) {
            throw new TandemException("the passage index " + file + " is a directory; give the name of a file to write.");
        }
        Path dir = abs.getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new TandemException("the folder of the passage index " + file + " does not exist.");
        }
        long textBytes = 0;
        byte[][] utf8 = new byte[texts.length][];
        for (int i = 0; i < texts.length; i++) {
            utf8[i] = texts[i].getBytes(StandardCharsets.UTF_8);
            textBytes += utf8[i].length;
        }
        byte[] header = header(textBytes);
        long total = PREAMBLE + header.length + (long) vectors.length * Float.BYTES + 4L * texts.length * Integer.BYTES
                + (long) ids.length * Integer.BYTES + textBytes + Integer.BYTES;
        try {
            AtomicFiles.write(abs, ch -> {
                Out out = new Out(ch, total, progress);
                out.bytes(MAGIC);
                out.i32(VERSION);
                out.i32(header.length);
                out.bytes(header);
                for (float v : vectors) {
                    out.f32(v);
                }
                for (int i = 0; i < texts.length; i++) {
                    out.i32(document[i]);
                    out.i32(offset[i]);
                    out.i32(idStart[i + 1] - idStart[i]);
                }
                for (int id : ids) {
                    out.i32(id);
                }
                for (byte[] t : utf8) {
                    out.i32(t.length);
                }
                for (byte[] t : utf8) {
                    out.bytes(t);
                }
                out.finish();
            });
        } catch (IOException e) {
            throw new TandemException("cannot write the passage index " + file + " (" + IoErrors.reason(e) + ").", e);
        }
    }

    private byte[] header(long textBytes) {
        ObjectNode h = JSON.createObjectNode();
        h.put("chunks", texts.length);
        h.put("documents", documents);
        h.put("dimension", dimension);
        h.put("chunk_tokens", chunkTokens);
        h.put("ids", ids.length);
        h.put("text_bytes", textBytes);
        ObjectNode e = h.putObject("encoder");
        e.put("name", encoder.name());
        e.put("sha256", encoder.sha256());
        e.put("pooling", POOLING);
        ObjectNode d = h.putObject("decoder");
        d.put("name", decoder.name());
        d.put("tokenizer_sha256", decoder.sha256());
        d.put("vocab_size", decoderVocab);
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(h);
        } catch (JsonProcessingException x) {
            throw new IllegalStateException("a header of numbers and strings always serialises", x);
        }
        byte[] padded = Arrays.copyOf(json, (json.length + 7) / 8 * 8);
        Arrays.fill(padded, json.length, padded.length, (byte) ' ');
        return padded;
    }

    /** Little-endian values into a channel through a buffer, with the CRC32C of every byte and progress in bytes. */
    private static final class Out {
        private final FileChannel ch;
        private final ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
        private final CRC32C crc = new CRC32C();
        private final long total;
        private final Progress progress;
        private long written;

        Out(FileChannel ch, long total, Progress progress) {
            this.ch = ch;
            this.total = total;
            this.progress = progress;
            progress.update(0, total);
        }

        void i32(int v) throws IOException {
            room(Integer.BYTES);
            buf.putInt(v);
        }

        void f32(float v) throws IOException {
            room(Float.BYTES);
            buf.putFloat(v);
        }

        void bytes(byte[] b) throws IOException {
            for (int at = 0; at < b.length; ) {
                room(1);
                int n = Math.min(buf.remaining(), b.length - at);
                buf.put(b, at, n);
                at += n;
            }
        }

        private void room(int n) throws IOException {
            if (buf.remaining() < n) {
                drain();
            }
        }

        private void drain() throws IOException {
            buf.flip();
            crc.update(buf.array(), 0, buf.limit());
            while (buf.hasRemaining()) {
                written += ch.write(buf);
            }
            buf.clear();
            progress.update(written, total);
        }

        /** Drains the buffer and writes the checksum (not itself checksummed). */
        void finish() throws IOException {
            drain();
            buf.putInt((int) crc.getValue());
            buf.flip();
            while (buf.hasRemaining()) {
                written += ch.write(buf);
            }
            buf.clear();
            progress.update(written, total);
        }
    }

    /**
     * The index in {@code file}.
     *
     * @throws TandemException if the file is missing or unreadable, or is not a whole, consistent passage index of
     *                         version {@value #VERSION}
     */
    public static PassageIndex read(Path file) {
        if (Files.isDirectory(file)) {
            throw new TandemException("the passage index " + file + " is a directory, not an index file.");
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            long size = ch.size();
            ByteBuffer pre = ByteBuffer.allocate(PREAMBLE).order(ByteOrder.LITTLE_ENDIAN);
            while (pre.hasRemaining() && ch.read(pre, pre.position()) > 0) {
                // read on: the preamble may come in pieces
            }
            if (pre.position() < MAGIC.length || !Arrays.equals(Arrays.copyOf(pre.array(), MAGIC.length), MAGIC)) {
                throw new TandemException(file + " is not a Tandem passage index (it does not start with "
                        + new String(MAGIC, StandardCharsets.US_ASCII) + "); build one with tandem index.");
            }
            if (pre.position() < PREAMBLE) {
                throw new TandemException(file + " is truncated: it ends at byte " + size + ", inside the " + PREAMBLE
                        + "-byte preamble of a passage index.");
            }
            int version = pre.getInt(MAGIC.length);
            if (version != VERSION) {
                throw new TandemException(file + " is a passage index of format version " + Integer.toUnsignedString(version)
                        + ", but this Tandem reads version " + VERSION + "; rebuild it with tandem index.");
            }
            int headerSize = pre.getInt(MAGIC.length + Integer.BYTES);
            if (headerSize < 2 || headerSize > MAX_HEADER) {
                throw invalid(file, "its header size is " + Integer.toUnsignedString(headerSize) + " bytes, not from 2 to " + MAX_HEADER);
            }
            if (size < PREAMBLE + (long) headerSize) {
                throw new TandemException(file + " is truncated: it has " + size + " bytes, fewer than its " + headerSize
                        + "-byte header needs.");
            }
            MemorySegment m = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            byte[] headerBytes = m.asSlice(PREAMBLE, headerSize).toArray(ValueLayout.JAVA_BYTE);
            return parse(file, m, size, headerSize, header(file, headerBytes));
        } catch (NoSuchFileException e) {
            throw new TandemException("the passage index " + file + " does not exist.", e);
        } catch (IOException e) {
            throw new TandemException("cannot read the passage index " + file + " (" + IoErrors.reason(e) + ").", e);
        }
    }

    /** What a header says. */
    private record Header(int chunks, int documents, int dimension, int chunkTokens, int ids, long textBytes,
                          EncoderIdentity encoder, TokenizerIdentity decoder, int vocab) {
    }

    private static Header header(Path file, byte[] bytes) {
        if (Utf8Text.firstInvalidByte(bytes) >= 0) {
            throw invalid(file, "its header is not UTF-8");
        }
        JsonNode h;
        try {
            h = JSON.readTree(bytes);
        } catch (IOException e) {
            throw invalid(file, "its header is not JSON");
        }
        if (h == null || !h.isObject()) {
            throw invalid(file, "its header is not a JSON object");
        }
        int chunks = intField(file, h, "chunks", 1, Integer.MAX_VALUE);
        int dimension = intField(file, h, "dimension", 1, Integer.MAX_VALUE);
        if ((long) chunks * dimension > Integer.MAX_VALUE - 8) {
            throw invalid(file, "its header says " + chunks + " chunks of " + dimension + " dimensions, more values than an index holds");
        }
        int documents = intField(file, h, "documents", 1, Integer.MAX_VALUE);
        int chunkTokens = intField(file, h, "chunk_tokens", 1, Chunker.MAX_CHUNK_TOKENS);
        int ids = intField(file, h, "ids", 1, Integer.MAX_VALUE);
        long textBytes = h.path("text_bytes").canConvertToLong() && h.path("text_bytes").isIntegralNumber()
                && h.path("text_bytes").longValue() >= 0 ? h.path("text_bytes").longValue() : -1;
        if (textBytes < 0) {
            throw invalid(file, "its header's \"text_bytes\" is missing or not an integer of at least 0");
        }
        JsonNode e = h.path("encoder"), d = h.path("decoder");
        String encoderName = textField(file, e, "encoder", "name");
        String encoderSha = shaField(file, e, "encoder", "sha256");
        String pooling = textField(file, e, "encoder", "pooling");
        if (!pooling.equals(POOLING)) {
            throw invalid(file, "its vectors are pooled by \"" + pooling + "\", and only \"" + POOLING + "\" is read");
        }
        String decoderName = textField(file, d, "decoder", "name");
        String decoderSha = shaField(file, d, "decoder", "tokenizer_sha256");
        int vocab = intField(file, d, "vocab_size", 1, Integer.MAX_VALUE);
        return new Header(chunks, documents, dimension, chunkTokens, ids, textBytes, new EncoderIdentity(encoderName, encoderSha),
                new TokenizerIdentity(decoderName, decoderSha), vocab);
    }

    private static int intField(Path file, JsonNode node, String field, int min, int max) {
        JsonNode v = node.path(field);
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < min || v.intValue() > max) {
            throw invalid(file, "its header's \"" + field + "\" is " + (v.isMissingNode() ? "missing" : v.toString())
                    + ", not an integer from " + min + " to " + max);
        }
        return v.intValue();
    }

    private static String textField(Path file, JsonNode node, String object, String field) {
        JsonNode v = node.path(field);
        if (!v.isTextual()) {
            throw invalid(file, "its header's \"" + object + "\" has no text \"" + field + "\"");
        }
        return v.textValue();
    }

    private static String shaField(Path file, JsonNode node, String object, String field) {
        String v = textField(file, node, object, field);
        if (!v.matches("[0-9a-f]{64}")) {
            throw invalid(file, "its header's \"" + object + "\" \"" + field + "\" is not a SHA-256 (64 lowercase hex digits)");
        }
        return v;
    }

    private static PassageIndex parse(Path file, MemorySegment m, long size, int headerSize, Header h) {
        int c = h.chunks(), d = h.dimension();
        long vectorsAt = PREAMBLE + (long) headerSize;
        long tableAt = vectorsAt + (long) c * d * Float.BYTES;
        long idsAt = tableAt + 3L * c * Integer.BYTES;
        long sizesAt = idsAt + (long) h.ids() * Integer.BYTES;
        long textsAt = sizesAt + (long) c * Integer.BYTES;
        long crcAt = textsAt + h.textBytes();
        long expected = crcAt + Integer.BYTES;
        if (size < expected) {
            throw new TandemException(file + " is truncated: it has " + size + " bytes, but its header describes " + expected + ".");
        }
        if (size > expected) {
            throw invalid(file, "it has " + (size - expected) + " bytes more than its header describes (" + expected + ")");
        }
        CRC32C crc = new CRC32C();
        for (long at = 0; at < crcAt; at += 1 << 30) {
            crc.update(m.asSlice(at, Math.min(1L << 30, crcAt - at)).asByteBuffer());
        }
        if ((int) crc.getValue() != m.get(I32, crcAt)) {
            throw new TandemException(file + " is corrupt: its checksum does not match its contents; rebuild it with tandem index.");
        }
        float[] vectors = new float[c * d];
        MemorySegment.copy(m, F32, vectorsAt, vectors, 0, vectors.length);
        for (int i = 0; i < vectors.length; i++) {
            if (!Float.isFinite(vectors[i])) {
                throw invalid(file, "the vector of chunk " + i / d + " holds a value that is not finite");
            }
        }
        int[] ids = new int[h.ids()];
        MemorySegment.copy(m, I32, idsAt, ids, 0, ids.length);
        int[] document = new int[c], offset = new int[c], idStart = new int[c + 1];
        for (int i = 0; i < c; i++) {
            document[i] = m.get(I32, tableAt + 12L * i);
            offset[i] = m.get(I32, tableAt + 12L * i + 4);
            int count = m.get(I32, tableAt + 12L * i + 8);
            if (document[i] < 0 || document[i] >= h.documents()) {
                throw invalid(file, "chunk " + i + " is of document " + document[i] + ", but its header says " + h.documents()
                        + " documents");
            }
            if (count < 1 || count > h.chunkTokens()) {
                throw invalid(file, "chunk " + i + " has " + count + " ids, not 1 to the chunk size of " + h.chunkTokens());
            }
            boolean first = i == 0 || document[i] != document[i - 1];
            if (!first && document[i] < document[i - 1]) {
                throw invalid(file, "chunk " + i + " is of document " + document[i] + ", before the document of chunk " + (i - 1));
            }
            if (!first && (idStart[i] - idStart[i - 1] != h.chunkTokens() || offset[i] != offset[i - 1] + h.chunkTokens())) {
                throw invalid(file, "chunk " + i + " does not follow a whole chunk of " + h.chunkTokens() + " ids of its document");
            }
            if (first && offset[i] != 0) {
                throw invalid(file, "chunk " + i + " begins document " + document[i] + " at token " + offset[i] + ", not 0");
            }
            if ((long) idStart[i] + count > ids.length) {
                throw invalid(file, "its chunks have more ids than its header's " + ids.length);
            }
            idStart[i + 1] = idStart[i] + count;
        }
        if (idStart[c] != ids.length) {
            throw invalid(file, "its chunks have " + idStart[c] + " ids, but its header says " + ids.length);
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= h.vocab()) {
                throw invalid(file, "it holds the token id " + ids[i] + ", outside the decoder's vocabulary of " + h.vocab());
            }
        }
        String[] texts = new String[c];
        long at = textsAt;
        var utf8 = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        for (int i = 0; i < c; i++) {
            int n = m.get(I32, sizesAt + 4L * i);
            if (n < 0 || at + n > crcAt) {
                throw invalid(file, "the texts of its chunks come to more than its header's " + h.textBytes() + " bytes");
            }
            try {
                texts[i] = utf8.decode(m.asSlice(at, n).asByteBuffer()).toString();
            } catch (CharacterCodingException e) {
                throw invalid(file, "the text of chunk " + i + " is not UTF-8");
            }
            at += n;
        }
        if (at != crcAt) {
            throw invalid(file, "the texts of its chunks come to " + (at - textsAt) + " bytes, but its header says " + h.textBytes());
        }
        return new PassageIndex(file.toString(), h.encoder(), h.decoder(), h.vocab(), h.chunkTokens(), h.documents(), d, vectors,
                document, offset, idStart, ids, texts);
    }

    private static TandemException invalid(Path file, String why) {
        return new TandemException(file + " is not a valid passage index: " + why + ".");
    }

}
