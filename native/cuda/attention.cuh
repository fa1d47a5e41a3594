// The paged KV cache: writing rows into it, copying slots inside it, and attention over it.
//
// Storage (per layer, keys and values apart): slot-major rows of kvHeads × headDim elements, f32 or bf16;
// slot = physical block · blockSize + offset. Which logical positions a query row sees comes as a
// descriptor (AttentionRows in Java) rather than a dense mask, flattened into one int array `desc`:
//   desc[4r + 0] index in desc of row r's block table (physical block of each logical block)
//   desc[4r + 1] prefix: the row sees logical positions [0, prefix)
//   desc[4r + 2] index in desc of row r's extra positions (sorted, all >= prefix)
//   desc[4r + 3] how many extra positions it sees
// Causal prefill, decode and chain verification have no extra positions; a tree row's extras are its
// ancestors and itself; a bidirectional row's prefix is the whole sequence; block-sparse segments mix both.
#pragma once

#include "common.cuh"

// out rows of the KV cache: cache[slots[r], :] = row r of src (f32), stored as KV's type (bf16 rounds to
// nearest even). A block per row.
template <typename KV>
__device__ __forceinline__ void kv_store(KV* cache, long long index, float value);
template <>
__device__ __forceinline__ void kv_store<float>(float* cache, long long index, float value) {
    cache[index] = value;
}
template <>
__device__ __forceinline__ void kv_store<tandem_u16>(tandem_u16* cache, long long index, float value) {
    cache[index] = tandem_float_to_bf16(value);
}
__device__ __forceinline__ float kv_load(const float* cache, long long index) {
    return cache[index];
}
__device__ __forceinline__ float kv_load(const tandem_u16* cache, long long index) {
    return __uint_as_float(((unsigned) cache[index]) << 16);
}

template <typename KV>
__device__ __forceinline__ void write_kv(KV* keys, KV* values, const float* k, const float* v, const int* slots, int rows,
                                         int width) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    long long to = (long long) slots[r] * width, from = (long long) r * width;
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        kv_store<KV>(keys, to + c, k[from + c]);
        kv_store<KV>(values, to + c, v[from + c]);
    }
}
extern "C" __global__ void tandem_write_kv_f32(float* keys, float* values, const float* k, const float* v, const int* slots,
                                               int rows, int width) {
    write_kv<float>(keys, values, k, v, slots, rows, width);
}
extern "C" __global__ void tandem_write_kv_bf16(tandem_u16* keys, tandem_u16* values, const float* k, const float* v,
                                                const int* slots, int rows, int width) {
    write_kv<tandem_u16>(keys, values, k, v, slots, rows, width);
}

// dst row i = src row rows[i] (gather) or dst row rows[i] = src row i (scatter), rows of `words` 32-bit
// words (or bytes, for the _u8 forms); a block per row. Used for gatherRows and, through a scratch buffer,
// for copying KV slots (all sources read before any destination is written).
extern "C" __global__ void tandem_gather_rows_u32(unsigned* dst, const unsigned* src, const int* rows, int count,
                                                  long long words) {
    int i = blockIdx.x;
    if (i < count) {
        for (long long c = threadIdx.x; c < words; c += blockDim.x) {
            dst[(long long) i * words + c] = src[(long long) rows[i] * words + c];
        }
    }
}
extern "C" __global__ void tandem_scatter_rows_u32(unsigned* dst, const unsigned* src, const int* rows, int count,
                                                   long long words) {
    int i = blockIdx.x;
    if (i < count) {
        for (long long c = threadIdx.x; c < words; c += blockDim.x) {
            dst[(long long) rows[i] * words + c] = src[(long long) i * words + c];
        }
    }
}
extern "C" __global__ void tandem_gather_rows_u8(unsigned char* dst, const unsigned char* src, const int* rows, int count,
                                                 long long bytes) {
    int i = blockIdx.x;
    if (i < count) {
        for (long long c = threadIdx.x; c < bytes; c += blockDim.x) {
            dst[(long long) i * bytes + c] = src[(long long) rows[i] * bytes + c];
        }
    }
}

// Grouped-query attention of q[rows, heads·headDim] over one layer of the paged cache, out of the same
// shape; query head h reads KV head h / (heads / kvHeads). Two launches:
//
// tandem_attention_split_*: a block of TANDEM_ATTENTION_WARPS warps per (row, head, split). A row's visible
// keys are cut into splits of splitKeys consecutive keys (in the row's own order), so long contexts spread
// over many blocks; the number of splits of a row is ceil(visible / splitKeys), which depends only on the
// row. Inside a split, warp w takes the keys j with (j - first) ≡ w (mod TANDEM_ATTENTION_WARPS), in
// increasing order, with an online softmax (running max, sum and value accumulator; lane l holds dimensions
// l, l + 32, ...); the warps' partial results are merged in warp order and written, unnormalised, to
// partial[((r · heads + h) · maxSplits + split) · (headDim + 2)]: max, sum, then headDim accumulators.
//
// tandem_attention_merge: a block per (row, head) merges the row's splits in split order and divides.
//
// Which warp and which split take a key depends only on the key's index among the row's visible keys, so
// a row's result depends only on what it sees, never on the other rows of the launch (batch invariance).
// headDim is at most TANDEM_ATTENTION_MAX_HEAD_DIM.
#define TANDEM_ATTENTION_WARPS 4
#define TANDEM_ATTENTION_THREADS (TANDEM_ATTENTION_WARPS * 32)
#define TANDEM_ATTENTION_MAX_HEAD_DIM 256
#define TANDEM_ATTENTION_DIMS_PER_LANE (TANDEM_ATTENTION_MAX_HEAD_DIM / 32)

__device__ __forceinline__ int tandem_attention_splits(int visible, int splitKeys) {
    return visible <= splitKeys ? 1 : (visible + splitKeys - 1) / splitKeys;
}

template <typename KV>
__device__ __forceinline__ void attention_split(float* partial, const float* q, const KV* keys, const KV* values,
                                                const int* desc, int rows, int heads, int kvHeads, int headDim,
                                                int blockShift, float scale, int splitKeys, int maxSplits) {
    __shared__ float warp_max[TANDEM_ATTENTION_WARPS];
    __shared__ float warp_sum[TANDEM_ATTENTION_WARPS];
    __shared__ float warp_acc[TANDEM_ATTENTION_WARPS][TANDEM_ATTENTION_MAX_HEAD_DIM];
    int r = blockIdx.x, h = blockIdx.y, split = blockIdx.z;
    if (r >= rows || h >= heads) {
        return;  // the whole block leaves together
    }
    const int* table = desc + desc[4 * r];
    int prefix = desc[4 * r + 1];
    const int* extra = desc + desc[4 * r + 2];
    int visible = prefix + desc[4 * r + 3];
    if (split >= tandem_attention_splits(visible, splitKeys)) {
        return;  // this row has fewer splits than the launch; the whole block leaves together
    }
    int first = split * splitKeys;
    int end = visible < first + splitKeys ? visible : first + splitKeys;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int kvh = h / (heads / kvHeads);
    int blockMask = (1 << blockShift) - 1;
    long long slotWidth = (long long) kvHeads * headDim;
    const float* qRow = q + ((long long) r * heads + h) * headDim;

    float qv[TANDEM_ATTENTION_DIMS_PER_LANE], acc[TANDEM_ATTENTION_DIMS_PER_LANE];
    for (int t = 0; t < TANDEM_ATTENTION_DIMS_PER_LANE; t++) {
        int d = lane + 32 * t;
        qv[t] = d < headDim ? qRow[d] : 0.0f;
        acc[t] = 0.0f;
    }
    float runningMax = -INFINITY, runningSum = 0.0f;
    for (int j = first + warp; j < end; j += TANDEM_ATTENTION_WARPS) {
        int position = j < prefix ? j : extra[j - prefix];
        long long slot = ((long long) table[position >> blockShift] << blockShift) | (position & blockMask);
        long long base = slot * slotWidth + (long long) kvh * headDim;
        float dot = 0.0f;
        for (int t = 0; t < TANDEM_ATTENTION_DIMS_PER_LANE; t++) {
            int d = lane + 32 * t;
            if (d < headDim) {
                dot = fmaf(qv[t], kv_load(keys, base + d), dot);
            }
        }
        float score = tandem_warp_sum(dot) * scale;
        float newMax = fmaxf(runningMax, score);
        float correction = runningMax == -INFINITY ? 0.0f : expf(runningMax - newMax);
        float p = expf(score - newMax);
        runningSum = runningSum * correction + p;
        for (int t = 0; t < TANDEM_ATTENTION_DIMS_PER_LANE; t++) {
            int d = lane + 32 * t;
            if (d < headDim) {
                acc[t] = fmaf(p, kv_load(values, base + d), acc[t] * correction);
            }
        }
        runningMax = newMax;
    }
    if (lane == 0) {
        warp_max[warp] = runningMax;
        warp_sum[warp] = runningSum;
    }
    for (int t = 0; t < TANDEM_ATTENTION_DIMS_PER_LANE; t++) {
        int d = lane + 32 * t;
        if (d < headDim) {
            warp_acc[warp][d] = acc[t];
        }
    }
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < TANDEM_ATTENTION_WARPS; w++) {
        m = fmaxf(m, warp_max[w]);
    }
    float total = 0.0f;
    float weight[TANDEM_ATTENTION_WARPS];
    for (int w = 0; w < TANDEM_ATTENTION_WARPS; w++) {
        weight[w] = warp_max[w] == -INFINITY ? 0.0f : expf(warp_max[w] - m);
        total = fmaf(warp_sum[w], weight[w], total);
    }
    float* out = partial + (((long long) r * heads + h) * maxSplits + split) * (headDim + 2);
    if (threadIdx.x == 0) {
        out[0] = m;
        out[1] = total;
    }
    for (int d = threadIdx.x; d < headDim; d += TANDEM_ATTENTION_THREADS) {
        float value = 0.0f;
        for (int w = 0; w < TANDEM_ATTENTION_WARPS; w++) {
            value = fmaf(warp_acc[w][d], weight[w], value);
        }
        out[2 + d] = value;
    }
}
extern "C" __global__ void __launch_bounds__(TANDEM_ATTENTION_THREADS)
tandem_attention_split_f32(float* partial, const float* q, const float* keys, const float* values, const int* desc,
                           int rows, int heads, int kvHeads, int headDim, int blockShift, float scale, int splitKeys,
                           int maxSplits) {
    attention_split<float>(partial, q, keys, values, desc, rows, heads, kvHeads, headDim, blockShift, scale, splitKeys,
                           maxSplits);
}
extern "C" __global__ void __launch_bounds__(TANDEM_ATTENTION_THREADS)
tandem_attention_split_bf16(float* partial, const float* q, const tandem_u16* keys, const tandem_u16* values,
                            const int* desc, int rows, int heads, int kvHeads, int headDim, int blockShift, float scale,
                            int splitKeys, int maxSplits) {
    attention_split<tandem_u16>(partial, q, keys, values, desc, rows, heads, kvHeads, headDim, blockShift, scale,
                                splitKeys, maxSplits);
}

// out[r, h·headDim + d] = Σ_s acc_s[d] · e^(max_s − M) / Σ_s sum_s · e^(max_s − M), M the largest max_s,
// over row r's splits in order (a row that sees no key gets zeros). A block per (row, head), its threads
// striding over the dimensions.
extern "C" __global__ void __launch_bounds__(TANDEM_ATTENTION_THREADS)
tandem_attention_merge(float* out, const float* partial, const int* desc, int rows, int heads, int headDim, int splitKeys,
                       int maxSplits) {
    int r = blockIdx.x, h = blockIdx.y;
    if (r >= rows || h >= heads) {
        return;
    }
    int visible = desc[4 * r + 1] + desc[4 * r + 3];
    int splits = tandem_attention_splits(visible, splitKeys);
    const float* base = partial + ((long long) r * heads + h) * maxSplits * (headDim + 2);
    float m = -INFINITY;
    for (int s = 0; s < splits; s++) {
        m = fmaxf(m, base[s * (headDim + 2)]);
    }
    float total = 0.0f;
    for (int s = 0; s < splits; s++) {
        float splitMax = base[s * (headDim + 2)];
        float weight = splitMax == -INFINITY ? 0.0f : expf(splitMax - m);
        total = fmaf(base[s * (headDim + 2) + 1], weight, total);
    }
    float* outRow = out + ((long long) r * heads + h) * headDim;
    for (int d = threadIdx.x; d < headDim; d += TANDEM_ATTENTION_THREADS) {
        float value = 0.0f;
        for (int s = 0; s < splits; s++) {
            float splitMax = base[s * (headDim + 2)];
            float weight = splitMax == -INFINITY ? 0.0f : expf(splitMax - m);
            value = fmaf(base[s * (headDim + 2) + 2 + d], weight, value);
        }
        outRow[d] = visible == 0 ? 0.0f : value / total;
    }
}
