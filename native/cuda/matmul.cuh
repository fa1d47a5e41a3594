// out[n, m] = x[n, k] · w[m, k]ᵀ with f32 activations and f32, bf16 or f16 weights, accumulated in f32.
//
// A block of TANDEM_MATMUL_THREADS threads owns TANDEM_MATMUL_WARPS consecutive weight rows, one per
// warp, and runs every activation row against them, TANDEM_MATMUL_ROWS rows at a time, so each weight row
// is read from memory once per launch however many rows the pass has (the weights are what a decode or
// verification pass is bound by). When k is a multiple of 8 and the rows are 16-byte aligned (every
// tensor CudaBackend allocates is), lane l reads the runs of 8 elements starting at 8l, 8l + 256, ... with
// 16-byte loads and sums their products in increasing order; otherwise it sums the elements congruent to
// l modulo 32 one by one. Then the warp adds the 32 partial sums by a butterfly (tandem_warp_sum). Either
// order depends only on k and the alignment of the tensors, never on n: a row's result is the same
// whatever the number of rows in the pass (batch invariance) and whatever the grid.
#pragma once

#include "common.cuh"

#define TANDEM_MATMUL_WARPS 8
#define TANDEM_MATMUL_THREADS (TANDEM_MATMUL_WARPS * 32)
#define TANDEM_MATMUL_ROWS 4

template <typename W>
__device__ __forceinline__ void matmul(float* out, const float* x, const typename W::storage* w, int n, int k, int m) {
    int lane = threadIdx.x & 31;
    int column = blockIdx.x * TANDEM_MATMUL_WARPS + (threadIdx.x >> 5);
    if (column >= m) {
        return;  // the whole warp leaves together; no block-wide barrier follows
    }
    const typename W::storage* weights = w + (long long) column * k;
    // The same in every thread of the launch: 16-byte loads need k a multiple of 8 and aligned bases.
    bool vectorized = k % 8 == 0 && ((unsigned long long) x % 16) == 0 && ((unsigned long long) w % 16) == 0;
    for (int r0 = 0; r0 < n; r0 += TANDEM_MATMUL_ROWS) {
        float acc[TANDEM_MATMUL_ROWS];
        for (int j = 0; j < TANDEM_MATMUL_ROWS; j++) {
            acc[j] = 0.0f;
        }
        if (vectorized) {
            for (int i = 8 * lane; i < k; i += 256) {
                float wv[8];
                W::load8(weights, i, wv);
                for (int j = 0; j < TANDEM_MATMUL_ROWS; j++) {
                    if (r0 + j < n) {
                        const float* xr = x + (long long) (r0 + j) * k + i;
                        float4 a = *reinterpret_cast<const float4*>(xr), b = *reinterpret_cast<const float4*>(xr + 4);
                        float v = acc[j];
                        v = fmaf(a.x, wv[0], v);
                        v = fmaf(a.y, wv[1], v);
                        v = fmaf(a.z, wv[2], v);
                        v = fmaf(a.w, wv[3], v);
                        v = fmaf(b.x, wv[4], v);
                        v = fmaf(b.y, wv[5], v);
                        v = fmaf(b.z, wv[6], v);
                        acc[j] = fmaf(b.w, wv[7], v);
                    }
                }
            }
        } else {
            for (int i = lane; i < k; i += 32) {
                float wi = W::load(weights, i);
                for (int j = 0; j < TANDEM_MATMUL_ROWS; j++) {
                    if (r0 + j < n) {
                        acc[j] = fmaf(x[(long long) (r0 + j) * k + i], wi, acc[j]);
                    }
                }
            }
        }
        int rows = n - r0 < TANDEM_MATMUL_ROWS ? n - r0 : TANDEM_MATMUL_ROWS;  // the same in every lane
        for (int j = 0; j < rows; j++) {
            float sum = tandem_warp_sum(acc[j]);
            if (lane == 0) {
                out[(long long) (r0 + j) * m + column] = sum;
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(TANDEM_MATMUL_THREADS)
tandem_matmul_f32(float* out, const float* x, const float* w, int n, int k, int m) {
    matmul<tandem_f32>(out, x, w, n, k, m);
}
extern "C" __global__ void __launch_bounds__(TANDEM_MATMUL_THREADS)
tandem_matmul_bf16(float* out, const float* x, const tandem_u16* w, int n, int k, int m) {
    matmul<tandem_bf16>(out, x, w, n, k, m);
}
extern "C" __global__ void __launch_bounds__(TANDEM_MATMUL_THREADS)
tandem_matmul_f16(float* out, const float* x, const tandem_u16* w, int n, int k, int m) {
    matmul<tandem_f16>(out, x, w, n, k, m);
}
