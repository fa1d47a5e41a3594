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

// The weight Sampler gives a logit after the temperature: l = raw / T (f32), e^(l − max) in double, 1 where l is
// the max (so a max that overflowed to +infinity under a tiny temperature still weighs 1).
__device__ __forceinline__ double tandem_weight(float raw, float temperature, float max) {
    float l = raw / temperature;
    return l == max ? 1.0 : exp((double) l - (double) max);
}

#define TANDEM_SAMPLE_THREADS 256

// The first id of [0, vocab), in increasing order, whose running sum of the positive weight(t) exceeds u · total,
// where total = Σ weight (or 1 with unitTotal: weights already normalised, as DrafterModel draws); the last
// positive id when rounding put the target at the very end (as the CPU does); -1 when no weight is positive.
// Every thread of the block calls it; thread t sums the ids [t · chunk, (t + 1) · chunk) in order, thread 0
// adds the runs in thread order, finds the run holding the target and walks it. Returns the id in every thread.
template <typename Weight>
__device__ int tandem_draw(Weight weight, int vocab, double u, bool unitTotal, double* runTotal, int* result) {
    int chunk = (vocab + TANDEM_SAMPLE_THREADS - 1) / TANDEM_SAMPLE_THREADS;
    int from = threadIdx.x * chunk;
    int to = from + chunk < vocab ? from + chunk : vocab;
    double run = 0.0;
    for (int t = from; t < to; t++) {
        double w = weight(t);
        if (w > 0.0) {
            run += w;
        }
    }
    runTotal[threadIdx.x] = run;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
TANDEM_UNROLL(4)
        for (int t = 0; t < TANDEM_SAMPLE_THREADS; t++) {
            total += runTotal[t];
        }
        int token = -1;
        if (total > 0.0) {
            double target = u * (unitTotal ? 1.0 : total);
            double before = 0.0;
            int lastRun = -1, hit = -1;
TANDEM_UNROLL(4)
            for (int t = 0; t < TANDEM_SAMPLE_THREADS; t++) {
                if (runTotal[t] > 0.0) {
                    lastRun = t;
                    if (target < before + runTotal[t]) {
                        hit = t;
                        break;
                    }
                    before += runTotal[t];
                }
            }
            int run0 = hit >= 0 ? hit : lastRun;
            double cumulative = hit >= 0 ? before : before - runTotal[lastRun];
            int first = run0 * chunk;
            int last = first + chunk < vocab ? first + chunk : vocab;
            for (int t = first; t < last; t++) {
                double w = weight(t);
                if (w > 0.0) {
                    cumulative += w;
                    token = t;
                    if (target < cumulative) {
                        break;
                    }
                }
            }
        }
        *result = token;
    }
    __syncthreads();
    int token = *result;
    __syncthreads();  // result and runTotal may be reused once every thread has read them
    return token;
}

// The max of row / T over a row and Σ tandem_weight (a fixed order: per-thread runs, then the block's sum);
// *bad is set to 1 (by any thread) when the row holds a NaN or +infinity. Every thread of the block calls it.
__device__ void tandem_row_weights(const float* row, int vocab, float temperature, float* maxScratch, double* sumScratch,
                                   int* bad, float* maxOut, double* totalOut) {
    float localMax = -INFINITY;
    for (int t = threadIdx.x; t < vocab; t += TANDEM_SAMPLE_THREADS) {
        float raw = row[t];
        if (raw != raw || raw == INFINITY) {
            *bad = 1;
        }
        localMax = fmaxf(localMax, raw / temperature);
    }
    float max = tandem_block_max<TANDEM_SAMPLE_THREADS>(localMax, maxScratch);
    double sum = 0.0;
    if (max > -INFINITY) {
        for (int t = threadIdx.x; t < vocab; t += TANDEM_SAMPLE_THREADS) {
            sum += tandem_weight(row[t], temperature, max);
        }
    }
    double total = tandem_block_sum<TANDEM_SAMPLE_THREADS>(sum, sumScratch);
    *maxOut = max;
    *totalOut = total;
}

// One token per row of logits[rows, vocab], drawn as Sampler.sample draws for a temperature alone: l ← l / T
// (f32), weights w_t = e^(l_t − max l) in double (1 where l_t is the max), u = the draw of `purpose` at (seed,
// streams[r], positions[r]), and the token is the first id, in increasing order, whose running sum of the
// positive weights exceeds u · Σ w. With `normalized`, the weights are w_t / Σ w and the target u itself: how
// DrafterModel draws a draft token from its distribution q (purpose DRAFT). The running sums are associated
// differently from the CPU's single loop (per-thread runs of ids, then the runs' totals in thread order), so
// the two agree except when the target falls within rounding of a boundary. out[r] = -1 when every logit is
// -infinity, -2 when one is NaN or +infinity (the Java side turns those into the CPU's exceptions). A block of
// TANDEM_SAMPLE_THREADS threads per row.
extern "C" __global__ void __launch_bounds__(TANDEM_SAMPLE_THREADS)
tandem_sample_temperature_f32(int* out, const float* logits, int rows, int vocab, float temperature,
                              unsigned long long seed, const long long* streams, const long long* positions, int purpose,
                              int normalized) {
    __shared__ float maxScratch[TANDEM_SAMPLE_THREADS / 32];
    __shared__ double sumScratch[TANDEM_SAMPLE_THREADS / 32];
    __shared__ double runTotal[TANDEM_SAMPLE_THREADS];
    __shared__ int bad, result;
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    const float* row = logits + (long long) r * vocab;
    if (threadIdx.x == 0) {
        bad = 0;
    }
    __syncthreads();
    float max;
    double total;
    tandem_row_weights(row, vocab, temperature, maxScratch, sumScratch, &bad, &max, &total);
    __syncthreads();  // bad, written by any thread, is read by all
    int token;
    if (bad) {
        token = -2;
    } else if (max == -INFINITY) {
        token = -1;
    } else {
        double u = tandem_uniform(seed, (unsigned long long) streams[r], (unsigned) positions[r], purpose, 0);
        token = normalized ? tandem_draw([&](int t) { return tandem_weight(row[t], temperature, max) / total; }, vocab, u, true,
                                         runTotal, &result)
                           : tandem_draw([&](int t) { return tandem_weight(row[t], temperature, max); }, vocab, u, false,
                                         runTotal, &result);
    }
    if (threadIdx.x == 0) {
        out[r] = token;
    }
}

// The longest draft chain speculative verification takes on the device (rows of per-row sums in shared memory).
#define TANDEM_VERIFY_MAX_DRAFT 63

// ChainVerifier.sample on the device, for a temperature alone: target[n + 1, vocab] holds the target's raw logits
// (row i predicts tokens[i]; row n the token after; only n rows with openEnded), draft[n, vocab] the draft's raw
// logits each draft token was drawn from (null for a deterministic drafter: q one-hot at the token). With
// p = the target's and q = the draft's distribution after the temperature (Sampler.distribution: weights over
// their sum), tokens[i] = x is accepted iff p(x) > 0 and (p(x) ≥ q(x) or u ≤ p(x) / q(x)), u the ACCEPT draw at
// position + i; at the first rejection the next token is drawn by inverse CDF from max(p − q, 0) (from p when
// that is all zero) with the RESIDUAL draw; when all are accepted, from p[n] with the SAMPLE draw at position + n
// (none with openEnded: next = -1). out[0] = accepted, out[1] = next; or out[0] = -2 (a row holds NaN or
// +infinity), -1 (a row is all -infinity), -3 (q(tokens[i]) = 0) with out[1] = the row (draft rows after the
// target's). The rows' sums are added in another order than the CPU's, so a decision can differ only where u
// falls within rounding of p / q or a cumulative boundary. One block of TANDEM_SAMPLE_THREADS threads.
extern "C" __global__ void __launch_bounds__(TANDEM_SAMPLE_THREADS)
tandem_verify_chain_f32(int* out, const float* target, const float* draft, const int* tokens, int n, int vocab,
                        float temperature, unsigned long long seed, unsigned long long stream, long long position,
                        int openEnded) {
    __shared__ float maxScratch[TANDEM_SAMPLE_THREADS / 32];
    __shared__ double sumScratch[TANDEM_SAMPLE_THREADS / 32];
    __shared__ double runTotal[TANDEM_SAMPLE_THREADS];
    __shared__ float maxP[TANDEM_VERIFY_MAX_DRAFT + 1], maxQ[TANDEM_VERIFY_MAX_DRAFT];
    __shared__ double totalP[TANDEM_VERIFY_MAX_DRAFT + 1], totalQ[TANDEM_VERIFY_MAX_DRAFT];
    __shared__ int bad, result, rejected;
    if (blockIdx.x != 0 || n < 0 || n > TANDEM_VERIFY_MAX_DRAFT) {
        return;
    }
    int rowsP = openEnded ? n : n + 1;
    int rowsQ = draft != nullptr ? n : 0;
    // Every row's max and sum first (the CPU computes every p before deciding): a bad row fails the call.
    for (int i = 0; i < rowsP + rowsQ; i++) {
        const float* row = i < rowsP ? target + (long long) i * vocab : draft + (long long) (i - rowsP) * vocab;
        if (threadIdx.x == 0) {
            bad = 0;
        }
        __syncthreads();
        float max;
        double total;
        tandem_row_weights(row, vocab, temperature, maxScratch, sumScratch, &bad, &max, &total);
        __syncthreads();
        if (bad || max == -INFINITY) {
            if (threadIdx.x == 0) {
                out[0] = bad ? -2 : -1;
                out[1] = i;
            }
            return;
        }
        if (threadIdx.x == 0) {
            if (i < rowsP) {
                maxP[i] = max;
                totalP[i] = total;
            } else {
                maxQ[i - rowsP] = max;
                totalQ[i - rowsP] = total;
            }
        }
        __syncthreads();
    }
    // The ratio tests, in order (thread 0): q(x) > 0 for every token first, as ChainVerifier checks.
    if (threadIdx.x == 0) {
        rejected = -1;
        for (int i = 0; i < rowsQ && rejected == -1; i++) {
            int x = tokens[i];
            if (!(tandem_weight(draft[(long long) i * vocab + x], temperature, maxQ[i]) / totalQ[i] > 0.0)) {
                out[0] = -3;
                out[1] = i;
                rejected = -2;
            }
        }
        for (int i = 0; i < n && rejected == -1; i++) {
            int x = tokens[i];
            double px = tandem_weight(target[(long long) i * vocab + x], temperature, maxP[i]) / totalP[i];
            double qx = draft != nullptr ? tandem_weight(draft[(long long) i * vocab + x], temperature, maxQ[i]) / totalQ[i] : 1.0;
            double u = tandem_uniform(seed, stream, (unsigned) (position + i), 2, 0);  // ACCEPT
            if (!(px > 0.0 && (px >= qx || u <= px / qx))) {
                rejected = i;
            }
        }
    }
    __syncthreads();
    int at = rejected;
    if (at == -2) {
        return;
    }
    int next = -1;
    if (at >= 0) {
        const float* p = target + (long long) at * vocab;
        const float* q = draft != nullptr ? draft + (long long) at * vocab : nullptr;
        float mp = maxP[at], mq = q != nullptr ? maxQ[at] : 0.0f;
        double tp = totalP[at], tq = q != nullptr ? totalQ[at] : 1.0;
        int x = tokens[at];
        double u = tandem_uniform(seed, stream, (unsigned) (position + at), 3, 0);  // RESIDUAL
        next = tandem_draw([&](int t) {
            double pt = tandem_weight(p[t], temperature, mp) / tp;
            double qt = q != nullptr ? tandem_weight(q[t], temperature, mq) / tq : (t == x ? 1.0 : 0.0);
            double d = pt - qt;
            return d > 0.0 ? d : 0.0;
        }, vocab, u, false, runTotal, &result);
        if (next < 0) {  // the residual is all zero (p ≈ q to rounding): draw from p
            next = tandem_draw([&](int t) { return tandem_weight(p[t], temperature, mp) / tp; }, vocab, u, false, runTotal,
                               &result);
        }
    } else if (!openEnded) {
        const float* p = target + (long long) n * vocab;
        float mp = maxP[n];
        double tp = totalP[n];
        double u = tandem_uniform(seed, stream, (unsigned) (position + n), 0, 0);  // SAMPLE
        next = tandem_draw([&](int t) { return tandem_weight(p[t], temperature, mp) / tp; }, vocab, u, false, runTotal, &result);
    }
    if (threadIdx.x == 0) {
        out[0] = at >= 0 ? at : n;
        out[1] = next;
    }
}
