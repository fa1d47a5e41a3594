package dev.tandem.decoding.rag;

import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * The KV of retrieved passages, computed once and attached read-only to any number of sequences
 * ({@link KvSequence#attach}). An entry is keyed by its content: the prefix the passage was computed after
 * (the system prefix, such as the BOS token, which every passage sees) and the passage's token ids, compared
 * exactly. Its sequence holds the prefix's rows and then the passage's, computed causally from position 0 by
 * {@link #model()}, so the passage sits at positions {@code prefix.length ..} whatever it is attached to.
 *
 * <h2>Memory</h2>
 * The cache keeps entries, most recently used last, while they hold at most {@code maxBlocks} KV blocks in all,
 * and evicts the least recently used beyond that. An entry's blocks are reference-counted by the model's
 * {@link dev.tandem.runtime.kv.KvCache}: evicting an entry drops the cache's reference only, so a block returns to
 * the pool exactly when no sequence holds it any more (neither the cache nor a sequence it was attached to).
 * {@link #clear()} evicts everything. The cache is the KV cache's {@link dev.tandem.runtime.kv.KvCache.Reclaimer}: when a
 * reservation cannot be had (an {@link dev.tandem.decoding.Engine} admitting a request), it evicts its least recently
 * used entries until the blocks are free or it holds none, so kept passages never keep a request waiting.
 *
 * <h2>Threads</h2>
 * Thread-safe: entries are handed out as forks ({@link KvSequence#fork}) under this cache's monitor, so an
 * eviction never takes blocks from under a caller.
 */
public final class PassageCache implements AutoCloseable {
    private record Key(int[] prefix, int[] tokens, int hash) {
        static Key of(int[] prefix, int[] tokens) {
            return new Key(prefix.clone(), tokens.clone(), 31 * Arrays.hashCode(prefix) + Arrays.hashCode(tokens));
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && hash == k.hash && Arrays.equals(prefix, k.prefix) && Arrays.equals(tokens, k.tokens);
        }

        @Override
        public int hashCode() {
            return hash;
        }
    }

    private final LanguageModel model;
    private final int maxBlocks;
    private final LinkedHashMap<Key, KvSequence> entries = new LinkedHashMap<>(16, 0.75f, true);
    private int blocks;
    private long hits;
    private long misses;
    private long evictions;
    private boolean closed;
    private final KvCache.Reclaimer reclaimer = this::reclaim;

    /** A cache of passages of {@code model} holding at most {@code maxBlocks} (≥ 0) KV blocks. */
    public PassageCache(LanguageModel model, int maxBlocks) {
        this.model = Objects.requireNonNull(model, "model");
        if (maxBlocks < 0) {
            throw new IllegalArgumentException("a passage cache holds at least 0 blocks, not " + maxBlocks);
        }
        this.maxBlocks = maxBlocks;
        model.kvCache().addReclaimer(reclaimer);
    }

    /** A cache that may hold a quarter of the model's KV blocks. */
    public static PassageCache forModel(LanguageModel model) {
        return new PassageCache(model, model.kvCache().numBlocks() / 4);
    }

    public LanguageModel model() {
        return model;
    }

    /**
     * A sequence sharing the cached KV of {@code tokens} after {@code prefix} (the caller owns it and closes it),
     * or null when it is not cached. Counts a hit or a miss.
     */
    public synchronized KvSequence acquire(int[] prefix, int[] tokens) {
        checkOpen();
        KvSequence cached = entries.get(Key.of(prefix, tokens));
        if (cached == null) {
            misses++;
            return null;
        }
        hits++;
        return cached.fork();
    }

    /**
     * Offers {@code computed}, a sequence holding exactly the rows of {@code prefix} then {@code tokens}, computed
     * causally from position 0 by this cache's model, for later {@link #acquire}s. The cache keeps a fork of it (the
     * caller keeps {@code computed}), unless an entry of the same content is cached already or the passage alone is
     * larger than the cache; then evicts the least recently used entries beyond the cache's size.
     */
    public synchronized void offer(int[] prefix, int[] tokens, KvSequence computed) {
        checkOpen();
        if (computed.cache() != model.kvCache()) {
            throw new IllegalArgumentException("the passage was computed in another model's KV cache");
        }
        if (computed.length() != prefix.length + tokens.length) {
            throw new IllegalArgumentException("the passage's sequence holds " + computed.length() + " positions, not its "
                    + prefix.length + " prefix and " + tokens.length + " passage tokens");
        }
        Key key = Key.of(prefix, tokens);
        if (entries.containsKey(key) || computed.blockCount() > maxBlocks) {
            return;
        }
        entries.put(key, computed.fork());
        blocks += computed.blockCount();
        Iterator<Map.Entry<Key, KvSequence>> it = entries.entrySet().iterator();
        while (blocks > maxBlocks && it.hasNext()) {
            evict(it);
        }
    }

    /** Evicts the least recently used entries until {@code wanted} blocks are available in the KV cache or none is left. */
    private synchronized void reclaim(int wanted) {
        if (closed) {
            return;
        }
        Iterator<Map.Entry<Key, KvSequence>> it = entries.entrySet().iterator();
        while (model.kvCache().availableBlocks() < wanted && it.hasNext()) {
            evict(it);
        }
    }

    private void evict(Iterator<Map.Entry<Key, KvSequence>> it) {
        KvSequence eldest = it.next().getValue();
        blocks -= eldest.blockCount();
        eldest.close();
        it.remove();
        evictions++;
    }

    /** Entries evicted, for their size or to free blocks for a reservation. */
    public synchronized long evictions() {
        return evictions;
    }

    /** Evicts every entry (their blocks return to the pool once no sequence holds them). */
    public synchronized void clear() {
        for (KvSequence s : entries.values()) {
            s.close();
        }
        entries.clear();
        blocks = 0;
    }

    /** Number of cached passages. */
    public synchronized int size() {
        return entries.size();
    }

    /** KV blocks the cached passages hold (some may also be held by sequences they are attached to). */
    public synchronized int blocks() {
        return blocks;
    }

    public int maxBlocks() {
        return maxBlocks;
    }

    /** {@link #acquire}s that found their passage. */
    public synchronized long hits() {
        return hits;
    }

    /** {@link #acquire}s that did not. */
    public synchronized long misses() {
        return misses;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the passage cache is closed");
        }
    }

    /** Evicts everything; the cache cannot be used afterwards. */
    @Override
    public synchronized void close() {
        if (!closed) {
            clear();
            closed = true;
            model.kvCache().removeReclaimer(reclaimer);
        }
    }
}
