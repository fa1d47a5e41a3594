package dev.tandem.runtime.kv;

import dev.tandem.runtime.TandemException;

/**
 * Blocks of a {@link KvCache} promised to one user (say, an admitted request), taken with
 * {@link KvCache#reserve} or {@link KvCache#tryReserve}: while it is open, no one else can take them.
 *
 * <h2>Charging</h2>
 * A reservation hands out sequences ({@link #newSequence()}; forks of its sequences stay in it). Each
 * block a sequence of an open reservation takes from the pool — a fresh block, or the copy a
 * copy-on-write makes — is charged to that reservation, and the charge ends when the block returns to
 * the pool. At most {@link #limit()} blocks are charged at once; an operation that would take one more
 * fails, all or nothing, with a {@link TandemException} naming the limit (the reservation was sized too
 * small). A reservation pays for what its sequences took, not for what they hold: attaching published
 * prefix blocks ({@link KvSequence#attachPrefix}) charges nothing, and a block one of its sequences took
 * stays charged to it while any sequence, of any reservation, still holds it.
 *
 * <h2>The promise</h2>
 * The cache keeps, under its monitor, {@code free blocks ≥ Σ over open reservations (limit − charged)}
 * ({@link KvCache#reservedBlocks()}). A sequence outside any reservation may take a block only where
 * that still holds after it, so a sequence of an open reservation never finds the cache full while its
 * reservation has blocks left, whatever other users of the cache do.
 *
 * <h2>Closing</h2>
 * {@link #close()} gives the unused rest back at once; blocks its sequences still hold (or shared into
 * other sequences) stay in use, charged to no one, until they return to the pool. Closing twice is
 * harmless. Sequences of a closed reservation keep working, then taking blocks as any sequence outside a
 * reservation does (the cache may then be full for them): closing a reservation before the sequences it
 * handed out is the natural order of nested try-with-resources and of a request that is being torn
 * down, and should not turn into a failure of those sequences.
 *
 * <p>Thread-safe: the state is guarded by the cache's monitor.
 */
public final class KvReservation implements AutoCloseable {
    private final KvCache cache;
    private final int limit;
    // Guarded by the cache's monitor.
    int charged;
    boolean closed;

    KvReservation(KvCache cache, int limit) {
        this.cache = cache;
        this.limit = limit;
    }

    public KvCache cache() {
        return cache;
    }

    /** The most blocks charged to this reservation at once: the number reserved. */
    public int limit() {
        return limit;
    }

    /** Blocks its sequences took from the pool that have not returned to it; 0 once closed. */
    public int charged() {
        synchronized (cache) {
            return charged;
        }
    }

    /** Blocks its sequences may still take: {@code limit − charged} while open, 0 once closed. */
    public int remaining() {
        synchronized (cache) {
            return closed ? 0 : limit - charged;
        }
    }

    public boolean isClosed() {
        synchronized (cache) {
            return closed;
        }
    }

    /**
     * A new, empty sequence of this reservation: the blocks it and its forks take are charged here.
     *
     * @throws IllegalStateException if this reservation or the cache is closed
     */
    public KvSequence newSequence() {
        synchronized (cache) {
            if (closed) {
                throw new IllegalStateException("KV reservation is closed");
            }
            return cache.newSequence(this);
        }
    }

    /** The sentence of a sizing bug: {@code needed} more blocks than this reservation has left. */
    TandemException exhausted(int needed) {
        return new TandemException("KV reservation of " + limit + " block" + (limit == 1 ? "" : "s") + " exhausted: "
                + needed + " more block" + (needed == 1 ? "" : "s") + " needed but only " + (limit - charged)
                + " left (the other " + charged + (charged == 1 ? " was taken by its sequences and is" : " were taken by its sequences and are")
                + " not back in the pool).");
    }

    /**
     * Gives back the blocks not taken yet; blocks still held stay in use, charged to no one, until they
     * return to the pool. Closing twice is harmless; so is closing after the cache.
     */
    @Override
    public void close() {
        cache.closeReservation(this);
    }

    @Override
    public String toString() {
        synchronized (cache) {
            return "KvReservation[limit=" + limit + ", charged=" + charged + (closed ? ", closed]" : "]");
        }
    }
}
