package dev.tandem.decoding.speculative;

import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The next-token table of {@link AdedDecoding}: P(c | a, b) from trigram counts of a corpus tokenized with
 * the target's tokenizer, with a bigram back-off P(c | b) where the pair (a, b) was never seen, and an
 * online layer of counts from the tokens being generated. For a context x (a pair, or one token when
 * backing off):
 *
 * <pre>
 *   P(c | x) = (K · C(x, c) / C(x) + O(x, c)) / (K + O(x))        K = {@value #ONLINE_PRIOR}
 * </pre>
 *
 * where C are the corpus counts and O the online counts (O(x) their sum over c). The corpus distribution
 * acts as a prior worth K observations, so a context the generation keeps repeating drifts toward what
 * the generation does there; each online count is raised by {@value #ONLINE_STEP} per observation and
 * capped at {@value #ONLINE_CAP}, which bounds how far one repeated trigram can push (with C(x) = 0 the
 * prior term drops out and P = O(x, c) / O(x)). A context with neither corpus nor online counts backs off
 * from (a, b) to b, and from b to nothing (no successors).
 *
 * <p>The corpus counts are immutable and shared; the online counts belong to one table. {@link #copy()}
 * shares the corpus and copies only the online layer, so one corpus table can seed every generation
 * without their updates leaking into each other. Not thread-safe while {@link #observe} runs; a table
 * that is only read (e.g. the base that {@link AdedDecoding} copies per request) may be shared.
 */
public final class TrigramTable {
    /** Pseudo-observations the corpus distribution is worth against the online counts. */
    public static final double ONLINE_PRIOR = 2.0;
    /** Raise of a trigram's (and its bigram's) online count per observation. */
    public static final int ONLINE_STEP = 1;
    /** Largest online count of one trigram (or bigram). */
    public static final int ONLINE_CAP = 8;
    /** Token ids must be below this (21 bits, so a trigram packs into one long). */
    public static final int MAX_TOKEN = 1 << 21;

    /** Characters per tokenizer call when reading a corpus: long enough to be cheap, short enough for progress. */
    static final int CHUNK_CHARS = 1 << 16;

    private static final int BITS = 21;
    private static final long MASK = MAX_TOKEN - 1;

    /** One candidate next token and its probability under the table. */
    public record Successor(int token, double probability) {}

    private final Counts trigrams;
    private final Counts bigrams;
    private final long corpusTokens;
    private final Map<Long, Online> onlineTrigrams;
    private final Map<Long, Online> onlineBigrams;

    private TrigramTable(Counts trigrams, Counts bigrams, long corpusTokens,
                         Map<Long, Online> onlineTrigrams, Map<Long, Online> onlineBigrams) {
        this.trigrams = trigrams;
        this.bigrams = bigrams;
        this.corpusTokens = corpusTokens;
        this.onlineTrigrams = onlineTrigrams;
        this.onlineBigrams = onlineBigrams;
    }

    /** A table with no corpus counts (drafts come only from what {@link #observe} sees). */
    public static TrigramTable empty() {
        return fromTokens(new int[0]);
    }

    /** The corpus table of one token stream (the trigrams and bigrams of consecutive tokens). */
    public static TrigramTable fromTokens(int[] tokens) {
        for (int i = 0; i < tokens.length; i++) {
            requireToken(tokens[i], i);
        }
        long[] tri = new long[Math.max(0, tokens.length - 2)];
        for (int i = 2; i < tokens.length; i++) {
            tri[i - 2] = pack(pack(tokens[i - 2], tokens[i - 1]), tokens[i]);
        }
        long[] bi = new long[Math.max(0, tokens.length - 1)];
        for (int i = 1; i < tokens.length; i++) {
            bi[i - 1] = pack(tokens[i - 1], tokens[i]);
        }
        return new TrigramTable(Counts.of(tri), Counts.of(bi), tokens.length, new HashMap<>(), new HashMap<>());
    }

    /** {@link #fromCorpus(Tokenizer, Path, Progress)} without progress reports. */
    public static TrigramTable fromCorpus(Tokenizer tokenizer, Path file) {
        return fromCorpus(tokenizer, file, Progress.NONE);
    }

    /**
     * The corpus table of a UTF-8 text file, tokenized with {@code tokenizer} as {@link Tokenizer#encode(String)}
     * does (no BOS/EOS added; added tokens spelled out in the text, such as an end-of-text marker between
     * documents, become their ids). A leading byte-order mark is skipped. The
     * text is encoded in pieces of about {@value #CHUNK_CHARS} characters, each cut just before the last
     * whitespace character ahead of a letter or digit: pre-tokenizers of the GPT-2 family never join
     * across such a cut, so the tokens equal those of the whole text at once (others may differ at the
     * cuts, which only nudges the counts). {@code progress} sees the bytes tokenized so far of the file's
     * size.
     *
     * @throws TandemException if the file is missing, unreadable, not UTF-8 or holds no tokens
     */
    public static TrigramTable fromCorpus(Tokenizer tokenizer, Path file, Progress progress) {
        if (tokenizer.vocabSize() > MAX_TOKEN) {
            throw new TandemException("a trigram table holds token ids below " + MAX_TOKEN + ", but the tokenizer has "
                    + tokenizer.vocabSize() + " tokens.");
        }
        byte[] bytes = read(file);
        String text = decodeUtf8(bytes, file);
        TokenBuffer tokens = new TokenBuffer(Math.max(16, text.length() / 3));
        long done = bytes.length - utf8Length(text, 0, text.length()); // a byte-order mark, if any
        for (int from = 0; from < text.length(); ) {
            int to = chunkEnd(text, from, CHUNK_CHARS);
            for (int t : tokenizer.encode(text.substring(from, to))) {
                tokens.add(t);
            }
            done += utf8Length(text, from, to);
            progress.update(done, bytes.length);
            from = to;
        }
        if (tokens.size() == 0) {
            throw new TandemException("the corpus file " + file + " holds no text to build a trigram table from.");
        }
        return fromTokens(tokens.toArray());
    }

    /**
     * Where the piece starting at {@code from} ends: at the first index ≥ from + chars holding ' ' or '\n'
     * followed by a letter or digit (that whitespace character starts the next piece), or at the end.
     */
    static int chunkEnd(String text, int from, int chars) {
        int n = text.length();
        for (int i = (int) Math.min(n, (long) from + chars); i + 1 < n; i++) {
            char c = text.charAt(i);
            if ((c == ' ' || c == '\n') && Character.isLetterOrDigit(text.charAt(i + 1)) && i > from) {
                return i;
            }
        }
        return n;
    }

    /** The largest corpus file read: the text and its tokens are held in memory while the table is built. */
    static final long MAX_CORPUS_BYTES = 1L << 30;

    private static byte[] read(Path file) {
        byte[] bytes;
        try {
            long size = Files.size(file);
            if (size > MAX_CORPUS_BYTES) {
                throw new TandemException("the corpus file " + file + " has " + size + " bytes, more than the "
                        + MAX_CORPUS_BYTES + " a trigram table is built from; give a smaller excerpt.");
            }
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new TandemException("the corpus file " + file + " does not exist.");
        } catch (IOException e) {
            throw new TandemException("cannot read the corpus file " + file + " (" + IoErrors.reason(e) + ").", e);
        }
        if (bytes.length == 0) {
            throw new TandemException("the corpus file " + file + " is empty.");
        }
        return bytes;
    }

    /** The text of {@code bytes}, without a leading byte-order mark. */
    private static String decodeUtf8(byte[] bytes, Path file) {
        try {
            CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes));
            String text = chars.toString();
            return text.startsWith("\uFEFF") ? text.substring(1) : text;
        } catch (CharacterCodingException e) {
            throw new TandemException("the corpus file " + file + " is not valid UTF-8.", e);
        }
    }

    private static long utf8Length(String s, int from, int to) {
        long bytes = 0;
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                bytes += 1;
            } else if (c < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < to && Character.isLowSurrogate(s.charAt(i + 1))) {
                bytes += 4;
                i++;
            } else {
                bytes += 3;
            }
        }
        return bytes;
    }

    /** A table with the same corpus counts (shared) and a copy of this table's online counts. */
    public TrigramTable copy() {
        return new TrigramTable(trigrams, bigrams, corpusTokens, deepCopy(onlineTrigrams), deepCopy(onlineBigrams));
    }

    private static Map<Long, Online> deepCopy(Map<Long, Online> m) {
        Map<Long, Online> out = new HashMap<>(Math.max(16, m.size() * 2));
        for (Map.Entry<Long, Online> e : m.entrySet()) {
            out.put(e.getKey(), e.getValue().copy());
        }
        return out;
    }

    /** Tokens of the corpus the table was built from. */
    public long corpusTokens() {
        return corpusTokens;
    }

    /** Distinct trigrams of the corpus. */
    public int corpusTrigrams() {
        return trigrams.tokens.length;
    }

    /**
     * Online update: for every i in [from, to), the trigram (tokens[i − 2], tokens[i − 1], tokens[i]) (when
     * i ≥ 2) and the bigram (tokens[i − 1], tokens[i]) (when i ≥ 1) have their online counts raised by
     * {@value #ONLINE_STEP}, capped at {@value #ONLINE_CAP}.
     */
    public void observe(int[] tokens, int from, int to) {
        if (from < 0 || to > tokens.length || from > to) {
            throw new IndexOutOfBoundsException("range [" + from + ", " + to + ") of " + tokens.length + " tokens");
        }
        for (int i = Math.max(0, from - 2); i < to; i++) {
            requireToken(tokens[i], i);
        }
        for (int i = Math.max(1, from); i < to; i++) {
            onlineBigrams.computeIfAbsent((long) tokens[i - 1], k -> new Online()).raise(tokens[i]);
            if (i >= 2) {
                onlineTrigrams.computeIfAbsent(pack(tokens[i - 2], tokens[i - 1]), k -> new Online()).raise(tokens[i]);
            }
        }
    }

    /**
     * Up to {@code limit} likely tokens after the context (a, b), most probable first, lower id on ties:
     * from the pair's counts if it has any, else from b's (the back-off), else none. {@code a < 0} means
     * the context has only one token (b); {@code b < 0}, that it has none (no successors).
     */
    public List<Successor> successors(int a, int b, int limit) {
        if (limit < 1 || b < 0 || b >= MAX_TOKEN || a >= MAX_TOKEN) {
            return List.of();
        }
        if (a >= 0) {
            List<Successor> s = successors(trigrams, onlineTrigrams, pack(a, b), limit);
            if (s != null) {
                return s;
            }
        }
        List<Successor> s = successors(bigrams, onlineBigrams, b, limit);
        return s == null ? List.of() : s;
    }

    /** The top of P(· | context) as in the class comment, or null when the context has no counts at all. */
    private static List<Successor> successors(Counts corpus, Map<Long, Online> online, long context, int limit) {
        int run = corpus.find(context);
        Online o = online.get(context);
        if (run < 0 && o == null) {
            return null;
        }
        double prior = run < 0 ? 0 : ONLINE_PRIOR;
        double onlineTotal = o == null ? 0 : o.total;
        double norm = prior + onlineTotal;
        // Candidates: the corpus's top `limit` and every online token. A token outside both cannot beat the
        // corpus's limit-th one (it has at most that one's corpus count and no online count), and loses its ties.
        int corpusFrom = run < 0 ? 0 : corpus.start[run];
        int corpusTo = run < 0 ? 0 : Math.min(corpus.start[run + 1], corpusFrom + limit);
        int onlineSize = o == null ? 0 : o.size;
        int[] tokens = new int[corpusTo - corpusFrom + onlineSize];
        double[] p = new double[tokens.length];
        int n = 0;
        for (int i = corpusFrom; i < corpusTo; i++) {
            tokens[n] = corpus.tokens[i];
            p[n++] = prior * corpus.counts[i] / corpus.totals[run] / norm;
        }
        for (int i = 0; i < onlineSize; i++) {
            double share = (double) o.counts[i] / norm;
            int k = indexOf(tokens, n, o.tokens[i]);
            if (k >= 0) {
                p[k] += share;
            } else {
                double fromCorpus = run < 0 ? 0 : prior * corpus.count(run, o.tokens[i]) / corpus.totals[run] / norm;
                tokens[n] = o.tokens[i];
                p[n++] = fromCorpus + share;
            }
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> p[x] != p[y] ? Double.compare(p[y], p[x]) : Integer.compare(tokens[x], tokens[y]));
        List<Successor> out = new ArrayList<>(Math.min(limit, n));
        for (int i = 0; i < Math.min(limit, n); i++) {
            out.add(new Successor(tokens[order[i]], p[order[i]]));
        }
        return out;
    }

    private static int indexOf(int[] a, int n, int v) {
        for (int i = 0; i < n; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }

    private static long pack(long context, int token) {
        return (context << BITS) | token;
    }

    private static void requireToken(int token, int index) {
        if (token < 0 || token >= MAX_TOKEN) {
            throw new IllegalArgumentException("token " + index + " is " + token + ", outside [0, " + MAX_TOKEN + ").");
        }
    }

    /**
     * Frozen counts: per context (a packed key), a run of successors sorted by count, highest first, lower id
     * on ties; contexts found through an open-addressing index.
     */
    private static final class Counts {
        final long[] slots;   // context key per slot, −1 = empty
        final int[] slotRun;  // the run of the context in that slot
        final int[] start;    // run r is [start[r], start[r + 1]) of tokens / counts
        final int[] totals;   // sum of the run's counts
        final int[] tokens;
        final int[] counts;

        private Counts(long[] slots, int[] slotRun, int[] start, int[] totals, int[] tokens, int[] counts) {
            this.slots = slots;
            this.slotRun = slotRun;
            this.start = start;
            this.totals = totals;
            this.tokens = tokens;
            this.counts = counts;
        }

        /** The counts of packed (context, token) keys (sorted in place). */
        static Counts of(long[] keys) {
            Arrays.sort(keys);
            int distinct = 0;
            int contexts = 0;
            for (int i = 0; i < keys.length; i++) {
                if (i == 0 || keys[i] != keys[i - 1]) {
                    distinct++;
                }
                if (i == 0 || keys[i] >>> BITS != keys[i - 1] >>> BITS) {
                    contexts++;
                }
            }
            int[] tokens = new int[distinct];
            int[] counts = new int[distinct];
            int[] start = new int[contexts + 1];
            int[] totals = new int[contexts];
            long[] contextKeys = new long[contexts];
            int d = -1;
            int r = -1;
            for (int i = 0; i < keys.length; i++) {
                if (i == 0 || keys[i] >>> BITS != keys[i - 1] >>> BITS) {
                    r++;
                    contextKeys[r] = keys[i] >>> BITS;
                    start[r] = d + 1;
                }
                if (i == 0 || keys[i] != keys[i - 1]) {
                    d++;
                    tokens[d] = (int) (keys[i] & MASK);
                }
                counts[d]++;
                totals[r]++;
            }
            start[contexts] = distinct;
            for (int run = 0; run < contexts; run++) {
                sortRun(tokens, counts, start[run], start[run + 1]);
            }
            int capacity = Integer.highestOneBit(Math.max(4, contexts * 2 - 1)) << 1;
            long[] slots = new long[capacity];
            Arrays.fill(slots, -1L);
            int[] slotRun = new int[capacity];
            for (int run = 0; run < contexts; run++) {
                int s = slot(slots, contextKeys[run]);
                slots[s] = contextKeys[run];
                slotRun[s] = run;
            }
            return new Counts(slots, slotRun, start, totals, tokens, counts);
        }

        /** Sorts a run (ascending ids on entry) by count, highest first; a stable sort keeps lower ids first on ties. */
        private static void sortRun(int[] tokens, int[] counts, int from, int to) {
            int n = to - from;
            if (n < 2) {
                return;
            }
            long[] keyed = new long[n];
            for (int i = 0; i < n; i++) {
                // Count descending, then id ascending, as one ascending long.
                keyed[i] = ((long) (Integer.MAX_VALUE - counts[from + i]) << 32) | tokens[from + i];
            }
            Arrays.sort(keyed);
            for (int i = 0; i < n; i++) {
                tokens[from + i] = (int) keyed[i];
                counts[from + i] = Integer.MAX_VALUE - (int) (keyed[i] >>> 32);
            }
        }

        /** The run of {@code context}, or −1. */
        int find(long context) {
            int s = slot(slots, context);
            return slots[s] == context ? slotRun[s] : -1;
        }

        /** The corpus count of {@code token} in run {@code run}. */
        int count(int run, int token) {
            for (int i = start[run]; i < start[run + 1]; i++) {
                if (tokens[i] == token) {
                    return counts[i];
                }
            }
            return 0;
        }

        /** The slot holding {@code key}, or the empty slot where it would go (linear probing). */
        private static int slot(long[] slots, long key) {
            int mask = slots.length - 1;
            long h = key * 0x9E3779B97F4A7C15L;
            int s = (int) (h ^ (h >>> 32)) & mask;
            while (slots[s] != -1L && slots[s] != key) {
                s = (s + 1) & mask;
            }
            return s;
        }
    }

    /** The online counts of one context: a short list of (token, count), each count capped. */
    private static final class Online {
        int[] tokens = new int[2];
        int[] counts = new int[2];
        int size;
        int total;

        void raise(int token) {
            for (int i = 0; i < size; i++) {
                if (tokens[i] == token) {
                    int raised = Math.min(ONLINE_CAP, counts[i] + ONLINE_STEP);
                    total += raised - counts[i];
                    counts[i] = raised;
                    return;
                }
            }
            if (size == tokens.length) {
                tokens = Arrays.copyOf(tokens, size * 2);
                counts = Arrays.copyOf(counts, size * 2);
            }
            tokens[size] = token;
            counts[size++] = Math.min(ONLINE_CAP, ONLINE_STEP);
            total += counts[size - 1];
        }

        Online copy() {
            Online o = new Online();
            o.tokens = tokens.clone();
            o.counts = counts.clone();
            o.size = size;
            o.total = total;
            return o;
        }
    }

    /** A growable int array for the corpus's tokens. */
    private static final class TokenBuffer {
        private int[] a;
        private int n;

        TokenBuffer(int capacity) {
            a = new int[capacity];
        }

        void add(int v) {
            if (n == a.length) {
                a = Arrays.copyOf(a, Math.max(16, n + (n >> 1)));
            }
            a[n++] = v;
        }

        int size() {
            return n;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
