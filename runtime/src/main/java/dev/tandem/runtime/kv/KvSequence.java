package dev.tandem.runtime.kv;

import java.util.Arrays;

/**
 * One sequence's view of a {@link KvCache}: its length and its block table (logical block →
 * physical block). Positions {@code [0, length)} hold keys and values.
 *
 * <ul>
 *   <li>{@link #append} extends it and hands out the physical slots to write the new rows into;</li>
 *   <li>{@link #truncate} rolls it back in O(blocks dropped);</li>
 *   <li>{@link #fork} makes a second sequence sharing every block, copy-on-write;</li>
 *   <li>{@link #compact} keeps a prefix and chosen rows after it (an accepted path of a token tree);</li>
 *   <li>{@link #publish} and {@link #attachPrefix} share full blocks of a common token prefix
 *       across sequences;</li>
 *   <li>{@link #attach} shares every block of another sequence after this one's (a cached passage), and
 *       {@link #padToBlock} skips to the next block boundary;</li>
 *   <li>{@link #close} returns every block reference.</li>
 * </ul>
 *
 * A sequence never writes into a block another sequence holds: before it hands out a slot in a shared
 * block it copies the block to a fresh one ({@link KvCache#copyBlock}). The block table may therefore
 * change on {@link #append} and {@link #compact}; read it again afterwards. A sequence is used by one
 * thread at a time; different sequences of one cache may be used from different threads.
 */
public final class KvSequence implements AutoCloseable {
    private static final int[] NO_BLOCKS = new int[0];

    private final KvCache cache;
    private final KvReservation reservation;
    private int[] blocks;
    private int blockCount;
    private int length;
    private boolean closed;

    KvSequence(KvCache cache, KvReservation reservation) {
        this.cache = cache;
        this.reservation = reservation;
        this.blocks = new int[4];
    }

    private KvSequence(KvCache cache, KvReservation reservation, int[] blocks, int blockCount, int length) {
        this.cache = cache;
        this.reservation = reservation;
        this.blocks = blocks;
        this.blockCount = blockCount;
        this.length = length;
    }

    public KvCache cache() {
        return cache;
    }

    /** The reservation the blocks this sequence takes are charged to; null when it was made outside one. */
    public KvReservation reservation() {
        return reservation;
    }

    /** Number of cached positions. */
    public int length() {
        return length;
    }

    /**
     * The block table; entries {@code [0, blockCount())} are valid. Shared, do not modify; it may be
     * replaced or changed by {@link #append} and {@link #compact}.
     */
    public int[] blockTable() {
        return blocks;
    }

    public int blockCount() {
        return blockCount;
    }

    public boolean isClosed() {
        return closed;
    }

    /** Physical slot of logical position {@code pos}. */
    public int slot(int pos) {
        return (blocks[pos >> cache.blockShift()] << cache.blockShift()) | (pos & (cache.blockSize() - 1));
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("KV sequence is closed");
        }
    }

    private void ensureCapacity(int n) {
        if (n > blocks.length) {
            blocks = Arrays.copyOf(blocks, Math.max(n, blocks.length * 2));
        }
    }

    /**
     * Extends the sequence by {@code count} positions and returns their physical slots, allocating
     * blocks as needed. When the last block is partly filled and shared with another sequence, it is
     * first copied to a block of this sequence's own (copy-on-write), so writing the new rows never
     * changes what another sequence sees. The blocks taken are charged to this sequence's
     * {@link #reservation()}. On a full cache (or an exhausted reservation) nothing changes and a
     * {@link dev.tandem.runtime.TandemException} says so.
     */
    public int[] append(int count) {
        checkOpen();
        if (count < 0) {
            throw new IllegalArgumentException("cannot append " + count + " positions");
        }
        if (count == 0) {
            return NO_BLOCKS;
        }
        if ((long) length + count > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("sequence length overflows");
        }
        int newLength = length + count;
        int needBlocks = cache.blocksNeeded(newLength);
        int mask = cache.blockSize() - 1;
        int used = length & mask; // rows already in the last block, 0 when it is full or absent
        int fresh = needBlocks - blockCount;
        int[] got;
        if (used != 0) {
            int last = blocks[blockCount - 1];
            got = cache.acquire(reservation, new int[] {last}, fresh);
            if (got[0] != last) {
                cache.copyRows(last, got[0], used);
                blocks[blockCount - 1] = got[0];
                cache.releaseBlock(last);
            }
        } else {
            got = cache.acquire(reservation, NO_BLOCKS, fresh);
        }
        ensureCapacity(needBlocks);
        System.arraycopy(got, got.length - fresh, blocks, blockCount, fresh);
        blockCount = needBlocks;
        int[] slots = new int[count];
        for (int i = 0; i < count; i++) {
            slots[i] = slot(length + i);
        }
        length = newLength;
        return slots;
    }

    /**
     * Keeps the first {@code newLength} positions and returns blocks no longer needed to the pool, in
     * O(blocks dropped). A shared block is only let go of (a later append copies it); a block this
     * sequence alone holds and cuts into leaves the prefix index, since its tail will be rewritten.
     */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate a sequence of length " + length + " to " + newLength);
        }
        if (newLength == length) {
            return;
        }
        int keepBlocks = cache.blocksNeeded(newLength);
        cache.releaseBlocks(blocks, keepBlocks, blockCount);
        blockCount = keepBlocks;
        if ((newLength & (cache.blockSize() - 1)) != 0) {
            cache.unpublishIfSole(blocks[keepBlocks - 1]);
        }
        length = newLength;
    }

    /**
     * A new sequence sharing every block of this one (each gains a reference), of the same length and in
     * the same reservation (sharing takes no block, so charges nothing). Either may then append, truncate
     * or compact without the other seeing it.
     */
    public KvSequence fork() {
        checkOpen();
        int[] table = Arrays.copyOf(blocks, Math.max(4, blockCount));
        cache.retain(table, blockCount);
        return new KvSequence(cache, reservation, table, blockCount, length);
    }

    /**
     * Keeps positions {@code [0, base)} and then the rows at positions {@code keep}, in that order: the
     * sequence becomes {@code base + keep.length} long and position {@code base + i} holds what position
     * {@code keep[i]} held. {@code keep} must be strictly increasing, each in {@code [base, length)}.
     * This keeps an accepted path of a token tree (the tree's rows after {@code base}) and drops the rest.
     * Rows are moved in place (K and V, every layer); a shared block that receives rows is first copied
     * (copy-on-write, charged to this sequence's reservation); blocks past the new length go back to the
     * pool. On a full cache or an exhausted reservation (copy-on-write needs blocks) nothing changes and a
     * {@link dev.tandem.runtime.TandemException} says so.
     */
    public void compact(int base, int[] keep) {
        checkOpen();
        if (base < 0 || base > length) {
            throw new IllegalArgumentException("compact base " + base + " outside [0, " + length + "]");
        }
        for (int i = 0; i < keep.length; i++) {
            if (keep[i] < base || keep[i] >= length || (i > 0 && keep[i] <= keep[i - 1])) {
                throw new IllegalArgumentException("compact rows must be strictly increasing positions in ["
                        + base + ", " + length + "), got " + Arrays.toString(keep));
            }
        }
        int newLength = base + keep.length;
        int first = 0; // first row that actually moves
        while (first < keep.length && keep[first] == base + first) {
            first++;
        }
        if (first == keep.length) {
            truncate(newLength);
            return;
        }
        int shift = cache.blockShift();
        int mask = cache.blockSize() - 1;
        int firstDest = base + first;
        int fromBlock = firstDest >> shift;
        int toBlock = (newLength - 1) >> shift;
        int[] old = Arrays.copyOfRange(blocks, fromBlock, toBlock + 1);
        int[] got = cache.acquire(reservation, old, 0);
        // Copy-on-write: the first written block keeps its rows before firstDest; later written blocks
        // are overwritten up to the new length, so need nothing copied.
        for (int b = fromBlock; b <= toBlock; b++) {
            int o = old[b - fromBlock], n = got[b - fromBlock];
            if (o != n && b == fromBlock) {
                cache.copyRows(o, n, firstDest & mask);
            }
        }
        // Sources come from the old table: a copied block's original stays intact until released below,
        // and in a block written in place every source lies at or after its destination, so a forward
        // pass reads each source before anything overwrites it.
        int[] oldTable = Arrays.copyOf(blocks, blockCount);
        System.arraycopy(got, 0, blocks, fromBlock, got.length);
        int[] srcSlots = new int[keep.length - first], dstSlots = new int[keep.length - first];
        for (int i = first; i < keep.length; i++) {
            int src = keep[i];
            srcSlots[i - first] = (oldTable[src >> shift] << shift) | (src & mask);
            dstSlots[i - first] = slot(base + i);
        }
        cache.copySlots(srcSlots, dstSlots);
        for (int b = fromBlock; b <= toBlock; b++) {
            if (old[b - fromBlock] != got[b - fromBlock]) {
                cache.releaseBlock(old[b - fromBlock]);
            }
        }
        int keepBlocks = cache.blocksNeeded(newLength);
        cache.releaseBlocks(blocks, keepBlocks, blockCount);
        blockCount = keepBlocks;
        length = newLength;
    }

    /**
     * Says that positions {@code [0, tokens.length)} of this sequence hold the KV of {@code tokens},
     * computed causally from position 0 by this cache's model, and registers every full block among them
     * in the cache's prefix index so that later sequences starting with the same tokens can
     * {@link #attachPrefix attach} them instead of computing them. A block whose prefix is already
     * indexed (under another block) is left as it is. Publishing again is harmless.
     */
    public void publish(int[] tokens) {
        checkOpen();
        if (tokens.length > length) {
            throw new IllegalArgumentException("cannot publish " + tokens.length + " tokens of a sequence of length " + length);
        }
        cache.publish(blocks, tokens);
    }

    /**
     * On an empty sequence: attaches the longest run of indexed full blocks that starts {@code tokens}
     * (sharing them, no copy, so nothing is charged to a reservation) and returns the number of positions attached, a multiple of the block size
     * (0 when none); the caller computes the rest. To keep at least one position to compute (for its
     * logits), pass the tokens without the last.
     */
    public int attachPrefix(int[] tokens) {
        checkOpen();
        if (length != 0) {
            throw new IllegalStateException("attachPrefix needs an empty sequence, this one holds " + length + " positions");
        }
        ensureCapacity(tokens.length >> cache.blockShift());
        int n = cache.attach(tokens, blocks);
        blockCount = n;
        length = n << cache.blockShift();
        return length;
    }

    /**
     * Skips to the next block boundary: the positions from the current length to the end of the last block
     * become padding, never written. Nothing is taken from the pool (the last block is already held). Whoever
     * reads this sequence's KV must leave padding out of its attention mask (see {@link #attach}).
     *
     * @return the new length, a multiple of the block size
     */
    public int padToBlock() {
        checkOpen();
        length = blockCount << cache.blockShift();
        return length;
    }

    /**
     * Shares every block of {@code segment} (another open sequence of the same cache) after this sequence's
     * blocks: first {@link #padToBlock pads} to a block boundary, then appends references to the segment's
     * blocks, so that position {@code start + i} of this sequence holds what position {@code i} of the segment
     * holds, for i in {@code [0, segment.length())}; returns {@code start}. Nothing is copied or charged to a
     * reservation. The attached blocks are shared like a fork's: appending after them copies a partly filled
     * last block first ({@link #append}), and neither sequence ever sees the other's later writes. The
     * positions between the old length and {@code start}, and those of the segment that its owner did not mean
     * to be read, are for the caller's attention mask to leave out: this is how a passage computed once is
     * attached read-only to many sequences (block-sparse attention over cached passages).
     */
    public int attach(KvSequence segment) {
        checkOpen();
        if (segment == this) {
            throw new IllegalArgumentException("a sequence cannot attach itself");
        }
        if (segment.cache != cache) {
            throw new IllegalArgumentException("the segment belongs to another KV cache");
        }
        segment.checkOpen();
        int start = blockCount << cache.blockShift();
        if ((long) start + segment.length > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("sequence length overflows");
        }
        int n = segment.blockCount;
        ensureCapacity(blockCount + n);
        cache.retain(segment.blocks, n);
        System.arraycopy(segment.blocks, 0, blocks, blockCount, n);
        blockCount += n;
        length = start + segment.length;
        return start;
    }

    /** Returns every block reference; closing twice is harmless. */
    @Override
    public void close() {
        if (!closed) {
            truncate(0);
            closed = true;
        }
    }
}
