// Random draws and sampling on the device, with the same counter-based generator as the CPU
// (dev.tandem.runtime.rng.CounterRng: Philox4x32-10 keyed by the seed, counted by position, stream,
// purpose and index), so both draw the same numbers for the same (seed, stream, position, purpose).
#pragma once

#include "common.cuh"

// Philox4x32-10 on counter c and key (k0, k1), in place; integer operations only, so the host build, the
// GPU and Java agree bit for bit.
__device__ __forceinline__ void tandem_philox4x32_10(unsigned c[4], unsigned k0, unsigned k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        unsigned long long p0 = 0xD2511F53ull * c[0];
        unsigned long long p1 = 0xCD9E8D57ull * c[2];
        unsigned n0 = (unsigned) (p1 >> 32) ^ c[1] ^ k0;
        unsigned n2 = (unsigned) (p0 >> 32) ^ c[3] ^ k1;
        c[1] = (unsigned) p1;
        c[3] = (unsigned) p0;
        c[0] = n0;
        c[2] = n2;
    }
}

// CounterRng.uniform(seed, stream, position, purpose, index): 53 random bits as a double in [0, 1).
__device__ __forceinline__ double tandem_uniform(unsigned long long seed, unsigned long long stream, unsigned position,
                                                 int purpose, int index) {
    unsigned c[4] = {position, (unsigned) stream, (unsigned) (stream >> 32), ((unsigned) purpose << 24) | (unsigned) index};
    tandem_philox4x32_10(c, (unsigned) seed, (unsigned) (seed >> 32));
    unsigned long long bits = ((unsigned long long) c[1] << 32) | c[0];
    return (double) (bits >> 11) * 0x1.0p-53;
}

// out[i] = tandem_uniform(seed, streams[i], positions[i], purpose, index) for i < n; one thread per draw.
extern "C" __global__ void tandem_uniform_f64(double* out, unsigned long long seed, const long long* streams,
                                              const long long* positions, int purpose, int index, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = tandem_uniform(seed, (unsigned long long) streams[i], (unsigned) positions[i], purpose, index);
    }
}

// One token per row of logits[rows, vocab], drawn as Sampler.sample draws for a temperature alone: l ← l / T
// (f32), weights w_t = e^(l_t − max l) in double (1 where l_t is the max), u = the SAMPLE draw at (seed,
// streams[r], positions[r]), and the token is the first id, in increasing order, whose running sum of the
// positive weights exceeds u · Σ w. The running sums are associated differently from the CPU's single
// loop (per-thread runs of ids, then the runs' totals in thread order), so the two agree except when u · Σ w
// falls within rounding of a boundary. out[r] = -1 when every logit is -infinity, -2 when one is NaN or
// +infinity (the
// Java side turns those into the CPU's exceptions). A block of TANDEM_SAMPLE_THREADS threads per row, thread t
// owning the ids [t · chunk, (t + 1) · chunk).
#define TANDEM_SAMPLE_THREADS 256
extern "C" __global__ void __launch_bounds__(TANDEM_SAMPLE_THREADS)
tandem_sample_temperature_f32(int* out, const float* logits, int rows, int vocab, float temperature,
                              unsigned long long seed, const long long* streams, const long long* positions) {
    __shared__ float maxScratch[TANDEM_SAMPLE_THREADS / 32];
    __shared__ double runTotal[TANDEM_SAMPLE_THREADS];
    __shared__ int bad;
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    const float* row = logits + (long long) r * vocab;
    int chunk = (vocab + TANDEM_SAMPLE_THREADS - 1) / TANDEM_SAMPLE_THREADS;
    int from = threadIdx.x * chunk;
    int to = from + chunk < vocab ? from + chunk : vocab;
    if (threadIdx.x == 0) {
        bad = 0;
    }
    __syncthreads();
    float localMax = -INFINITY;
    for (int t = from; t < to; t++) {
        float raw = row[t];
        if (raw != raw || raw == INFINITY) {
            bad = 1;  // every thread that writes, writes 1
        }
        localMax = fmaxf(localMax, raw / temperature);
    }
    float max = tandem_block_max<TANDEM_SAMPLE_THREADS>(localMax, maxScratch);
    double run = 0.0;
    for (int t = from; t < to; t++) {
        float l = row[t] / temperature;
        run += l == max ? 1.0 : exp((double) l - (double) max);
    }
    runTotal[threadIdx.x] = run;
    __syncthreads();
    if (threadIdx.x == 0) {
        int token;
        if (bad) {
            token = -2;
        } else if (max == -INFINITY) {
            token = -1;
        } else {
            double total = 0.0;
            for (int t = 0; t < TANDEM_SAMPLE_THREADS; t++) {
                total += runTotal[t];
            }
            double target = tandem_uniform(seed, (unsigned long long) streams[r], (unsigned) positions[r], 0, 0) * total;
            // The run holding the target, then the id inside it; the last positive weight if rounding put the
            // target at the very end (as the CPU does).
            double before = 0.0;
            token = -1;
            int lastRun = 0;
            for (int t = 0; t < TANDEM_SAMPLE_THREADS; t++) {
                if (runTotal[t] > 0.0) {
                    lastRun = t;
                    if (target < before + runTotal[t]) {
                        token = t;
                        break;
                    }
                    before += runTotal[t];
                }
            }
            int run0 = token >= 0 ? token : lastRun;
            int first = run0 * chunk;
            int last = first + chunk < vocab ? first + chunk : vocab;
            double cumulative = token >= 0 ? before : before - runTotal[lastRun];
            token = -1;
            for (int t = first; t < last; t++) {
                float l = row[t] / temperature;
                double w = l == max ? 1.0 : exp((double) l - (double) max);
                if (w > 0.0) {
                    cumulative += w;
                    token = t;
                    if (target < cumulative) {
                        break;
                    }
                }
            }
        }
        out[r] = token;
    }
}
