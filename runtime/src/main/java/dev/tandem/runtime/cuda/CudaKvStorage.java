package dev.tandem.runtime.cuda;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.kv.KvStorage;

/**
 * KV storage in a CUDA device's memory, as {@link CudaBackend}'s kernels read it: per layer one K and one V
 * buffer of {@code numBlocks × blockSize} slots of {@code kvHeads × headDim} elements (f32 or bf16), slot
 * {@code s} at element {@code s × kvHeads × headDim}, zero-filled at allocation.
 */
final class CudaKvStorage implements KvStorage {
    private final CudaBackend backend;
    private final int layers;
    private final int kvHeads;
    private final int headDim;
    private final int blockSize;
    private final int numBlocks;
    private final DType dtype;
    private final long slotBytes;
    /** keys of layer l at [2l], values at [2l + 1]. */
    private final long[] buffers;
    private boolean closed;

    CudaKvStorage(CudaBackend backend, int layers, int kvHeads, int headDim, int blockSize, int numBlocks, DType dtype) {
        this.backend = backend;
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.blockSize = blockSize;
        this.numBlocks = numBlocks;
        this.dtype = dtype;
        this.slotBytes = (long) kvHeads * headDim * dtype.byteSize();
        if (slotBytes % 4 != 0) {
            throw new IllegalArgumentException("the CUDA KV cache needs slots of a multiple of 4 bytes, got " + kvHeads + " heads of "
                    + headDim + " " + dtype.lowerName());
        }
        long layerBytes = Math.multiplyExact(slotBytes, (long) blockSize * numBlocks);
        this.buffers = new long[2 * layers];
        try {
            for (int i = 0; i < buffers.length; i++) {
                buffers[i] = backend.allocateKvMemory(layerBytes);
            }
        } catch (RuntimeException | Error e) {
            backend.freeKvMemory(this, buffers);
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
        return Placement.DEVICE;
    }

    long slotBytes() {
        return slotBytes;
    }

    /** Device address of the keys of {@code layer}. */
    synchronized long keys(int layer) {
        checkOpen();
        return buffers[2 * layer];
    }

    /** Device address of the values of {@code layer}. */
    synchronized long values(int layer) {
        checkOpen();
        return buffers[2 * layer + 1];
    }

    void checkLayer(int layer) {
        if (layer < 0 || layer >= layers) {
            throw new IndexOutOfBoundsException("layer " + layer + " of a KV cache of " + layers);
        }
    }

    void checkSlot(int slot) {
        if (slot < 0 || slot >= numBlocks * blockSize) {
            throw new IllegalArgumentException("KV slot " + slot + " is outside [0, " + numBlocks * blockSize + ")");
        }
    }

    @Override
    public void copySlots(int[] from, int[] to) {
        synchronized (this) {
            checkOpen();
        }
        KvStorage.checkCopy(from, to, numBlocks * blockSize);
        if (from.length > 0) {
            backend.copySlots(this, from, to);
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("KV cache is closed");
        }
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        backend.freeKvMemory(this, buffers);
    }
}
