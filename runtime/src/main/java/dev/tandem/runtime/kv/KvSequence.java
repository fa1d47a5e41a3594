package dev.tandem.runtime.kv;

import java.util.Arrays;

/**
 * One sequence's view of a {@link KvCache}: its length and its block table (logical block →
 * physical block). Positions {@code [0, length)} hold keys and values; {@link #append} extends it,
 * {@link #truncate} rolls it back in O(blocks dropped).
 */
public final class KvSequence implements AutoCloseable {
    private final KvCache cache;
    private int[] blocks = new int[4];
    private int blockCount;
    private int length;
    private boolean closed;

    KvSequence(KvCache cache) {
        this.cache = cache;
    }

    public KvCache cache() {
        return cache;
    }

    /** Number of cached positions. */
    public int length() {
        return length;
    }

    /** The block table; entries {@code [0, blockCount())} are valid. Shared, do not modify. */
    public int[] blockTable() {
        return blocks;
    }

    public int blockCount() {
        return blockCount;
    }

    /** Physical slot of logical position {@code pos}. */
    public int slot(int pos) {
        return (blocks[pos >> cache.blockShift()] << cache.blockShift()) | (pos & (cache.blockSize() - 1));
    }

    /**
     * Extends the sequence by {@code count} positions and returns their physical slots, allocating
     * blocks as needed. On a full cache nothing changes and the exception says so.
     */
    public int[] append(int count) {
        if (closed) {
            throw new IllegalStateException("KV sequence is closed");
        }
        int newLength = length + count;
        int needBlocks = (newLength + cache.blockSize() - 1) >> cache.blockShift();
        int before = blockCount;
        try {
            while (blockCount < needBlocks) {
                if (blockCount == blocks.length) {
                    blocks = Arrays.copyOf(blocks, blocks.length * 2);
                }
                blocks[blockCount] = cache.allocateBlock();
                blockCount++;
            }
        } catch (RuntimeException e) {
            while (blockCount > before) {
                cache.releaseBlock(blocks[--blockCount]);
            }
            throw e;
        }
        int[] slots = new int[count];
        for (int i = 0; i < count; i++) {
            slots[i] = slot(length + i);
        }
        length = newLength;
        return slots;
    }

    /** Keeps the first {@code newLength} positions and returns blocks no longer needed to the pool. */
    public void truncate(int newLength) {
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate a sequence of length " + length + " to " + newLength);
        }
        int keepBlocks = (newLength + cache.blockSize() - 1) >> cache.blockShift();
        while (blockCount > keepBlocks) {
            cache.releaseBlock(blocks[--blockCount]);
        }
        length = newLength;
    }

    @Override
    public void close() {
        if (!closed) {
            truncate(0);
            closed = true;
        }
    }
}
