package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A pool of fixed-size KV blocks shared by many sequences. Storage per layer is one segment of
 * {@code numBlocks × blockSize} slots, each slot holding {@code kvHeads × headDim} values; a
 * sequence addresses its slots through its block table ({@link KvSequence}). Blocks are
 * reference-counted so later work (fork, prefix sharing) can share them.
 * Block accounting is thread-safe (sequences may be closed from any thread); writing keys and values
 * is the business of the one forward pass running at a time.
 */
public final class KvCache implements AutoCloseable {
    private final int layers;
    private final int kvHeads;
    private final int headDim;
    private final int blockSize;
    private final int blockShift;
    private final int numBlocks;
    private final DType dtype;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment[] keys;
    private final MemorySegment[] values;
    private final int[] refCounts;
    private final int[] freeStack;
    private int freeTop;
    private boolean closed;

    public KvCache(int layers, int kvHeads, int headDim, int blockSize, int numBlocks) {
        if (layers <= 0 || kvHeads <= 0 || headDim <= 0 || numBlocks <= 0) {
            throw new IllegalArgumentException("KV cache dimensions must be positive");
        }
        if (blockSize <= 0 || Integer.bitCount(blockSize) != 1) {
            throw new IllegalArgumentException("KV block size must be a power of two, got " + blockSize);
        }
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.blockSize = blockSize;
        this.blockShift = Integer.numberOfTrailingZeros(blockSize);
        this.numBlocks = numBlocks;
        this.dtype = DType.F32;
        long layerBytes = (long) numBlocks * blockSize * kvHeads * headDim * dtype.byteSize();
        this.keys = new MemorySegment[layers];
        this.values = new MemorySegment[layers];
        for (int l = 0; l < layers; l++) {
            keys[l] = arena.allocate(layerBytes, 64);
            values[l] = arena.allocate(layerBytes, 64);
        }
        this.refCounts = new int[numBlocks];
        this.freeStack = new int[numBlocks];
        // Hand out low block numbers first: makes block tables easy to read in tests and dumps.
        for (int i = 0; i < numBlocks; i++) {
            freeStack[i] = numBlocks - 1 - i;
        }
        this.freeTop = numBlocks;
    }

    /** A cache with room for {@code tokens} positions in total, rounded up to whole blocks. */
    public static KvCache forTokens(int layers, int kvHeads, int headDim, int blockSize, int tokens) {
        return new KvCache(layers, kvHeads, headDim, blockSize, Math.max(1, (tokens + blockSize - 1) / blockSize));
    }

    /** Bytes one block occupies: 2 (K and V) × layers × kvHeads × headDim × dtype size × block size. */
    public long bytesPerBlock() {
        return 2L * layers * kvHeads * headDim * dtype.byteSize() * blockSize;
    }

    public KvSequence newSequence() {
        checkOpen();
        return new KvSequence(this);
    }

    synchronized int allocateBlock() {
        checkOpen();
        if (freeTop == 0) {
            throw new TandemException("KV cache is full: all " + numBlocks + " blocks of " + blockSize
                    + " tokens are in use.");
        }
        int block = freeStack[--freeTop];
        refCounts[block] = 1;
        return block;
    }

    synchronized void releaseBlock(int block) {
        if (closed) {
            return;
        }
        if (refCounts[block] <= 0) {
            throw new IllegalStateException("KV block " + block + " released more often than taken");
        }
        if (--refCounts[block] == 0) {
            freeStack[freeTop++] = block;
        }
    }

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

    public DType dtype() {
        return dtype;
    }

    public MemorySegment keys(int layer) {
        checkOpen();
        return keys[layer];
    }

    public MemorySegment values(int layer) {
        checkOpen();
        return values[layer];
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("KV cache is closed");
        }
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }
}
