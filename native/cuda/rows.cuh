// Reductions over rows of logits: softmax in place and argmax. A block of TANDEM_ROW_THREADS threads per
// row; every reduction runs in a fixed order (strided per-thread partials, then the block's fixed tree),
// so a row's result never depends on the other rows of the launch.
#pragma once

#include "common.cuh"

#define TANDEM_ROW_THREADS 256

// x[r, :] = exp(x[r, :] - max) / Σ exp(x[r, :] - max), in place.
extern "C" __global__ void __launch_bounds__(TANDEM_ROW_THREADS)
tandem_softmax_f32(float* x, int rows, int width) {
    __shared__ float scratch[TANDEM_ROW_THREADS / 32];
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    float* row = x + (long long) r * width;
    float partialMax = -INFINITY;
    for (int c = threadIdx.x; c < width; c += TANDEM_ROW_THREADS) {
        partialMax = fmaxf(partialMax, row[c]);
    }
    float max = tandem_block_max<TANDEM_ROW_THREADS>(partialMax, scratch);
    float partialSum = 0.0f;
    for (int c = threadIdx.x; c < width; c += TANDEM_ROW_THREADS) {
        float e = expf(row[c] - max);
        row[c] = e;
        partialSum += e;
    }
    float inverse = 1.0f / tandem_block_sum<TANDEM_ROW_THREADS>(partialSum, scratch);
    for (int c = threadIdx.x; c < width; c += TANDEM_ROW_THREADS) {
        row[c] *= inverse;
    }
}

// out[r] = the index of the largest value of row r, the lowest on ties; -1 when the row holds a NaN or
// +infinity, or nothing but -infinity (Backend.argmax's rule: such a row has no greedy token).
extern "C" __global__ void __launch_bounds__(TANDEM_ROW_THREADS)
tandem_argmax_f32(int* out, const float* x, int rows, int width) {
    __shared__ float bestValue[TANDEM_ROW_THREADS];
    __shared__ int bestIndex[TANDEM_ROW_THREADS];
    __shared__ int invalid;
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    if (threadIdx.x == 0) {
        invalid = 0;
    }
    __syncthreads();
    const float* row = x + (long long) r * width;
    float value = -INFINITY;
    int index = -1;
    for (int c = threadIdx.x; c < width; c += TANDEM_ROW_THREADS) {
        float v = row[c];
        if (v != v || v == INFINITY) {
            invalid = 1;  // every thread that writes, writes 1
        } else if (v > value) {
            value = v;
            index = c;
        }
    }
    bestValue[threadIdx.x] = value;
    bestIndex[threadIdx.x] = index;
    __syncthreads();
    for (int half = TANDEM_ROW_THREADS / 2; half > 0; half /= 2) {
        if ((int) threadIdx.x < half) {
            float v = bestValue[threadIdx.x + half];
            int i = bestIndex[threadIdx.x + half];
            int mine = bestIndex[threadIdx.x];
            if (i >= 0 && (mine < 0 || v > bestValue[threadIdx.x] || (v == bestValue[threadIdx.x] && i < mine))) {
                bestValue[threadIdx.x] = v;
                bestIndex[threadIdx.x] = i;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        out[r] = invalid ? -1 : bestIndex[0];
    }
}
