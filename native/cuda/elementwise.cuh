// Element-wise and row-wise kernels of a transformer layer: residual add, bias, SwiGLU, GELU, embedding
// gather, RMSNorm, LayerNorm, RoPE. Each is batch-invariant: a row's result depends only on that row and the shapes,
// never on how many rows share the launch or how the grid is cut.
#pragma once

#include "common.cuh"

// out[i] = a[i] + b[i] for i < n; one thread per element.
extern "C" __global__ void tandem_add_f32(float* out, const float* a, const float* b, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = a[i] + b[i];
    }
}

// out[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^-g), for i < n; one thread per element.
extern "C" __global__ void tandem_silu_mul_f32(float* out, const float* gate, const float* up, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// out[i] = gelu(x[i]) = x/2 · (1 + erf(x/√2)) for i < n, the exact GELU of BERT-family encoders; one thread per
// element; out may be x. CUDA's erff (within 2 ulp) stands where the CPU backend has its own float erf
// (FloatErf, within 7.9e-8), so the two agree to a few ulp, not bit for bit.
extern "C" __global__ void tandem_gelu_f32(float* out, const float* x, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        out[i] = (0.5f * v) * (1.0f + erff(v * 0.70710677f));  // 0.70710677f: 1/√2 rounded to float
    }
}

// x[r, c] += bias[c] for r < rows, c < width; one thread per element.
template <typename W>
__device__ __forceinline__ void add_bias(float* x, const typename W::storage* bias, long long rows, int width) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * width) {
        x[i] += W::load(bias, i % width);
    }
}
extern "C" __global__ void tandem_add_bias_f32(float* x, const float* bias, long long rows, int width) {
    add_bias<tandem_f32>(x, bias, rows, width);
}
extern "C" __global__ void tandem_add_bias_bf16(float* x, const tandem_u16* bias, long long rows, int width) {
    add_bias<tandem_bf16>(x, bias, rows, width);
}
extern "C" __global__ void tandem_add_bias_f16(float* x, const tandem_u16* bias, long long rows, int width) {
    add_bias<tandem_f16>(x, bias, rows, width);
}

// out[r, :] = table[ids[r], :] widened to f32, for r < rows; a block per row, its threads striding over
// the width. An id outside [0, vocab) leaves the row NaN, so a bad id can never pass as a plausible
// embedding (the Java side refuses such ids before launching).
template <typename W>
__device__ __forceinline__ void embedding_gather(float* out, const typename W::storage* table, const int* ids, int rows,
                                                 int width, int vocab) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    int id = ids[r];
    bool valid = id >= 0 && id < vocab;
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        out[(long long) r * width + c] = valid ? W::load(table, (long long) id * width + c) : __int_as_float(0x7fc00000);
    }
}
extern "C" __global__ void tandem_embedding_gather_f32(float* out, const float* table, const int* ids, int rows,
                                                       int width, int vocab) {
    embedding_gather<tandem_f32>(out, table, ids, rows, width, vocab);
}
extern "C" __global__ void tandem_embedding_gather_bf16(float* out, const tandem_u16* table, const int* ids, int rows,
                                                        int width, int vocab) {
    embedding_gather<tandem_bf16>(out, table, ids, rows, width, vocab);
}
extern "C" __global__ void tandem_embedding_gather_f16(float* out, const tandem_u16* table, const int* ids, int rows,
                                                       int width, int vocab) {
    embedding_gather<tandem_f16>(out, table, ids, rows, width, vocab);
}

// out[r, :] = x[r, :] · (1 / sqrt(mean(x[r, :]²) + eps)) · weight, in Hugging Face's order; a block of
// TANDEM_NORM_THREADS threads per row. The sum of squares is reduced in a fixed order (each thread's
// strided partial sum, then tandem_block_sum), so a row's result is the same in every launch.
#define TANDEM_NORM_THREADS 256
template <typename W>
__device__ __forceinline__ void rmsnorm(float* out, const float* x, const typename W::storage* weight, int rows,
                                        int width, float eps) {
    __shared__ float scratch[TANDEM_NORM_THREADS / 32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    const float* row = x + (long long) r * width;
    float sum = 0.0f;
    for (int c = threadIdx.x; c < width; c += TANDEM_NORM_THREADS) {
        sum = fmaf(row[c], row[c], sum);
    }
    sum = tandem_block_sum<TANDEM_NORM_THREADS>(sum, scratch);
    float scale = 1.0f / sqrtf(sum / (float) width + eps);
    for (int c = threadIdx.x; c < width; c += TANDEM_NORM_THREADS) {
        out[(long long) r * width + c] = row[c] * scale * W::load(weight, c);
    }
}
extern "C" __global__ void __launch_bounds__(TANDEM_NORM_THREADS)
tandem_rmsnorm_f32(float* out, const float* x, const float* weight, int rows, int width, float eps) {
    rmsnorm<tandem_f32>(out, x, weight, rows, width, eps);
}
extern "C" __global__ void __launch_bounds__(TANDEM_NORM_THREADS)
tandem_rmsnorm_bf16(float* out, const float* x, const tandem_u16* weight, int rows, int width, float eps) {
    rmsnorm<tandem_bf16>(out, x, weight, rows, width, eps);
}
extern "C" __global__ void __launch_bounds__(TANDEM_NORM_THREADS)
tandem_rmsnorm_f16(float* out, const float* x, const tandem_u16* weight, int rows, int width, float eps) {
    rmsnorm<tandem_f16>(out, x, weight, rows, width, eps);
}

// out[r, :] = (x[r, :] − mean) / sqrt(var + eps) · weight + bias, BERT's LayerNorm with the biased variance (weight
// and bias in W); a block of TANDEM_NORM_THREADS threads per row. As the CPU kernel computes it, in float: with x0 =
// x[r, 0], mu = Σ(x − x0) / width, c = (x − x0) − mu, inv = 1 / sqrt(Σc² / width + eps), out = fma(c · inv, w, b).
// Shifting by x0 keeps both sums on the scale of the row's spread whatever its offset; two passes (the mean first,
// then the centred squares) leave nothing to cancel. Each sum is the threads' strided partials, then
// tandem_block_sum, a fixed order, so a row's result is the same in every launch. out may be x: in the last pass each
// thread writes only the elements it reads itself, and every thread read x0 before the first block sum's barrier.
template <typename W>
__device__ __forceinline__ void layer_norm(float* out, const float* x, const typename W::storage* weight,
                                           const typename W::storage* bias, int rows, int width, float eps) {
    __shared__ float scratch[TANDEM_NORM_THREADS / 32];
    int r = blockIdx.x;
    if (r >= rows || width <= 0) {
        return;
    }
    const float* row = x + (long long) r * width;
    float x0 = row[0];
    float sum = 0.0f;
    for (int c = threadIdx.x; c < width; c += TANDEM_NORM_THREADS) {
        sum += row[c] - x0;
    }
    float mu = tandem_block_sum<TANDEM_NORM_THREADS>(sum, scratch) / (float) width;
    float squares = 0.0f;
    for (int c = threadIdx.x; c < width; c += TANDEM_NORM_THREADS) {
        float d = (row[c] - x0) - mu;
        squares = fmaf(d, d, squares);
    }
    float inv = 1.0f / sqrtf(tandem_block_sum<TANDEM_NORM_THREADS>(squares, scratch) / (float) width + eps);
    for (int c = threadIdx.x; c < width; c += TANDEM_NORM_THREADS) {
        float d = (row[c] - x0) - mu;
        out[(long long) r * width + c] = fmaf(d * inv, W::load(weight, c), W::load(bias, c));
    }
}
extern "C" __global__ void __launch_bounds__(TANDEM_NORM_THREADS)
tandem_layer_norm_f32(float* out, const float* x, const float* weight, const float* bias, int rows, int width, float eps) {
    layer_norm<tandem_f32>(out, x, weight, bias, rows, width, eps);
}
extern "C" __global__ void __launch_bounds__(TANDEM_NORM_THREADS)
tandem_layer_norm_bf16(float* out, const float* x, const tandem_u16* weight, const tandem_u16* bias, int rows, int width,
                       float eps) {
    layer_norm<tandem_bf16>(out, x, weight, bias, rows, width, eps);
}
extern "C" __global__ void __launch_bounds__(TANDEM_NORM_THREADS)
tandem_layer_norm_f16(float* out, const float* x, const tandem_u16* weight, const tandem_u16* bias, int rows, int width,
                      float eps) {
    layer_norm<tandem_f16>(out, x, weight, bias, rows, width, eps);
}

// Rotates each head of x[rows, heads·headDim] in place by positions[r]: the angle of pair i is
// positions[r] · invFreq[i] (an f32 product, as torch computes it), and the pair is (i, i + headDim/2)
// when rotateHalf is 1 (Hugging Face's layout) or (2i, 2i + 1) when 0 (GPT-J's interleaved layout).
// A block per row, its threads striding over the heads × headDim/2 pairs.
extern "C" __global__ void tandem_rope_f32(float* x, const int* positions, const float* invFreq, int rows, int heads,
                                           int headDim, int rotateHalf) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    int half = headDim / 2;
    float position = (float) positions[r];
    for (int p = threadIdx.x; p < heads * half; p += blockDim.x) {
        int h = p / half, i = p % half;
        float angle = position * invFreq[i];
        float c = cosf(angle), s = sinf(angle);
        long long base = (long long) r * heads * headDim + (long long) h * headDim;
        long long o1 = rotateHalf ? base + i : base + 2 * i;
        long long o2 = rotateHalf ? base + i + half : o1 + 1;
        float x1 = x[o1], x2 = x[o2];
        // x·cos + rotate(x)·sin: two products and a sum, no fused multiply-add, as torch does.
        x[o1] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(-x2, s));
        x[o2] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
    }
}
