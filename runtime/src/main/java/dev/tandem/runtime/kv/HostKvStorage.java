package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.HostMemory;
import dev.tandem.runtime.Placement;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * KV storage in host memory, as the CPU backend reads it: per layer one K and one V segment of
 * {@code numBlocks × blockSize} slots, little-endian; slot {@code s} starts at element
 * {@code s × kvHeads × headDim} of {@link #keys(int)} and {@link #values(int)}.
 */
public final class HostKvStorage implements KvStorage {
    private final int layers;
    private final int kvHeads;
    private final int headDim;
    private final int blockSize;
    private final int numBlocks;
    private final DType dtype;
    private final long slotBytes;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment[] keys;
    private final MemorySegment[] values;
    private boolean closed;

    public HostKvStorage(int layers, int kvHeads, int headDim, int blockSize, int numBlocks, DType dtype) {
        KvStorage.checkShape(layers, kvHeads, headDim, blockSize, numBlocks, dtype);
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.blockSize = blockSize;
        this.numBlocks = numBlocks;
        this.dtype = dtype;
        this.slotBytes = (long) kvHeads * headDim * dtype.byteSize();
        long layerBytes = slotBytes * blockSize * numBlocks;
        this.keys = new MemorySegment[layers];
        this.values = new MemorySegment[layers];
        HostMemory.checkFits(2 * layers * layerBytes, "the KV cache", "--kv-memory, or withKvMemory in the Java API");
        try {
            // Committed as blocks are first written (HostMemory.lazy()), so a large budget costs nothing up front.
            for (int l = 0; l < layers; l++) {
                keys[l] = HostMemory.allocateLazily(layerBytes, arena, "the KV cache");
                values[l] = HostMemory.allocateLazily(layerBytes, arena, "the KV cache");
            }
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    @Override
    public int layers() {
        return layers;
    }

    @Override
    public int kvHeads() {
        return kvHeads;
    }

    @Override
    public int headDim() {
        return headDim;
    }

    @Override
    public int blockSize() {
        return blockSize;
    }

    @Override
    public int numBlocks() {
        return numBlocks;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public Placement placement() {
        return Placement.HOST;
    }

    /** Keys of {@code layer}: {@code numBlocks × blockSize} slots of {@code kvHeads × headDim} elements. */
    public MemorySegment keys(int layer) {
        checkOpen();
        return keys[layer];
    }

    /** Values of {@code layer}, laid out as {@link #keys(int)}. */
    public MemorySegment values(int layer) {
        checkOpen();
        return values[layer];
    }

    @Override
    public synchronized void copySlots(int[] from, int[] to) {
        checkOpen();
        KvStorage.checkCopy(from, to, numBlocks * blockSize);
        if (from.length == 0) {
            return;
        }
        // Gather every source, then scatter: a slot may be read and written in the same call.
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment buffer = tmp.allocate(slotBytes * from.length, 64);
            for (int l = 0; l < layers; l++) {
                for (MemorySegment seg : new MemorySegment[] {keys[l], values[l]}) {
                    for (int i = 0; i < from.length; i++) {
                        MemorySegment.copy(seg, slotBytes * from[i], buffer, slotBytes * i, slotBytes);
                    }
                    for (int i = 0; i < to.length; i++) {
                        MemorySegment.copy(buffer, slotBytes * i, seg, slotBytes * to[i], slotBytes);
                    }
                }
            }
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("KV cache is closed");
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }
}
