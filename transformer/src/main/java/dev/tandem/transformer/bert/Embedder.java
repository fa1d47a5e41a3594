package dev.tandem.transformer.bert;

import dev.tandem.runtime.TandemException;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * Sentence embeddings from a {@link BertEncoder}, for many callers at once. Thread-safe. In the batching mode
 * ({@link #batching}), calls that arrive while a pass runs wait for it and then go together into the next one (up to
 * {@code maxBatch} texts a pass): the caller that finds no pass running runs one with every text queued so far (its
 * own included) and hands the others their vectors, so a lone caller never waits for company. In the latency mode
 * ({@link #latency}) each call is its own pass. The encoder is batch-invariant, so a text's vector is the same bit
 * for bit in either mode, alone or among others.
 */
public final class Embedder implements AutoCloseable {
    private final BertEncoder encoder;
    private final BertEncoder.Pooling pooling;
    private final boolean normalize;
    private final boolean truncate;
    private final int maxBatch;
    private final Object lock = new Object();
    private final List<Pending> queue = new ArrayList<>();
    private boolean running;

    private record Pending(int[] ids, CompletableFuture<float[]> result) {}

    private Embedder(BertEncoder encoder, BertEncoder.Pooling pooling, boolean normalize, boolean truncate, int maxBatch) {
        this.encoder = Objects.requireNonNull(encoder, "encoder");
        this.pooling = Objects.requireNonNull(pooling, "pooling");
        this.normalize = normalize;
        this.truncate = truncate;
        if (maxBatch < 1) {
            throw new IllegalArgumentException("an embedder batch holds at least 1 text, not " + maxBatch);
        }
        this.maxBatch = maxBatch;
    }

    /**
     * Concurrent calls share passes of up to {@code maxBatch} texts; mean pooling and unit vectors (sentence-transformers'
     * recipe) unless told otherwise; inputs over the encoder's positions are refused unless {@code truncate}.
     */
    public static Embedder batching(BertEncoder encoder, int maxBatch, BertEncoder.Pooling pooling, boolean normalize, boolean truncate) {
        return new Embedder(encoder, pooling, normalize, truncate, maxBatch);
    }

    /** Mean-pooled unit vectors, concurrent calls batched 32 texts a pass, long inputs refused. */
    public static Embedder batching(BertEncoder encoder) {
        return batching(encoder, 32, BertEncoder.Pooling.MEAN, true, false);
    }

    /** Each call its own pass, at once (no batching with other callers). */
    public static Embedder latency(BertEncoder encoder, BertEncoder.Pooling pooling, boolean normalize, boolean truncate) {
        return new Embedder(encoder, pooling, normalize, truncate, 1);
    }

    public BertEncoder encoder() {
        return encoder;
    }

    /** How its vectors are pooled. */
    public BertEncoder.Pooling pooling() {
        return pooling;
    }

    /** The width of the vectors. */
    public int dimension() {
        return encoder.dimension();
    }

    /** {@code text}'s vector. @throws TandemException if the text is too long (without truncation) */
    public float[] embed(String text) {
        return embedAll(List.of(text)).getFirst();
    }

    /** One vector per text, in order; the texts may share passes with other callers'. */
    public List<float[]> embedAll(List<String> texts) {
        return embedAllCounted(texts).vectors();
    }

    /**
     * Vectors and what they cost.
     *
     * @param vectors     one per text, in order
     * @param inputTokens the encoder's input ids over all texts (special tokens included, after truncation)
     */
    public record Embeddings(List<float[]> vectors, int inputTokens) {
    }

    /** {@link #embedAll} with the input tokens counted (what an API reports as usage). */
    public Embeddings embedAllCounted(List<String> texts) {
        List<int[]> ids = new ArrayList<>(texts.size());
        int tokens = 0;
        for (String t : texts) {
            int[] i = encoder.tokenize(Objects.requireNonNull(t, "text"), truncate);
            ids.add(i);
            tokens += i.length;
        }
        return new Embeddings(embedIds(ids), tokens);
    }

    private List<float[]> embedIds(List<int[]> ids) {
        if (maxBatch == 1 || ids.size() >= maxBatch) {
            // Latency mode, or a caller with a batch of its own: straight to the encoder (which serialises passes).
            List<float[]> out = new ArrayList<>();
            for (int from = 0; from < ids.size(); from += maxBatch) {
                float[][] v = encoder.embedIds(ids.subList(from, Math.min(ids.size(), from + maxBatch)), pooling, normalize);
                out.addAll(List.of(v));
            }
            return out;
        }
        List<CompletableFuture<float[]>> mine = new ArrayList<>(ids.size());
        synchronized (lock) {
            for (int[] i : ids) {
                CompletableFuture<float[]> f = new CompletableFuture<>();
                queue.add(new Pending(i, f));
                mine.add(f);
            }
        }
        drain(mine);
        List<float[]> out = new ArrayList<>(mine.size());
        for (CompletableFuture<float[]> f : mine) {
            try {
                out.add(f.get());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new TandemException("interrupted while embedding.", e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException r) {
                    throw r;
                }
                throw new TandemException("embedding failed: " + e.getCause(), e.getCause());
            }
        }
        return out;
    }

    /** Runs passes over the queue until this caller's texts are done, or leaves that to the caller running one. */
    private void drain(List<CompletableFuture<float[]>> mine) {
        while (true) {
            List<Pending> batch;
            synchronized (lock) {
                if (mine.stream().allMatch(CompletableFuture::isDone)) {
                    return;
                }
                if (running) {
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new TandemException("interrupted while embedding.", e);
                    }
                    continue;
                }
                running = true;
                int n = Math.min(maxBatch, queue.size());
                batch = new ArrayList<>(queue.subList(0, n));
                queue.subList(0, n).clear();
            }
            try {
                List<int[]> ids = new ArrayList<>(batch.size());
                for (Pending p : batch) {
                    ids.add(p.ids());
                }
                float[][] v = encoder.embedIds(ids, pooling, normalize);
                for (int i = 0; i < batch.size(); i++) {
                    batch.get(i).result().complete(v[i]);
                }
            } catch (RuntimeException | Error e) {
                for (Pending p : batch) {
                    p.result().completeExceptionally(e);
                }
            } finally {
                synchronized (lock) {
                    running = false;
                    lock.notifyAll();
                }
            }
        }
    }

    /** Closes the encoder. */
    @Override
    public void close() {
        encoder.close();
    }
}
