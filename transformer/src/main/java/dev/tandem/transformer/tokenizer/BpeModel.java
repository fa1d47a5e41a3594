package dev.tandem.transformer.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The {@code model} of a BPE {@code tokenizer.json}: each pre-token is spelled as its characters'
 * vocabulary ids, and merges are applied by rank, as the Rust crate's {@code BPE} model does.
 * Immutable after construction and safe for concurrent use; the per-word cache is concurrent.
 */
final class BpeModel implements TokenModel {

    /** Same bounds as the Rust crate: decode loops re-encode the same words, but memory must stay bounded. */
    private static final int CACHE_CAPACITY = 10_000;
    private static final int MAX_CACHED_WORD_LENGTH = 256;

    /** {@code model.vocab}: token string to id. */
    final Map<String, Integer> vocab;
    /** Ids of the single-character vocabulary entries in the BMP, indexed by character; -1 if none. */
    private final int[] charIds = new int[Character.MAX_VALUE + 1];
    /** Byte value to the id of its {@code <0xNN>} token (-1 if missing); null without byte_fallback. */
    private final int[] byteFallbackIds;
    private final MergeTable merges;
    private final int unkId;
    private final boolean fuseUnk;
    private final boolean ignoreMerges;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    private BpeModel(Map<String, Integer> vocab, MergeTable merges, int unkId, boolean fuseUnk, boolean byteFallback,
            boolean ignoreMerges) {
        this.vocab = vocab;
        this.merges = merges;
        this.unkId = unkId;
        this.fuseUnk = fuseUnk;
        this.ignoreMerges = ignoreMerges;
        Arrays.fill(charIds, -1);
        vocab.forEach((token, id) -> {
            if (token.length() == 1) {
                charIds[token.charAt(0)] = id;
            }
        });
        if (byteFallback) {
            byteFallbackIds = new int[256];
            for (int b = 0; b < 256; b++) {
                byteFallbackIds[b] = vocab.getOrDefault(String.format("<0x%02X>", b), -1);
            }
        } else {
            byteFallbackIds = null;
        }
    }

    /** Reads {@code model}, a BPE model object, with the checks the Rust crate makes and a few more. */
    static BpeModel parse(JsonNode model, TokenizerJson json) {
        for (String field : new String[] {"continuing_subword_prefix", "end_of_word_suffix"}) {
            String value = model.path(field).asText("");
            if (!value.isEmpty()) {
                // BPE with a subword prefix or suffix (some BERT-era files) needs them in its merges: not done.
                throw json.fail("model." + field + " \"" + value + "\" is not supported (only empty or null)");
            }
        }
        JsonNode dropout = model.path("dropout");
        if (!TokenizerJson.absent(dropout) && dropout.asDouble(1) != 0) {
            throw json.fail("model.dropout " + dropout + " is not supported (only null or 0: inference wants the"
                    + " deterministic segmentation)");
        }
        if (json.vocab == null) {
            throw json.fail("model.vocab is missing or not an object");
        }
        if (json.merges == null) {
            throw json.fail("model.merges is missing or not an array");
        }
        int unkId = -1;
        if (!TokenizerJson.absent(model.path("unk_token"))) {
            String unk = json.text(model, "unk_token", "model");
            Integer id = json.vocab.get(unk);
            if (id == null) {
                throw json.fail("model.unk_token \"" + unk + "\" is not in model.vocab");
            }
            unkId = id;
        }
        return new BpeModel(json.vocab, mergeTable(json.merges, json.vocab, json), unkId,
                json.bool(model, "fuse_unk", false, "model"), json.bool(model, "byte_fallback", false, "model"),
                json.bool(model, "ignore_merges", false, "model"));
    }

    /** The merges (flattened left, right pairs, by rank) as ids. */
    private static MergeTable mergeTable(List<String> pairs, Map<String, Integer> vocab, TokenizerJson json) {
        MergeTable merges = new MergeTable(pairs.size() / 2);
        for (int rank = 0; rank < pairs.size() / 2; rank++) {
            String left = pairs.get(2 * rank);
            String right = pairs.get(2 * rank + 1);
            Integer leftId = vocab.get(left);
            Integer rightId = vocab.get(right);
            Integer mergedId = vocab.get(left + right);
            if (leftId == null || rightId == null || mergedId == null) {
                String missing = leftId == null ? "uses \"" + left : rightId == null ? "uses \"" + right
                        : "produces \"" + left + right;
                throw json.fail("model.merges[" + rank + "] " + missing + "\", which is not in model.vocab");
            }
            // A later duplicate overwrites an earlier one, as in the Rust crate.
            merges.put(pairKey(leftId, rightId), ((long) rank << 32) | mergedId);
        }
        return merges;
    }

    @Override
    public Map<String, Integer> vocab() {
        return vocab;
    }

    @Override
    public void encode(String word, IntList out) {
        if (ignoreMerges) {
            // As the Rust crate: a whole pre-token in the vocabulary is one token, whatever the merges say.
            Integer whole = vocab.get(word);
            if (whole != null) {
                out.add(whole);
                return;
            }
        }
        int[] ids = cache.get(word);
        if (ids == null) {
            ids = bpe(word);
            // Stop filling once full rather than evict: simple, lock-free, and what the Rust crate does.
            if (word.length() < MAX_CACHED_WORD_LENGTH && cache.size() < CACHE_CAPACITY) {
                cache.putIfAbsent(word, ids);
            }
        }
        out.addAll(ids);
    }

    /**
     * The initial symbols are the word's characters' ids. A character missing from the vocabulary
     * becomes its UTF-8 bytes' {@code <0xNN>} tokens with byte_fallback (if all exist), else the unk
     * token (one per run of such characters with fuse_unk), else it is dropped, as in the Rust crate.
     */
    private int[] bpe(String word) {
        IntList symbols = new IntList(word.length());
        boolean previousUnknown = false;
        for (int i = 0; i < word.length(); ) {
            int c = word.codePointAt(i);
            int next = i + Character.charCount(c);
            int id = c <= Character.MAX_VALUE ? charIds[c] : vocab.getOrDefault(word.substring(i, next), -1);
            i = next;
            if (id >= 0) {
                symbols.add(id);
                previousUnknown = false;
                continue;
            }
            if (byteFallbackIds != null && addByteFallback(c, symbols)) {
                previousUnknown = false;
                continue;
            }
            if (unkId >= 0 && !(fuseUnk && previousUnknown)) {
                symbols.add(unkId);
            }
            previousUnknown = true;
        }
        return symbols.size() < 2 ? symbols.toArray() : mergeByRank(symbols.toArray());
    }

    private boolean addByteFallback(int c, IntList symbols) {
        byte[] utf8 = Character.toString(c).getBytes(StandardCharsets.UTF_8);
        for (byte b : utf8) {
            if (byteFallbackIds[b & 0xFF] < 0) {
                return false;
            }
        }
        for (byte b : utf8) {
            symbols.add(byteFallbackIds[b & 0xFF]);
        }
        return true;
    }

    /**
     * Applies merges lowest rank first, leftmost first among equal ranks, until none applies: the same
     * order as the Rust crate's priority queue, so ties and overlaps ("aaa") resolve identically.
     * Symbols form a linked list; queue entries pack (rank, position) so the natural order is right, and
     * an entry is stale when its left symbol was absorbed or the pair at its position changed.
     */
    private int[] mergeByRank(int[] symbols) {
        int n = symbols.length;
        int[] next = new int[n];
        int[] prev = new int[n];
        boolean[] absorbed = new boolean[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        PriorityQueue<Long> queue = new PriorityQueue<>();
        for (int i = 0; i + 1 < n; i++) {
            offerPair(queue, symbols, i, i + 1);
        }
        while (!queue.isEmpty()) {
            long top = queue.poll();
            int rank = (int) (top >>> 32);
            int pos = (int) top;
            int right = next[pos];
            if (absorbed[pos] || right < 0) {
                continue;
            }
            long merge = merges.get(pairKey(symbols[pos], symbols[right]));
            if (merge < 0 || (int) (merge >>> 32) != rank) {
                continue; // stale: ranks are unique per pair, so a different rank means a different pair
            }
            symbols[pos] = (int) merge;
            absorbed[right] = true;
            next[pos] = next[right];
            if (next[pos] >= 0) {
                prev[next[pos]] = pos;
                offerPair(queue, symbols, pos, next[pos]);
            }
            if (prev[pos] >= 0) {
                offerPair(queue, symbols, prev[pos], pos);
            }
        }
        IntList out = new IntList(n);
        for (int i = 0; i >= 0; i = next[i]) {
            out.add(symbols[i]);
        }
        return out.toArray();
    }

    private void offerPair(PriorityQueue<Long> queue, int[] symbols, int left, int right) {
        long merge = merges.get(pairKey(symbols[left], symbols[right]));
        if (merge >= 0) {
            queue.add((merge & 0xFFFF_FFFF_0000_0000L) | left);
        }
    }

    private static long pairKey(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFF_FFFFL);
    }

    /** Number of words in the encode cache (bounded by {@value #CACHE_CAPACITY}); for tests. */
    int cachedWords() {
        return cache.size();
    }

    /**
     * Open-addressing map from a packed (left id, right id) pair to a packed (rank, merged id): the
     * llama3 file has 280k merges, and boxed {@code Long}s would triple their load time and memory.
     * Values are never negative, so -1 marks an empty slot.
     */
    private static final class MergeTable {
        private final long[] keys;
        private final long[] values;
        private final int mask;

        MergeTable(int expected) {
            int capacity = Integer.highestOneBit(Math.max(4, expected) * 2 - 1) << 1;
            keys = new long[capacity];
            values = new long[capacity];
            Arrays.fill(values, -1);
            mask = capacity - 1;
        }

        void put(long key, long value) {
            int slot = slot(key);
            while (values[slot] >= 0 && keys[slot] != key) {
                slot = (slot + 1) & mask;
            }
            keys[slot] = key;
            values[slot] = value;
        }

        /** The value for {@code key}, or -1. */
        long get(long key) {
            for (int slot = slot(key); values[slot] >= 0; slot = (slot + 1) & mask) {
                if (keys[slot] == key) {
                    return values[slot];
                }
            }
            return -1;
        }

        private int slot(long key) {
            return (int) ((key * 0x9E37_79B9_7F4A_7C15L) >>> 32) & mask;
        }
    }
}
