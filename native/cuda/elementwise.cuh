// Element-wise kernels of a transformer layer: residual add, embedding gather, RMSNorm.
// Each is batch-invariant: a row's result depends only on that row and the shapes, never on how many
// rows share the launch or how the grid is cut.
#pragma once

// out[i] = a[i] + b[i] for i < n; one thread per element.
extern "C" __global__ void tandem_add_f32(float* out, const float* a, const float* b, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = a[i] + b[i];
    }
}

// out[r, :] = table[ids[r], :] for r < rows; a block per row, its threads striding over the width.
// An id outside [0, vocab) leaves the row NaN, so a bad id can never pass as a plausible embedding.
extern "C" __global__ void tandem_embedding_gather_f32(float* out, const float* table, const int* ids, int rows,
                                                       int width, int vocab) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    int id = ids[r];
    bool valid = id >= 0 && id < vocab;
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        out[(long long) r * width + c] = valid ? table[(long long) id * width + c] : __int_as_float(0x7fc00000);
    }
}

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight; a block of TANDEM_NORM_THREADS threads per
// row. The sum of squares is reduced in a fixed order (each thread's strided partial sum, then a tree
// over shared memory), so the result is the same for every launch of the same width.
#define TANDEM_NORM_THREADS 256
extern "C" __global__ void __launch_bounds__(TANDEM_NORM_THREADS)
tandem_rmsnorm_f32(float* out, const float* x, const float* weight, int rows, int width, float eps) {
    __shared__ float partial[TANDEM_NORM_THREADS];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    const float* row = x + (long long) r * width;
    float sum = 0.0f;
    for (int c = threadIdx.x; c < width; c += TANDEM_NORM_THREADS) {
        sum = fmaf(row[c], row[c], sum);
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (unsigned half = TANDEM_NORM_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            partial[threadIdx.x] += partial[threadIdx.x + half];
        }
        __syncthreads();
    }
    float scale = rsqrtf(partial[0] / (float) width + eps);
    for (int c = threadIdx.x; c < width; c += TANDEM_NORM_THREADS) {
        out[(long long) r * width + c] = row[c] * scale * weight[c];
    }
}
