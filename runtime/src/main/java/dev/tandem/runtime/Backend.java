package dev.tandem.runtime;

import dev.tandem.runtime.kv.KvStorage;

/**
 * The op set a transformer forward pass needs, and the memory it runs on. Activations are f32 tensors
 * of shape [rows, width]; weights may be f32, bf16 or f16. Every implementation keeps <b>batch and
 * thread invariance</b>: the value computed for one row never depends on how many rows share the call
 * or on how the work is split across threads (no reduction is ever split by thread count).
 * {@code CpuBackend} is the reference every other backend is tested against.
 *
 * <h2>Memory</h2>
 * A backend computes on tensors of its own {@link #placement()}: activations it {@link #allocate}s (and
 * {@link #free}s), weights it took at load ({@link #loadWeight}), KV storage it allocated
 * ({@link #allocateKv}). The host sees their contents only through the copy ops: {@link #readRows}
 * (the one door logits and hidden states leave by), {@link #writeRows} and {@link #gatherRows}.
 * A host backend may also take host tensors anywhere (tests do).
 */
public interface Backend extends AutoCloseable {

    String name();

    /** Number of threads (CPU) or streams the backend computes with. */
    int parallelism();

    /** Where the tensors this backend allocates, and computes on, live. */
    Placement placement();

    /**
     * A zero-filled tensor of {@code dtype} and {@code shape} in this backend's memory, held until
     * {@link #free} (or until the backend closes).
     */
    Tensor allocate(DType dtype, long... shape);

    /** A zero-filled f32 activation tensor of the given shape ({@link #allocate(DType, long...)}). */
    default Tensor allocate(long... shape) {
        return allocate(DType.F32, shape);
    }

    /**
     * Bytes of the tensors {@link #allocate} gave that are not yet {@link #free}d (activations and
     * scratch; not weights or KV storage); -1 when the backend does not track them. A long run that frees
     * what it allocates returns to the same figure (the soak test checks it).
     */
    default long allocatedBytes() {
        return -1;
    }

    /**
     * Returns the memory of a tensor {@link #allocate} gave (that very object, not a view of it).
     *
     * @throws IllegalArgumentException if this backend did not allocate it or already freed it
     */
    void free(Tensor tensor);

    /**
     * The tensor this backend computes from for weight {@code host} (a memory-mapped or loaded host
     * tensor): a host backend uses it as it is; a device backend uploads it. The result stays valid as
     * long as {@code host} does and the backend is open.
     */
    Tensor loadWeight(Tensor host);

    /**
     * KV storage in this backend's memory for a cache of {@code numBlocks} blocks of {@code blockSize}
     * (a power of two) tokens: per layer, K and V of {@code kvHeads × headDim} elements of {@code dtype}
     * (f32 or bf16) per token.
     */
    KvStorage allocateKv(int layers, int kvHeads, int headDim, int blockSize, int numBlocks, DType dtype);

    /** {@code dst[i] = src[rows[i]]} for every i (rows of the same width, in this backend's memory). */
    void gatherRows(Tensor src, int[] rows, Tensor dst);

    /** Rows {@code [from, from + count)} of the f32 tensor {@code src}, copied to the host. */
    float[][] readRows(Tensor src, int from, int count);

    /** Copies host {@code rows} (each of {@code dst}'s width) into rows {@code [from, from + rows.length)} of the f32 tensor {@code dst}. */
    void writeRows(float[][] rows, Tensor dst, int from);

    /** {@code out[n, m] = x[n, k] · w[m, k]ᵀ}, with w in any {@link DType}. */
    void matmul(Tensor x, Tensor w, Tensor out);

    /**
     * {@code outs[i] = x · ws[i]ᵀ} for every i (weights of the same width), each equal to {@link
     * #matmul(Tensor, Tensor, Tensor)}'s result; a backend may run them as one dispatch.
     */
    default void matmul(Tensor x, Tensor[] ws, Tensor[] outs) {
        if (ws.length != outs.length) {
            throw new IllegalArgumentException("matmul needs as many outputs as weights, got " + ws.length + " and " + outs.length);
        }
        for (int i = 0; i < ws.length; i++) {
            matmul(x, ws[i], outs[i]);
        }
    }

    /** {@code x[n, m] += bias[m]} for every row. */
    void addBias(Tensor x, Tensor bias);

    /** Row-wise {@code out = w ⊙ x / sqrt(mean(x²) + eps)} over the last dimension of width {@code w.numel()}. */
    void rmsnorm(Tensor x, Tensor weight, float eps, Tensor out);

    /**
     * Row-wise layer normalisation over the last dimension of width {@code weight.numel()}:
     * {@code out = (x − mean) / sqrt(var + eps) ⊙ weight + bias}, with the mean and the (biased) variance of each row
     * (BERT's LayerNorm). {@code out} may alias {@code x}. The default reads the rows to the host and computes each row's
     * sums in double, in index order; a backend's own kernel equals it to float rounding.
     */
    default void layerNorm(Tensor x, Tensor weight, Tensor bias, float eps, Tensor out) {
        int d = (int) weight.numel();
        if (bias.numel() != d || x.dim(-1) != d || out.numel() != x.numel()) {
            throw new IllegalArgumentException("layerNorm: rows of " + x.dim(-1) + " with a weight of " + d + " and a bias of "
                    + bias.numel() + " into " + out);
        }
        int n = (int) (x.numel() / d);
        float[][] rows = readRows(x.reshape(n, d), 0, n);
        float[] w = readRows(weight.reshape(1, d), 0, 1)[0];
        float[] b = readRows(bias.reshape(1, d), 0, 1)[0];
        for (float[] row : rows) {
            double sum = 0;
            for (float v : row) {
                sum += v;
            }
            double mean = sum / d;
            double sq = 0;
            for (float v : row) {
                sq += (v - mean) * (v - mean);
            }
            double inv = 1 / Math.sqrt(sq / d + eps);
            for (int i = 0; i < d; i++) {
                row[i] = (float) ((row[i] - mean) * inv * w[i] + b[i]);
            }
        }
        writeRows(rows, out.reshape(n, d), 0);
    }

    /**
     * {@code out = gelu(x)} element-wise, the exact form x·Φ(x) = x/2·(1 + erf(x/√2)) that BERT uses ({@code "gelu"} in
     * its config), with erf to float precision. {@code out} may alias {@code x}. The default computes on the host.
     */
    default void gelu(Tensor x, Tensor out) {
        if (out.numel() != x.numel()) {
            throw new IllegalArgumentException("gelu: " + x + " into " + out);
        }
        int d = (int) x.dim(-1);
        int n = (int) (x.numel() / d);
        float[][] rows = readRows(x.reshape(n, d), 0, n);
        for (float[] row : rows) {
            for (int i = 0; i < d; i++) {
                row[i] = (float) (0.5 * row[i] * (1 + Erf.erf(row[i] / Math.sqrt(2))));
            }
        }
        writeRows(rows, out.reshape(n, d), 0);
    }

    /**
     * Rotates each head of {@code x[n, heads·headDim]} in place by position {@code positions[row]}:
     * angle of pair i = position · invFreq[i], pairs chosen by {@code layout}.
     */
    void rope(Tensor x, int heads, int headDim, int[] positions, float[] invFreq, RopeLayout layout);

    /** {@code out = silu(gate) ⊙ up}, silu(g) = g / (1 + e^(−g)). */
    void siluMul(Tensor gate, Tensor up, Tensor out);

    /** {@code out = a + b} element-wise (out may alias a). */
    void add(Tensor a, Tensor b, Tensor out);

    /** {@code out[r] = table[ids[r]]} converted to f32. */
    void embed(Tensor table, int[] ids, Tensor out);

    /** Row-wise softmax in place over the last dimension. */
    void softmax(Tensor x);

    /**
     * Index of the largest value of each row (lowest index on ties): the greedy token of a row of logits,
     * without the row leaving this backend's memory. A row that holds a NaN or +Infinity, or nothing but
     * -Infinity, has no such token and gives -1 (callers read that row and report it).
     */
    int[] argmax(Tensor x);

    /**
     * The {@link LogitSummary} of each row of the f32 tensor {@code x} (rows of logits), keeping each row's
     * {@code k} largest finite values ({@code 1 ≤ k ≤} {@link LogitSummary#MAX_K}): the greedy token, top-k ids
     * and log-probabilities, top probability, margin, entropy and log-sum-exp of a row, with only the summary
     * leaving this backend's memory. Ids and values equal {@link LogitSummary#of}'s exactly; the sums may be
     * added in another fixed order (to rounding).
     */
    LogitSummary[] summarize(Tensor x, int k);

    /**
     * Chooses among the rows of the f32 tensor {@code x} (rows of logits) by {@code score} of each row's softmax: the
     * {@code count} highest, or, with {@code threshold} in (0, 1], every row scoring above it and at least the best;
     * ties to the lower row. Equal to {@link RowSelection#of} on this backend's {@link #summarize}{@code (x, 2)}
     * except where two scores are within rounding of each other; only the chosen rows and tokens leave this
     * backend's memory.
     *
     * @throws IllegalArgumentException for a row without a softmax, or bad arguments
     */
    default RowSelection selectRows(Tensor x, RowSelection.Score score, int count, double threshold) {
        RowSelection.requireArguments(count, threshold);
        return RowSelection.of(summarize(x, 2), score, count, threshold);
    }

    /**
     * {@code out[0, :]} = {@code mix} of the first {@link LogitMix#rows()} rows of the f32 tensor {@code x}
     * ([rows, vocab]) into the f32 tensor {@code out} (one row of the same width; it must not overlap {@code x}),
     * equal to {@link LogitMix#apply} bit for bit; the rows stay in this backend's memory. The default reads the
     * rows to the host and writes the result back (what a host backend does anyway).
     */
    default void mixLogits(Tensor x, LogitMix mix, Tensor out) {
        if (x.dtype() != DType.F32 || out.dtype() != DType.F32) {
            throw new IllegalArgumentException("mixLogits needs f32 tensors, got " + x + " and " + out);
        }
        int width = (int) x.dim(-1);
        mix.requireRows(x.numel() / Math.max(1, width));
        if (out.numel() != width) {
            throw new IllegalArgumentException("mixLogits writes one row of " + width + " values, but the output is " + out);
        }
        writeRows(new float[][] {mix.apply(readRows(x, 0, mix.rows()))}, out, 0);
    }

    /**
     * Writes rows of k[n, kvHeads·headDim] and v[n, ...] into the KV storage of {@code layer} at
     * physical slots, in the storage's {@link KvStorage#dtype() dtype} (f32 as is, bf16 rounded to
     * nearest even).
     */
    void writeKv(KvStorage kv, int layer, Tensor k, Tensor v, int[] slots);

    /**
     * Grouped-query attention of q[n, heads·headDim] over the KV storage of {@code layer}, writing
     * out[n, heads·headDim]; query head h reads KV head h / (heads / kvHeads). Row r attends to the
     * logical positions {@code rows} gives it (a prefix plus sorted extra positions), always in
     * increasing logical order, reading the cache's blocks in place whatever its dtype (f32 or bf16).
     */
    void attention(Tensor q, KvStorage kv, int layer, AttentionRows rows, int heads, float scale, Tensor out);

    /**
     * The read bandwidth of the memory this backend's weights live in: a {@code bytes} buffer read
     * {@code passes} times with every thread (stream) of this backend, after an untimed pass. The
     * benchmarks set a decode's weight bytes per second against it.
     *
     * @param progress told after each pass (may be {@link Progress#NONE})
     */
    Roofline measureReadBandwidth(long bytes, int passes, Progress progress);

    /** The multiply-add peak of this backend's arithmetic units: {@code passes} timed passes of about {@code millisPerPass} each. */
    Roofline measureMultiplyAddPeak(int passes, int millisPerPass);

    @Override
    void close();
}
