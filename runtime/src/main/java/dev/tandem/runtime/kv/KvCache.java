package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;

import java.util.Arrays;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A pool of fixed-size KV blocks shared by many sequences ({@link KvSequence}).
 *
 * <h2>Allocator and storage</h2>
 * This class is the block allocator: block tables, reference counts, the prefix index — nothing here
 * touches K or V. The memory is a {@link KvStorage} owned by the backend that computes on it (host
 * memory for the CPU backend, device memory for a GPU backend): per layer, K and V for
 * {@code numBlocks × blockSize} slots of {@code kvHeads × headDim} elements of {@link #dtype()}. Block
 * {@code b} holds slots {@code [b << blockShift(), (b + 1) << blockShift())}; a sequence addresses its
 * slots through its block table. When a block must be copied (copy-on-write, compaction) the cache asks
 * the storage to copy slots ({@link KvStorage#copySlots}).
 *
 * <h2>Sharing</h2>
 * Blocks are reference-counted. {@link KvSequence#fork()} shares every block of a sequence; a sequence
 * never writes into a block another sequence also holds: it first copies the block ("copy-on-write",
 * see {@link KvSequence#append(int)} and {@link KvSequence#compact(int, int[])}).
 *
 * <h2>Prefix index</h2>
 * Full blocks whose whole token prefix is known can be published ({@link KvSequence#publish(int[])})
 * and attached by later sequences with the same prefix ({@link KvSequence#attachPrefix(int[])}).
 * Entries are keyed by a chained hash {@code h_i = hash(h_{i-1}, tokens of block i)}, but a lookup
 * compares the block's tokens and its parent entry exactly, so a hash collision can never attach the
 * wrong KV. The index holds no reference of its own: an entry lives exactly as long as its block is
 * held by some sequence and unchanged — it is dropped when the block returns to the pool and when its
 * sole owner is about to write into it (after a truncate into it, or a compaction).
 * Published KV must have been computed causally from position 0 by the model that owns this cache
 * (one cache serves one model and one KV dtype, so those need no key of their own).
 *
 * <h2>Reservations</h2>
 * {@link #reserve} promises blocks to one user: the sequences of a {@link KvReservation} can take
 * them whatever other users of the cache do. Each block taken from the pool by a sequence of an open
 * reservation is charged to that reservation until the block returns to the pool; the cache keeps
 * {@code free blocks ≥ Σ over open reservations (limit − charged)} ({@link #reservedBlocks()}), and a
 * sequence outside any reservation takes a block only where that stays true. See {@link KvReservation}.
 *
 * <h2>Threads</h2>
 * The block pool, the reference counts, the reservations and the prefix index are guarded by this
 * cache's monitor: sequences and reservations may be created, forked, published, attached and closed
 * from any thread. One sequence is used by one thread at a time. Writing keys and values into slots is
 * the business of whoever holds the sequence (the forward pass).
 */
public final class KvCache implements AutoCloseable {
    /** Chained hash of one block of tokens given the hash of its parent (the blocks before it). */
    @FunctionalInterface
    interface PrefixHasher {
        long hash(long parent, int[] tokens, int from, int to);
    }

    /** Hash of the empty prefix, the parent of a sequence's first block. */
    static final long ROOT_HASH = 0x6a09e667f3bcc908L;

    static final PrefixHasher DEFAULT_HASHER = (parent, tokens, from, to) -> {
        long h = parent ^ 0x9e3779b97f4a7c15L * (to - from + 1);
        for (int i = from; i < to; i++) {
            h = (h ^ (tokens[i] & 0xffffffffL)) * 0xbf58476d1ce4e5b9L;
            h ^= h >>> 29;
        }
        h *= 0x94d049bb133111ebL;
        return h ^ (h >>> 32);
    };

    /** One published block: its tokens, the entry of the block before it (null for the first). */
    static final class PrefixEntry {
        final long hash;
        final PrefixEntry parent;
        final int[] tokens;
        final int block;
        PrefixEntry next; // next entry of the same hash bucket

        PrefixEntry(long hash, PrefixEntry parent, int[] tokens, int block) {
            this.hash = hash;
            this.parent = parent;
            this.tokens = tokens;
            this.block = block;
        }
    }

    private final KvStorage storage;
    private final int layers;
    private final int kvHeads;
    private final int headDim;
    private final int blockSize;
    private final int blockShift;
    private final int numBlocks;
    private final DType dtype;
    private final int[] refCounts;
    private final int[] freeStack;
    private int freeTop;
    private final PrefixEntry[] entryOfBlock;
    /** Per block in use, the reservation it is charged to (null: none, or one closed since). */
    private final KvReservation[] chargedTo;
    /** Σ over open reservations of (limit − charged); never more than freeTop. */
    private int reserved;
    private final Map<Long, PrefixEntry> index = new HashMap<>();
    private final List<Reclaimer> reclaimers = new ArrayList<>();
    private int published;
    private PrefixHasher hasher = DEFAULT_HASHER;
    private boolean closed;

    /** An f32 cache in host memory of {@code numBlocks} blocks of {@code blockSize} (a power of two) tokens. */
    public KvCache(int layers, int kvHeads, int headDim, int blockSize, int numBlocks) {
        this(layers, kvHeads, headDim, blockSize, numBlocks, DType.F32);
    }

    /**
     * A cache in host memory ({@link HostKvStorage}) of {@code numBlocks} blocks of {@code blockSize} (a
     * power of two) tokens storing K and V as {@code dtype}, {@link DType#F32} or {@link DType#BF16}.
     */
    public KvCache(int layers, int kvHeads, int headDim, int blockSize, int numBlocks, DType dtype) {
        this(new HostKvStorage(layers, kvHeads, headDim, blockSize, numBlocks, dtype));
    }

    /**
     * A cache that hands out the blocks of {@code storage} (allocated by the backend that computes on
     * it) and closes it when closed.
     */
    public KvCache(KvStorage storage) {
        this.storage = storage;
        this.layers = storage.layers();
        this.kvHeads = storage.kvHeads();
        this.headDim = storage.headDim();
        this.blockSize = storage.blockSize();
        this.blockShift = Integer.numberOfTrailingZeros(blockSize);
        this.numBlocks = storage.numBlocks();
        this.dtype = storage.dtype();
        KvStorage.checkShape(layers, kvHeads, headDim, blockSize, numBlocks, dtype);
        this.refCounts = new int[numBlocks];
        this.freeStack = new int[numBlocks];
        this.entryOfBlock = new PrefixEntry[numBlocks];
        this.chargedTo = new KvReservation[numBlocks];
        // Hand out low block numbers first: makes block tables easy to read in tests and dumps.
        for (int i = 0; i < numBlocks; i++) {
            freeStack[i] = numBlocks - 1 - i;
        }
        this.freeTop = numBlocks;
    }

    private static void checkShape(int layers, int kvHeads, int headDim, int blockSize, DType dtype) {
        KvStorage.checkShape(layers, kvHeads, headDim, blockSize, 1, dtype);
    }

    /** An f32 cache with room for {@code tokens} positions in total, rounded up to whole blocks. */
    public static KvCache forTokens(int layers, int kvHeads, int headDim, int blockSize, int tokens) {
        return forTokens(layers, kvHeads, headDim, blockSize, tokens, DType.F32);
    }

    /** A cache with room for {@code tokens} positions in total, rounded up to whole blocks. */
    public static KvCache forTokens(int layers, int kvHeads, int headDim, int blockSize, int tokens, DType dtype) {
        checkShape(layers, kvHeads, headDim, blockSize, dtype);
        return new KvCache(layers, kvHeads, headDim, blockSize,
                (int) Math.max(1, ((long) tokens + blockSize - 1) / blockSize), dtype);
    }

    /** Bytes of one block for these dimensions: 2 × layers × kvHeads × headDim × dtype size × blockSize. */
    public static long bytesPerBlock(int layers, int kvHeads, int headDim, int blockSize, DType dtype) {
        return 2L * layers * kvHeads * headDim * dtype.byteSize() * blockSize;
    }

    /**
     * A cache of as many blocks as fit in {@code bytes} of K and V storage.
     *
     * @throws TandemException when {@code bytes} is less than one block
     */
    public static KvCache forBudget(int layers, int kvHeads, int headDim, int blockSize, long bytes, DType dtype) {
        checkShape(layers, kvHeads, headDim, blockSize, dtype);
        long perBlock = bytesPerBlock(layers, kvHeads, headDim, blockSize, dtype);
        if (bytes < perBlock) {
            throw new TandemException("KV memory budget of " + bytes + " bytes is less than one block of "
                    + perBlock + " bytes (" + blockSize + " tokens × " + layers + " layers × " + kvHeads
                    + " KV heads × " + headDim + " dims × 2 (K and V) in " + dtype.lowerName() + ").");
        }
        long blocks = Math.min(bytes / perBlock, Integer.MAX_VALUE >> Integer.numberOfTrailingZeros(blockSize));
        return new KvCache(layers, kvHeads, headDim, blockSize, (int) blocks, dtype);
    }

    /** Bytes one block occupies: 2 (K and V) × layers × kvHeads × headDim × dtype size × block size. */
    public long bytesPerBlock() {
        return bytesPerBlock(layers, kvHeads, headDim, blockSize, dtype);
    }

    /** Blocks that {@code tokens} positions occupy: ⌈tokens / blockSize⌉. */
    public int blocksNeeded(int tokens) {
        if (tokens < 0) {
            throw new IllegalArgumentException("negative token count " + tokens);
        }
        return (int) (((long) tokens + blockSize - 1) >> blockShift);
    }

    /**
     * A new, empty sequence outside any reservation: it takes blocks only from those free and not
     * reserved ({@link #freeBlocks()} − {@link #reservedBlocks()}).
     */
    public KvSequence newSequence() {
        return newSequence(null);
    }

    synchronized KvSequence newSequence(KvReservation reservation) {
        checkOpen();
        return new KvSequence(this, reservation);
    }

    // ---------------------------------------------------------------- reservations (under the monitor)

    /**
     * Reserves {@code blocks} blocks, all or nothing: while the reservation is open, the blocks its
     * sequences take (up to {@code blocks} at once) are guaranteed, whatever other users of this cache
     * do. Close it when done (see {@link KvReservation}).
     *
     * @throws TandemException when fewer than {@code blocks} blocks are free and not already reserved
     */
    public KvReservation reserve(int blocks) {
        KvReservation r = tryReserve(blocks);
        if (r == null) {
            return refuse(blocks);
        }
        return r;
    }

    private synchronized KvReservation refuse(int blocks) {
        KvReservation r = tryReserveNow(blocks);
        if (r == null) {
            throw new TandemException("cannot reserve " + blocks + " KV block" + (blocks == 1 ? "" : "s") + ": only "
                    + (freeTop - reserved) + " of the cache's " + numBlocks + " blocks of " + blockSize + " tokens ("
                    + bytesPerBlock() + " bytes each) are free and not already reserved (" + freeTop + " free, "
                    + reserved + " of them reserved).");
        }
        return r;
    }

    /**
     * Like {@link #reserve} but returns null instead of throwing when the blocks are not available (for
     * an admission loop that waits for them).
     */
    public KvReservation tryReserve(int blocks) {
        KvReservation r = tryReserveNow(blocks);
        if (r != null) {
            return r;
        }
        // Ask whoever keeps blocks only as a cache to let go of some, outside this cache's monitor (a reclaimer takes
        // its own lock first and then this one, as it does when it hands out its blocks), then try once more.
        List<Reclaimer> asked;
        synchronized (this) {
            if (closed || reclaimers.isEmpty()) {
                return null;
            }
            asked = List.copyOf(reclaimers);
        }
        for (Reclaimer reclaimer : asked) {
            reclaimer.reclaim(blocks);
        }
        return tryReserveNow(blocks);
    }

    private synchronized KvReservation tryReserveNow(int blocks) {
        checkOpen();
        if (blocks < 0) {
            throw new IllegalArgumentException("cannot reserve " + blocks + " blocks");
        }
        if (blocks > freeTop - reserved) {
            return null;
        }
        reserved += blocks;
        return new KvReservation(this, blocks);
    }

    /**
     * Something that keeps blocks of this cache only to save work later (a cache of passages' KV), and can give them
     * back: {@link #reclaim} is asked when a reservation cannot be had, so that such a cache never keeps a request
     * waiting for blocks it does not need.
     */
    @FunctionalInterface
    public interface Reclaimer {
        /**
         * Lets go of kept blocks until {@code blocks} blocks are free and not reserved, or nothing is left to let go of.
         * Called without this cache's monitor held.
         */
        void reclaim(int blocks);
    }

    /** Registers {@code reclaimer} (see {@link Reclaimer}); remove it with {@link #removeReclaimer} when it closes. */
    public synchronized void addReclaimer(Reclaimer reclaimer) {
        reclaimers.add(java.util.Objects.requireNonNull(reclaimer, "reclaimer"));
    }

    public synchronized void removeReclaimer(Reclaimer reclaimer) {
        reclaimers.remove(reclaimer);
    }

    /** Blocks free and not promised to a reservation: what a reservation or an unreserved sequence can take now. */
    public synchronized int availableBlocks() {
        return freeTop - reserved;
    }

    synchronized void closeReservation(KvReservation r) {
        if (!r.closed) {
            r.closed = true;
            reserved -= r.limit() - r.charged;
            r.charged = 0; // what it still holds stays in use, charged to no one (see releaseBlock)
        }
    }

    /**
     * Blocks promised to open reservations and not taken yet: Σ (limit − charged). At most
     * {@link #freeBlocks()}; a sequence outside any reservation can take only the difference.
     */
    public synchronized int reservedBlocks() {
        return reserved;
    }

    // ---------------------------------------------------------------- block pool (under the monitor)

    private TandemException full(int needed) {
        return new TandemException("KV cache is full: " + needed + " more block" + (needed == 1 ? "" : "s")
                + " needed but " + freeTop + " of " + numBlocks + " blocks of " + blockSize + " tokens ("
                + bytesPerBlock() + " bytes each, " + bytesPerBlock() * numBlocks + " bytes in all) are free"
                + (reserved == 0 ? "." : " and " + reserved + " of those are reserved."));
    }

    /** Takes one free block (reference count 1), charged to {@code r} unless null. */
    private int takeFree(KvReservation r) {
        int block = freeStack[--freeTop];
        refCounts[block] = 1;
        if (r != null) {
            chargedTo[block] = r;
            r.charged++;
            reserved--;
        }
        return block;
    }

    /**
     * All or nothing: makes each block of {@code write} writable by a caller that holds one reference
     * to it, and takes {@code fresh} new blocks. Returns {@code write.length + fresh} blocks: for each
     * block of {@code write}, itself when the caller is its sole holder (it is unpublished, since its
     * content is about to change) or else a new block the caller must fill (copy) and then use instead,
     * releasing the old one; then the {@code fresh} new blocks. The blocks taken from the pool are charged
     * to {@code reservation} while it is open; without one (or once it is closed) only blocks free and
     * not reserved can be taken. When they cannot all be had, nothing changes.
     */
    synchronized int[] acquire(KvReservation reservation, int[] write, int fresh) {
        checkOpen();
        KvReservation r = reservation != null && !reservation.closed ? reservation : null;
        int needed = fresh;
        for (int b : write) {
            if (refCounts[b] <= 0) {
                throw new IllegalStateException("KV block " + b + " is not held");
            }
            if (refCounts[b] > 1) {
                needed++;
            }
        }
        if (r != null) {
            if (needed > r.limit() - r.charged) {
                throw r.exhausted(needed);
            }
            // free ≥ reserved ≥ limit − charged ≥ needed: the promise is kept.
        } else if (needed > freeTop - reserved) {
            throw full(needed);
        }
        int[] out = new int[write.length + fresh];
        for (int i = 0; i < write.length; i++) {
            int b = write[i];
            if (refCounts[b] == 1) {
                unpublish(b);
                out[i] = b;
            } else {
                out[i] = takeFree(r);
            }
        }
        for (int i = 0; i < fresh; i++) {
            out[write.length + i] = takeFree(r);
        }
        return out;
    }

    /** Adds one reference to each of {@code blocks[0, count)}. */
    synchronized void retain(int[] blocks, int count) {
        checkOpen();
        for (int i = 0; i < count; i++) {
            if (refCounts[blocks[i]] <= 0) {
                throw new IllegalStateException("KV block " + blocks[i] + " is not held");
            }
            refCounts[blocks[i]]++;
        }
    }

    synchronized void releaseBlock(int block) {
        if (closed) {
            return;
        }
        if (refCounts[block] <= 0) {
            throw new IllegalStateException("KV block " + block + " released more often than taken");
        }
        if (--refCounts[block] == 0) {
            unpublish(block);
            KvReservation r = chargedTo[block];
            if (r != null) {
                chargedTo[block] = null;
                if (!r.closed) {
                    r.charged--;
                    reserved++;
                }
            }
            freeStack[freeTop++] = block;
        }
    }

    /** Releases {@code blocks[from, to)}, last first. */
    synchronized void releaseBlocks(int[] blocks, int from, int to) {
        for (int i = to - 1; i >= from; i--) {
            releaseBlock(blocks[i]);
        }
    }

    /** Drops the index entry of {@code block} when the caller, its sole holder, may write into it. */
    synchronized void unpublishIfSole(int block) {
        if (!closed && refCounts[block] == 1) {
            unpublish(block);
        }
    }

    synchronized int refCount(int block) {
        return refCounts[block];
    }

    // ---------------------------------------------------------------- prefix index (under the monitor)

    private long hashOf(PrefixEntry parent, int[] tokens, int from, int to) {
        return hasher.hash(parent == null ? ROOT_HASH : parent.hash, tokens, from, to);
    }

    private PrefixEntry lookup(PrefixEntry parent, long hash, int[] tokens, int from, int to) {
        for (PrefixEntry e = index.get(hash); e != null; e = e.next) {
            if (e.parent == parent && e.hash == hash && Arrays.equals(e.tokens, 0, e.tokens.length, tokens, from, to)) {
                return e;
            }
        }
        return null;
    }

    private PrefixEntry register(PrefixEntry parent, long hash, int[] tokens, int from, int to, int block) {
        PrefixEntry e = new PrefixEntry(hash, parent, Arrays.copyOfRange(tokens, from, to), block);
        e.next = index.get(hash);
        index.put(hash, e);
        entryOfBlock[block] = e;
        published++;
        return e;
    }

    private void unpublish(int block) {
        PrefixEntry e = entryOfBlock[block];
        if (e == null) {
            return;
        }
        entryOfBlock[block] = null;
        published--;
        PrefixEntry head = index.get(e.hash);
        if (head == e) {
            if (e.next == null) {
                index.remove(e.hash);
            } else {
                index.put(e.hash, e.next);
            }
        } else {
            for (PrefixEntry p = head; p != null; p = p.next) {
                if (p.next == e) {
                    p.next = e.next;
                    break;
                }
            }
        }
        e.next = null;
    }

    /**
     * Registers the full blocks {@code table[0, tokens.length / blockSize)} as holding the KV of
     * {@code tokens}. A block whose prefix is already indexed under another block is left out (the
     * chain continues through the indexed one).
     */
    synchronized void publish(int[] table, int[] tokens) {
        checkOpen();
        int full = tokens.length >> blockShift;
        PrefixEntry parent = null;
        for (int i = 0; i < full; i++) {
            int from = i << blockShift, to = from + blockSize;
            int block = table[i];
            long hash = hashOf(parent, tokens, from, to);
            PrefixEntry found = lookup(parent, hash, tokens, from, to);
            PrefixEntry mine = entryOfBlock[block];
            if (mine != null && mine != found
                    && !Arrays.equals(mine.tokens, 0, blockSize, tokens, from, to)) {
                throw new IllegalArgumentException("block " + i + " of this sequence was published for other tokens");
            }
            if (found != null) {
                parent = found;
            } else {
                // Not indexed yet, or indexed under a parent entry that has since gone: (re)register.
                unpublish(block);
                parent = register(parent, hash, tokens, from, to, block);
            }
        }
    }

    /**
     * Walks the full blocks of {@code tokens} through the index, taking a reference to each
     * consecutive indexed block and writing it to {@code table}; returns how many were taken.
     */
    synchronized int attach(int[] tokens, int[] table) {
        checkOpen();
        int full = tokens.length >> blockShift;
        PrefixEntry parent = null;
        int n = 0;
        for (int i = 0; i < full; i++) {
            int from = i << blockShift, to = from + blockSize;
            PrefixEntry e = lookup(parent, hashOf(parent, tokens, from, to), tokens, from, to);
            if (e == null) {
                break;
            }
            refCounts[e.block]++;
            table[n++] = e.block;
            parent = e;
        }
        return n;
    }

    /** Number of blocks in the prefix index. */
    public synchronized int publishedBlocks() {
        return published;
    }

    /** Replaces the prefix hash (tests force collisions with it); only while nothing is published. */
    synchronized void prefixHasherForTesting(PrefixHasher hasher) {
        if (published != 0) {
            throw new IllegalStateException("the prefix index is not empty");
        }
        this.hasher = hasher;
    }

    // ---------------------------------------------------------------- copying rows

    /** Copies block {@code from} onto block {@code to}: every slot, K and V, every layer. */
    public void copyBlock(int from, int to) {
        checkBlock(from);
        checkBlock(to);
        copyRows(from, to, blockSize);
    }

    /** Copies the first {@code rows} slots of block {@code from} onto block {@code to} (K and V, every layer). */
    void copyRows(int from, int to, int rows) {
        checkOpen();
        if (rows == 0 || from == to) {
            return;
        }
        int[] src = new int[rows], dst = new int[rows];
        for (int i = 0; i < rows; i++) {
            src[i] = (from << blockShift) + i;
            dst[i] = (to << blockShift) + i;
        }
        storage.copySlots(src, dst);
    }

    /** For every i, slot {@code to[i]} takes what slot {@code from[i]} held before the call (K and V, every layer). */
    void copySlots(int[] from, int[] to) {
        checkOpen();
        storage.copySlots(from, to);
    }

    private void checkBlock(int block) {
        if (block < 0 || block >= numBlocks) {
            throw new IndexOutOfBoundsException("KV block " + block + " outside [0, " + numBlocks + ")");
        }
    }

    // ---------------------------------------------------------------- shape and accounting

    public int layers() {
        return layers;
    }

    public int kvHeads() {
        return kvHeads;
    }

    public int headDim() {
        return headDim;
    }

    /** Values per slot: kvHeads × headDim. */
    public int slotWidth() {
        return kvHeads * headDim;
    }

    public int blockSize() {
        return blockSize;
    }

    public int blockShift() {
        return blockShift;
    }

    public int numBlocks() {
        return numBlocks;
    }

    public synchronized int freeBlocks() {
        return freeTop;
    }

    public synchronized int usedBlocks() {
        return numBlocks - freeTop;
    }

    /** Bytes of the blocks in use. */
    public long usedBytes() {
        return usedBlocks() * bytesPerBlock();
    }

    /** Bytes of all blocks, used or free. */
    public long totalBytes() {
        return numBlocks * bytesPerBlock();
    }

    /** Element type of K and V: {@link DType#F32} or {@link DType#BF16}. */
    public DType dtype() {
        return dtype;
    }

    /** The memory of this cache, owned by the backend that allocated it. */
    public KvStorage storage() {
        checkOpen();
        return storage;
    }

    /** Whether {@link #close()} was called (the storage is then freed). */
    public synchronized boolean isClosed() {
        return closed;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("KV cache is closed");
        }
    }

    /** Frees the storage; sequences still open become unusable (closing them is harmless). */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            index.clear();
            Arrays.fill(chargedTo, null);
            storage.close();
        }
    }
}
