package dev.tandem.runtime;

import dev.tandem.runtime.kv.KvCache;

/**
 * The op set a transformer forward pass needs. Activations are f32 tensors of shape [rows, width];
 * weights may be f32, bf16 or f16. Every implementation keeps <b>batch and thread invariance</b>:
 * the value computed for one row never depends on how many rows share the call or on how the work
 * is split across threads (no reduction is ever split by thread count).
 * {@code CpuBackend} is the reference every other backend is tested against.
 */
public interface Backend extends AutoCloseable {

    String name();

    /** Number of threads (CPU) or streams the backend computes with. */
    int parallelism();

    /** A zero-filled f32 activation tensor of the given shape, allocated in {@code arena}. */
    Tensor allocate(java.lang.foreign.Arena arena, long... shape);

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

    /** Index of the largest value of each row (lowest index on ties). */
    int[] argmax(Tensor x);

    /**
     * Writes rows of k[n, kvHeads·headDim] and v[n, ...] into the cache of {@code layer} at physical
     * slots, in the cache's {@link KvCache#dtype() dtype} (f32 as is, bf16 rounded to nearest even).
     */
    void writeKv(KvCache cache, int layer, Tensor k, Tensor v, int[] slots);

    /**
     * Grouped-query attention of q[n, heads·headDim] over the cache of {@code layer}, writing
     * out[n, heads·headDim]; query head h reads KV head h / (heads / kvHeads). Row r attends to the
     * logical positions {@code rows} gives it (a prefix plus sorted extra positions), always in
     * increasing logical order, reading the cache's blocks in place whatever its dtype (f32 or bf16).
     */
    void attention(Tensor q, KvCache cache, int layer, AttentionRows rows, int heads, float scale, Tensor out);

    @Override
    void close();
}
