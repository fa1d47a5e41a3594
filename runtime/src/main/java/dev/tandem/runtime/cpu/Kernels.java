package dev.tandem.runtime.cpu;

import dev.tandem.runtime.DType;

import java.lang.foreign.MemorySegment;

/**
 * The inner loops of the CPU backend. Every dot product follows one canonical order, whatever the
 * implementation or the tile it is computed in: lanes of width {@link #lanes()}, one accumulator
 * over the full vector chunks in index order (fused multiply-add), lanes reduced by a fixed halving
 * tree, then the scalar tail by fused multiply-add in index order. So a result depends only on its
 * operands — not on the batch, the tile or the thread — and the scalar implementation reproduces
 * the vector one bit for bit. (One accumulator per output, not two, so that a tile of 4 × 4
 * outputs fits the vector registers; docs/decisions.md.)
 * Offsets are in bytes. Weights ({@code w}) are f32 or bf16; f16 is widened by the caller first.
 * Weights in a block format are read in place: the K-quants decoded to their dequantized floats in the canonical
 * order; Q8_0 and Q4_0 with the block scale factored out of each block's sum, an order of its own that depends
 * only on the operands too ({@link ScalarKernels#accumulateScaled}).
 */
interface Kernels {

    int lanes();

    float dot(MemorySegment x, long xOff, MemorySegment w, long wOff, DType wt, int k);

    /** Floats of scratch that {@link #dotTile} needs. */
    default int tileScratch() {
        return 24 * lanes();
    }

    /**
     * {@code rows × 4} dot products (rows 1 to 4): activation row r at {@code xOff + r·xStride} against
     * weight row c at {@code wOff + c·wStride}, into {@code out[r·4 + c]}. Each weight vector is read
     * once for all rows of the tile. {@code lanes} is scratch of {@link #tileScratch()} floats.
     */
    void dotTile(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                 DType wt, int k, float[] lanes, float[] out);

    /**
     * The first part of {@code rows × 8} dot products (rows 1 to 3, laid out as {@link #dotTile}'s):
     * adds the full vector chunks of elements [kFrom, kTo) (multiples of {@link #lanes()}) into the
     * lane accumulators kept in {@code lanes[at + (r·8 + c)·lanes() ...]}, which start at zero. Calls
     * over consecutive ranges accumulate in index order, so splitting k this way changes no bit:
     * a pass over many rows can walk k in chunks and run every row block over each chunk of the weight
     * panel while it is in cache. Eight weight streams in flight read faster than four (1 × 8: 27 GB/s on
     * one thread against 22 for 1 × 4); 3 × 8 keeps 24 accumulators, the most that leave registers free.
     */
    void accumulateTile8(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                         DType wt, int kFrom, int kTo, float[] lanes, int at);

    /**
     * The rest of the canonical order for {@link #accumulateTile8}'s accumulators, once every full chunk
     * of k is in: the halving tree, then the scalar tail; into {@code out[r·8 + c]}.
     */
    void finishTile8(int rows, MemorySegment x, long xOff, long xStride, MemorySegment w, long wOff, long wStride,
                     DType wt, int k, float[] lanes, int at, float[] out);

    /** {@code acc[i] = fma(a, v[i], acc[i])} for i in [0, d), v f32. */
    void axpy(float a, MemorySegment v, long vOff, float[] acc, int d);

    /**
     * {@code acc[i] = fma(a, v[i], acc[i])} for i in [0, d), v of type {@code vt} (F32 or BF16; bf16
     * values are widened exactly). Every implementation gives the same bits: each element is one fma.
     */
    void axpy(float a, MemorySegment v, long vOff, DType vt, float[] acc, int d);

    /**
     * One row of layer normalisation, {@code out[i] = fma(c[i]·inv, w[i], b[i])} for i in [0, d), in float: with x₀ the
     * row's first element, μ = Σ(x − x₀) / d, c = (x − x₀) − μ (the deviation from the mean) and
     * inv = 1 / sqrt(Σc² / d + eps). Shifting by x₀ keeps the sums on the scale of the row's spread, so a row far from
     * zero loses nothing to its offset; a second pass over the deviations cannot cancel as Σx² − d·mean² would. Both
     * sums follow the canonical order — lane accumulators over the full chunks (a plain add for Σ(x − x₀), a fused
     * multiply-add for Σc²), the halving tree, the scalar tail — so a row's result depends only on the row, and the
     * scalar implementation gives the vector one's bits. {@code w} and {@code b} are d f32 values from their offset 0.
     * {@code out} may be {@code x} at the same offset.
     */
    void layerNorm(MemorySegment x, long xOff, MemorySegment w, MemorySegment b, float eps, MemorySegment out, long outOff, int d);

    /**
     * {@code out[i] = gelu(x[i])} for i in [0, count): {@link FloatErf#gelu}, the same bits in every lane and in the
     * scalar tail, so an element's result depends on its value alone. {@code out} may be {@code x} at the same offset.
     */
    void gelu(MemorySegment x, long xOff, MemorySegment out, long outOff, int count);

    /**
     * Reads {@code bytes} (a multiple of 64) from {@code seg} at {@code off} as floats and returns
     * their sum in no particular order: a streaming read for measuring memory bandwidth, not arithmetic.
     */
    float streamSum(MemorySegment seg, long off, long bytes);

    /**
     * Runs {@link #FMA_CHAINS} independent chains of {@code steps} fused multiply-adds on vectors of
     * {@link #lanes()} floats, from registers, and returns a value that depends on all of them: the
     * arithmetic peak a compute-bound matmul is judged against (steps · chains · lanes multiply-adds).
     */
    float fmaChains(float seed, long steps);

    /** Independent accumulators in {@link #fmaChains}: enough to cover the FMA latency on two pipes. */
    int FMA_CHAINS = 12;

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
