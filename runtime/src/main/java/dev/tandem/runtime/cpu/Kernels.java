package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;

import java.lang.foreign.MemorySegment;

/**
 * The inner loops of the CPU backend. Every dot product follows one canonical order, whatever the
 * implementation or the tile it is computed in: lanes of width {@link #lanes()}, two accumulators
 * over alternating vector chunks (fused multiply-add), a possible last single chunk into the first,
 * the two added, lanes reduced by a fixed halving tree, then the scalar tail by fused multiply-add in
 * index order. So a result depends only on its operands — not on the batch, the tile or the thread —
 * and the scalar implementation reproduces the vector one bit for bit.
 * Offsets are in bytes. Weights ({@code w}) are f32 or bf16; f16 is widened by the caller first.
 */
interface Kernels {

    int lanes();

    float dot(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k);

    /** One activation row against four weight rows {@code wOff + c·wStride}, c = 0..3. */
    void dot1x4(MemorySegment x, long xOff, MemorySegment w, long wOff, long wStride, DType wt, int k, float[] out);

    /** Four activation rows {@code xOff + r·xStride}, r = 0..3, against one weight row. */
    void dot4x1(MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, DType wt, int k, float[] out);

    /** {@code acc[i] = fma(a, v[i], acc[i])} for i in [0, d), v f32. */
    void axpy(float a, MemorySegment v, long vOff, float[] acc, int d);

    /**
     * {@code acc[i] = fma(a, v[i], acc[i])} for i in [0, d), v of type {@code vt} (F32 or BF16; bf16
     * values are widened exactly). Every implementation gives the same bits: each element is one fma.
     */
    void axpy(float a, MemorySegment v, long vOff, DType vt, float[] acc, int d);

    /**
     * Reads {@code bytes} (a multiple of 64) from {@code seg} at {@code off} as floats and returns
     * their sum in no particular order: a streaming read for measuring memory bandwidth, not arithmetic.
     */
    float streamSum(MemorySegment seg, long off, long bytes);

    static Kernels select() {
        boolean vectorApi = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
        boolean wanted = Boolean.parseBoolean(System.getProperty("tandem.cpu.vector", "true"));
        if (vectorApi && wanted) {
            return VectorKernels.create();
        }
        // Same lane count as the vector path would use, so forcing the scalar path changes no bit.
        return new ScalarKernels(vectorApi ? VectorKernels.preferredLanes() : ScalarKernels.DEFAULT_LANES);
    }
}
