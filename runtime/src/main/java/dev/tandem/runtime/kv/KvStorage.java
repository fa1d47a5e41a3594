package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Placement;

/**
 * The memory of a KV cache: per layer, keys and values for {@code numBlocks × blockSize} slots of
 * {@code kvHeads × headDim} elements of {@link #dtype()}. It belongs to the backend that allocated it
 * ({@code Backend.allocateKv}), which alone reads and writes it (the forward pass's {@code writeKv} and
 * {@code attention}, and {@link #copySlots}); {@link KvCache} decides which slots hold what and asks
 * the storage to copy when a shared block is written (copy-on-write) or an accepted path is compacted.
 */
public interface KvStorage extends AutoCloseable {

    int layers();

    int kvHeads();

    int headDim();

    /** Tokens per block, a power of two. */
    int blockSize();

    int numBlocks();

    /** Element type of K and V: {@link DType#F32} or {@link DType#BF16}. */
    DType dtype();

    Placement placement();

    /**
     * For every i, slot {@code to[i]} takes the keys and values (every layer) that slot {@code from[i]}
     * held before the call: all sources are read before any destination is written, so a slot may be
     * both a source and a destination. No slot may be the destination of two copies.
     *
     * @throws IllegalArgumentException if the arrays differ in length or a slot is out of range
     */
    void copySlots(int[] from, int[] to);

    /** Frees the memory; idempotent. */
    @Override
    void close();

    /**
     * Checks the arguments of {@link #copySlots} for a storage of {@code slots} slots.
     *
     * @throws IllegalArgumentException if the arrays differ in length or a slot is outside [0, slots)
     */
    static void checkCopy(int[] from, int[] to, int slots) {
        if (from.length != to.length) {
            throw new IllegalArgumentException("copySlots needs as many destinations as sources, got "
                    + from.length + " and " + to.length);
        }
        for (int i = 0; i < from.length; i++) {
            if (from[i] < 0 || from[i] >= slots || to[i] < 0 || to[i] >= slots) {
                throw new IllegalArgumentException("KV slot copy " + from[i] + " -> " + to[i] + " is outside [0, " + slots + ")");
            }
        }
    }

    /** Checks the shape every storage must have: positive sizes, a power-of-two block size, f32 or bf16. */
    static void checkShape(int layers, int kvHeads, int headDim, int blockSize, int numBlocks, DType dtype) {
        if (layers <= 0 || kvHeads <= 0 || headDim <= 0 || numBlocks <= 0) {
            throw new IllegalArgumentException("KV cache dimensions must be positive");
        }
        if (blockSize <= 0 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("KV block size must be a power of two, got " + blockSize);
        }
        if (dtype != DType.F32 && dtype != DType.BF16) {
            throw new IllegalArgumentException("KV cache dtype must be f32 or bf16, got " + dtype);
        }
        if ((long) numBlocks * blockSize > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("KV cache of " + numBlocks + " blocks of " + blockSize
                    + " tokens has more slots than an int can address");
        }
    }
}
