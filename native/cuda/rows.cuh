// Reductions over rows of logits: softmax in place, argmax, the summary of a row (top k, softmax sums), the choice
// among rows and the mix of rows. A block of TANDEM_ROW_THREADS threads per row (one for the launch where rows are
// combined); every reduction runs in a fixed order (strided per-thread partials, then the block's fixed tree),
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

// The largest (value, index) pair over the block, the lowest index among equal values; an index of -1 (a thread
// that saw no candidate) never wins over a real one. Each thread passes its own pair; a fixed tree over the
// TANDEM_ROW_THREADS threads leaves the winner in bestValue[0] / bestIndex[0], readable by every thread on return.
// Every thread of the block must call it; the arrays hold TANDEM_ROW_THREADS entries.
__device__ __forceinline__ void tandem_block_argmax(float value, int index, float* bestValue, int* bestIndex) {
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
}

// This thread's best (value, index) among its elements of row (c = threadIdx.x, + TANDEM_ROW_THREADS, ...): the largest
// finite value strictly after (afterValue, afterIndex) in the order value descending, index ascending, the lowest index
// among equal values (-0 equals +0); (-inf, -1) when there is none. (INFINITY, -1) admits every finite value. Sets
// *invalid to 1 when it sees a NaN or +inf (every thread that writes, writes 1).
__device__ __forceinline__ void tandem_thread_best_after(const float* row, int width, float afterValue, int afterIndex,
                                                         int* invalid, float* value, int* index) {
    float bestValue = -INFINITY;
    int bestIndex = -1;
    for (int c = threadIdx.x; c < width; c += TANDEM_ROW_THREADS) {
        float v = row[c];
        if (v != v || v == INFINITY) {
            *invalid = 1;
        } else if (v > -INFINITY && (v < afterValue || (v == afterValue && c > afterIndex)) && (bestIndex < 0 || v > bestValue)) {
            bestValue = v;
            bestIndex = c;
        }
    }
    *value = bestValue;
    *index = bestIndex;
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
    float value;
    int index;
    tandem_thread_best_after(row, width, INFINITY, -1, &invalid, &value, &index);
    tandem_block_argmax(value, index, bestValue, bestIndex);
    if (threadIdx.x == 0) {
        out[r] = invalid ? -1 : bestIndex[0];
    }
}

// Over a row's finite values l, in double and in the block's fixed order: *z = Σ e^(l - max) and
// *w = Σ e^(l - max) · (l - max), the same in every thread (LogitSummary's sums). Every thread must call it.
__device__ __forceinline__ void tandem_softmax_sums(const float* row, int width, float max, double* scratch, double* z,
                                                    double* w) {
    double zs = 0.0, ws = 0.0;
    for (int c = threadIdx.x; c < width; c += TANDEM_ROW_THREADS) {
        float v = row[c];
        if (v > -INFINITY) {
            double d = (double) v - (double) max;
            double e = exp(d);
            zs += e;
            ws += e * d;
        }
    }
    *z = tandem_block_sum<TANDEM_ROW_THREADS>(zs, scratch);
    *w = tandem_block_sum<TANDEM_ROW_THREADS>(ws, scratch);
}

// The summary of each row of logits that decisions on the device's side of the copy need (Backend.summarize):
// ids[r, 0..k) and values[r, 0..k) hold the k largest finite values of row r in descending order, the lowest
// id first among equal values (-0 equals +0), then -1 / -inf once the row has no more finite values;
// sums[r, 0] = z = Σ exp(l - max) and sums[r, 1] = Σ exp(l - max) · (l - max) over the finite l, in double
// (max = values[r, 0]). A row holding a NaN or +inf gets ids of -1 and sums of NaN; a row of -inf ids of -1
// and sums of 0. Round j of the selection takes the largest (value, lowest id) strictly after round j - 1's
// pick in that order, so it needs no list of ids taken: k rounds of one pass over the row (k is small).
extern "C" __global__ void __launch_bounds__(TANDEM_ROW_THREADS)
tandem_logit_summary_f32(double* sums, int* ids, float* values, const float* x, int rows, int width, int k) {
    __shared__ float bestValue[TANDEM_ROW_THREADS];
    __shared__ int bestIndex[TANDEM_ROW_THREADS];
    __shared__ double scratch[TANDEM_ROW_THREADS / 32];
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
    float previousValue = INFINITY;  // the last pick, (value, id); nothing is after (-inf, any)
    int previousIndex = -1;
    float max = -INFINITY;
    for (int j = 0; j < k; j++) {
        float value = -INFINITY;
        int index = -1;
        if (previousValue > -INFINITY) {
            tandem_thread_best_after(row, width, previousValue, previousIndex, &invalid, &value, &index);
        }
        tandem_block_argmax(value, index, bestValue, bestIndex);
        previousValue = bestIndex[0] >= 0 ? bestValue[0] : -INFINITY;
        previousIndex = bestIndex[0];
        if (j == 0) {
            max = previousValue;
        }
        if (threadIdx.x == 0) {
            ids[(long long) r * k + j] = bestIndex[0];
            values[(long long) r * k + j] = previousValue;
        }
        __syncthreads();  // round j + 1 overwrites bestValue / bestIndex
    }
    if (invalid) {  // seen by every thread: round 0's reduction synchronised after the writes
        for (int j = threadIdx.x; j < k; j += TANDEM_ROW_THREADS) {
            ids[(long long) r * k + j] = -1;
        }
        if (threadIdx.x == 0) {
            sums[2LL * r] = NAN;
            sums[2LL * r + 1] = NAN;
        }
        return;
    }
    double z, w;
    tandem_softmax_sums(row, width, max, scratch, &z, &w);  // 0 and 0 for a row of -inf (no finite value)
    if (threadIdx.x == 0) {
        sums[2LL * r] = z;
        sums[2LL * r + 1] = w;
    }
}

#define TANDEM_SELECT_MAX_ROWS 1024

// Backend.selectRows: a choice among rows of logits (one block, rows <= TANDEM_SELECT_MAX_ROWS). Each row's argmax
// (lowest id on ties), top value m, second value (the largest after the argmax in (value, id) order, -inf when
// none), z = Σ e^(l - m) and w = Σ e^(l - m)(l - m) over its finite values in double, and its score: 1/z (score 0,
// the top probability), -(ln z - w/z) (score 1, minus the entropy) or 1/z - e^(second - m)/z (score 2, the top-2
// margin) — LogitSummary's formulas. Then thread 0 chooses: with threshold > 0 every row scoring above it (at least
// the best), else the `count` best, highest first and the lower row first among equal scores. out[0] = k, out[1..k]
// the rows chosen, out[k+1..2k] their tokens; out[0] = -1 - r when row r has no softmax (NaN, +inf, only -inf).
extern "C" __global__ void __launch_bounds__(TANDEM_ROW_THREADS)
tandem_select_rows_f32(int* out, const float* x, int rows, int width, int score, int count, double threshold) {
    __shared__ float bestValue[TANDEM_ROW_THREADS];
    __shared__ int bestIndex[TANDEM_ROW_THREADS];
    __shared__ double scratch[TANDEM_ROW_THREADS / 32];
    __shared__ double scores[TANDEM_SELECT_MAX_ROWS];
    __shared__ int tokens[TANDEM_SELECT_MAX_ROWS];
    __shared__ unsigned char taken[TANDEM_SELECT_MAX_ROWS];
    __shared__ int invalid;
    if (blockIdx.x != 0 || rows > TANDEM_SELECT_MAX_ROWS) {
        return;
    }
    for (int r = 0; r < rows; r++) {
        if (threadIdx.x == 0) {
            invalid = 0;
        }
        __syncthreads();
        const float* row = x + (long long) r * width;
        float value;
        int index;
        tandem_thread_best_after(row, width, INFINITY, -1, &invalid, &value, &index);
        tandem_block_argmax(value, index, bestValue, bestIndex);
        float max = bestValue[0];
        int top = bestIndex[0];
        __syncthreads();  // the second round overwrites bestValue / bestIndex
        if (invalid || top < 0) {
            if (threadIdx.x == 0) {
                out[0] = -1 - r;
            }
            return;  // every thread: invalid and top are the block's
        }
        tandem_thread_best_after(row, width, max, top, &invalid, &value, &index);  // the row is valid: invalid stays 0
        tandem_block_argmax(value, index, bestValue, bestIndex);
        float second = bestIndex[0] >= 0 ? bestValue[0] : -INFINITY;
        double z, w;
        tandem_softmax_sums(row, width, max, scratch, &z, &w);
        if (threadIdx.x == 0) {
            double p1 = 1.0 / z;
            scores[r] = score == 0 ? p1
                      : score == 1 ? -(log(z) - w / z)
                                   : p1 - (second > -INFINITY ? exp((double) second - (double) max) / z : 0.0);
            tokens[r] = top;
            taken[r] = 0;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int k = 0;
        int limit = threshold > 0.0 ? rows : (count < rows ? count : rows);
        while (k < limit) {
            int best = -1;
            for (int r = 0; r < rows; r++) {
                if (!taken[r] && (best < 0 || scores[r] > scores[best])) {
                    best = r;
                }
            }
            if (best < 0 || (threshold > 0.0 && !(scores[best] > threshold) && k > 0)) {
                break;
            }
            taken[best] = 1;
            out[1 + k] = best;
            k++;
            if (threshold > 0.0 && !(scores[best] > threshold)) {
                break;  // none exceeded the threshold: the single best
            }
        }
        for (int i = 0; i < k; i++) {
            out[1 + k + i] = tokens[out[1 + i]];
        }
        out[0] = k;
    }
}

// Backend.mixLogits, LogitMix.apply bit for bit: out[t] = (float) Σᵢ w[i] · x[i, t] over i = 0..rows-1, summed in double
// from 0.0 in row order (a float times a float is exact in double, so nvcc's fused multiply-add gives the same bits); with
// maskRow >= 0, every t with !((double) x[m, t] - (double) max >= logAlpha) gets -inf, where max is the largest value of
// row m ignoring NaN (-inf when there is none; fmaxf ignores NaN as LogitMix's `v > max` loop does, and which zero it keeps
// cannot change a difference's comparison). maskRow is -1 when LogitMix.masks() is false. One block of TANDEM_ROW_THREADS
// for the launch: the mix is one row of the vocabulary, tiny next to the forward pass that made its rows, and one block
// takes the mask row's max without a second launch.
extern "C" __global__ void __launch_bounds__(TANDEM_ROW_THREADS)
tandem_mix_logits_f32(float* out, const float* x, const float* weights, int rows, int width, int maskRow, double logAlpha) {
    __shared__ float scratch[TANDEM_ROW_THREADS / 32];
    if (blockIdx.x != 0) {
        return;
    }
    const float* mask = maskRow >= 0 ? x + (long long) maskRow * width : nullptr;
    float max = -INFINITY;
    if (mask != nullptr) {  // the same for every thread: the block's barriers are reached by all or none
        float partialMax = -INFINITY;
        for (int c = threadIdx.x; c < width; c += TANDEM_ROW_THREADS) {
            partialMax = fmaxf(partialMax, mask[c]);
        }
        max = tandem_block_max<TANDEM_ROW_THREADS>(partialMax, scratch);
    }
    for (int t = threadIdx.x; t < width; t += TANDEM_ROW_THREADS) {
        double sum = 0.0;
        for (int i = 0; i < rows; i++) {
            sum += (double) weights[i] * (double) x[(long long) i * width + t];
        }
        float value = (float) sum;
        if (mask != nullptr && !((double) mask[t] - (double) max >= logAlpha)) {
            value = -INFINITY;
        }
        out[t] = value;
    }
}
