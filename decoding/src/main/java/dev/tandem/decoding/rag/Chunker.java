package dev.tandem.decoding.rag;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * Cuts a corpus into the chunks of a {@link PassageIndex}. Documents are separated by one or more blank lines (lines
 * of nothing but white space, no-break spaces included); a document is its lines joined by {@code "\n"} (a {@code "\r"} ending a line dropped).
 * Each document is encoded with the decoder's tokenizer as plain text — nothing added (no BOS), and special tokens
 * written in it ({@code <|endoftext|>}) encoded as the text they spell, as a user's text is — and cut into consecutive
 * chunks of N ids, the last of a document shorter. A chunk's text is the tokenizer's decoding of its ids: where a cut
 * falls inside a character (a byte-level tokenizer may spread one over several ids) the text holds U+FFFD there, while
 * the ids of a document's chunks always concatenate to the document's ids.
 *
 * <p>Documents and chunks are numbered from 0, chunks across the whole corpus.
 */
public final class Chunker {
    /** The largest chunk, in decoder tokens. */
    public static final int MAX_CHUNK_TOKENS = 256;

    /** A document of the corpus: its number (from 0), the corpus line it starts on (from 1) and its text. */
    public record Document(int number, int line, String text) {
    }

    private final Tokenizer tokenizer;
    private final int chunkTokens;

    /**
     * @param decoderTokenizer the decoder's tokenizer
     * @param chunkTokens      N, the decoder tokens of a chunk
     * @throws TandemException if {@code chunkTokens} is not from 1 to {@value #MAX_CHUNK_TOKENS}
     */
    public Chunker(Tokenizer decoderTokenizer, int chunkTokens) {
        this.tokenizer = Objects.requireNonNull(decoderTokenizer, "decoderTokenizer");
        this.chunkTokens = requireChunkTokens(chunkTokens);
    }

    /** {@code n}, when it is a chunk size from 1 to {@value #MAX_CHUNK_TOKENS}. @throws TandemException otherwise */
    static int requireChunkTokens(int n) {
        if (n < 1 || n > MAX_CHUNK_TOKENS) {
            throw new TandemException("the chunk size must be from 1 to " + MAX_CHUNK_TOKENS + " decoder tokens, but was " + n + ".");
        }
        return n;
    }

    public int chunkTokens() {
        return chunkTokens;
    }

    /** The documents of {@code corpus}, in order. */
    public static List<Document> documents(String corpus) {
        List<Document> out = new ArrayList<>();
        StringBuilder doc = new StringBuilder();
        int start = 0;
        String[] lines = corpus.split("\n", -1);
        for (int i = 0; i <= lines.length; i++) {
            String line = i < lines.length ? lines[i] : "";
            if (line.endsWith("\r")) {
                line = line.substring(0, line.length() - 1);
            }
            if (blank(line)) {
                if (!doc.isEmpty()) {
                    out.add(new Document(out.size(), start, doc.toString()));
                    doc.setLength(0);
                }
                continue;
            }
            if (doc.isEmpty()) {
                start = i + 1;
            } else {
                doc.append('\n');
            }
            doc.append(line);
        }
        return out;
    }

    private static boolean blank(String line) {
        return line.codePoints().allMatch(c -> Character.isWhitespace(c) || Character.isSpaceChar(c));
    }

    /** {@code document}'s ids: its text encoded as plain text, nothing added. */
    public int[] encode(Document document) {
        return tokenizer.encode(document.text(), false);
    }

    /** The chunks of {@code documents}, numbered from 0 in order; a document that encodes to no ids has none. */
    public List<PassageIndex.Chunk> chunks(List<Document> documents) {
        List<PassageIndex.Chunk> out = new ArrayList<>();
        for (Document d : documents) {
            int[] ids = encode(d);
            for (int from = 0; from < ids.length; from += chunkTokens) {
                int[] part = Arrays.copyOfRange(ids, from, Math.min(ids.length, from + chunkTokens));
                out.add(new PassageIndex.Chunk(out.size(), d.number(), from, part, tokenizer.decode(part, false)));
            }
        }
        return out;
    }
}
