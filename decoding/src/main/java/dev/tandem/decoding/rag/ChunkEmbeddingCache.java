package dev.tandem.decoding.rag;

import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * REFRAG's chunk vectors, encoded once: the encoder vector of a chunk's text (its decoder token ids decoded by the
 * decoder's tokenizer), kept by content — the chunk's token ids, compared exactly, with the encoder and the tokenizer
 * that made its text (each by identity: another {@link Embedder}, even of the same weights, may pool or normalise
 * otherwise). A chunk shared by many passages or requests goes through the encoder once while it stays cached.
 *
 * <p>Bounded: at most {@code maxChunks} vectors, the least recently used evicted beyond that. Thread-safe: a caller
 * encodes the chunks it finds missing in one {@link Embedder#embedAll} call, outside the lock; a chunk that another
 * caller is encoding at that moment is waited for, not encoded twice.
 */
public final class ChunkEmbeddingCache {
    private record Key(Embedder encoder, Tokenizer tokenizer, int[] ids, int hash) {
        static Key of(Embedder encoder, Tokenizer tokenizer, int[] ids) {
            int h = 31 * (31 * System.identityHashCode(encoder) + System.identityHashCode(tokenizer)) + Arrays.hashCode(ids);
            return new Key(encoder, tokenizer, ids.clone(), h);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && hash == k.hash && encoder == k.encoder && tokenizer == k.tokenizer && Arrays.equals(ids, k.ids);
        }

        @Override
        public int hashCode() {
            return hash;
        }
    }

    private final int maxChunks;
    private final LinkedHashMap<Key, CompletableFuture<float[]>> entries;
    private long hits;
    private long misses;

    /** A cache of at most {@code maxChunks} (≥ 0) vectors. */
    public ChunkEmbeddingCache(int maxChunks) {
        if (maxChunks < 0) {
            throw new IllegalArgumentException("a chunk-embedding cache holds at least 0 vectors, not " + maxChunks);
        }
        this.maxChunks = maxChunks;
        this.entries = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Key, CompletableFuture<float[]>> eldest) {
                return size() > ChunkEmbeddingCache.this.maxChunks;
            }
        };
    }

    /**
     * The vector of each chunk's text ({@code tokenizer.decode(chunk)}) as {@code encoder} embeds it, in order, from
     * the cache where there and encoded in one call where not (a chunk given twice is encoded once).
     *
     * @throws TandemException if a chunk has an id the tokenizer cannot decode, or the encoder refuses a text
     */
    public List<float[]> vectors(Embedder encoder, Tokenizer tokenizer, List<int[]> chunks) {
        List<CompletableFuture<float[]>> out = new ArrayList<>(chunks.size());
        List<Key> claimed = new ArrayList<>();
        List<CompletableFuture<float[]>> claims = new ArrayList<>();
        synchronized (this) {
            for (int[] chunk : chunks) {
                Key key = Key.of(encoder, tokenizer, chunk);
                CompletableFuture<float[]> f = entries.get(key);
                if (f == null) {
                    int earlier = claimed.indexOf(key);
                    if (earlier >= 0) { // evicted again already, within this call (a tiny cache)
                        f = claims.get(earlier);
                    } else {
                        f = new CompletableFuture<>();
                        entries.put(key, f);
                        claimed.add(key);
                        claims.add(f);
                        misses++;
                    }
                } else {
                    hits++;
                }
                out.add(f);
            }
        }
        if (!claimed.isEmpty()) {
            encode(encoder, tokenizer, claimed, claims);
        }
        List<float[]> vectors = new ArrayList<>(out.size());
        for (CompletableFuture<float[]> f : out) {
            try {
                vectors.add(f.join().clone());
            } catch (CompletionException e) {
                if (e.getCause() instanceof RuntimeException r) {
                    throw r;
                }
                throw e;
            }
        }
        return vectors;
    }

    private void encode(Embedder encoder, Tokenizer tokenizer, List<Key> keys, List<CompletableFuture<float[]>> claims) {
        try {
            List<String> texts = new ArrayList<>(keys.size());
            for (Key k : keys) {
                try {
                    texts.add(tokenizer.decode(k.ids()));
                } catch (IllegalArgumentException e) {
                    throw new TandemException("a passage chunk has a token id the decoder's tokenizer cannot decode ("
                            + e.getMessage() + "), so the encoder cannot read it.", e);
                }
            }
            List<float[]> v = encoder.embedAll(texts);
            for (int i = 0; i < claims.size(); i++) {
                claims.get(i).complete(v.get(i));
            }
        } catch (RuntimeException | Error e) {
            synchronized (this) {
                for (int i = 0; i < keys.size(); i++) {
                    entries.remove(keys.get(i), claims.get(i)); // nobody keeps a failure
                }
            }
            for (CompletableFuture<float[]> f : claims) {
                f.completeExceptionally(e);
            }
            throw e;
        }
    }

    /** Vectors held (a chunk being encoded counts). */
    public synchronized int size() {
        return entries.size();
    }

    public int maxChunks() {
        return maxChunks;
    }

    /** Chunks found cached (or being encoded by another caller). */
    public synchronized long hits() {
        return hits;
    }

    /** Chunks encoded. */
    public synchronized long misses() {
        return misses;
    }

    /** Drops every vector. */
    public synchronized void clear() {
        entries.clear();
    }
}
