// What every kernel file shares: element loads that widen bf16 and f16 to f32 exactly, the bf16 store
// that rounds to nearest even, and the fixed-order warp and block reductions that keep results
// batch-invariant (a value never depends on how many rows or blocks share a launch).
#pragma once

typedef unsigned short tandem_u16;

// IEEE half → f32, exact for every input (subnormals, infinities, NaN payloads), with integer operations
// only, so the host build and the GPU agree bit for bit.
__device__ __forceinline__ float tandem_half_to_float(tandem_u16 h) {
    unsigned sign = ((unsigned) h & 0x8000u) << 16;
    unsigned exponent = ((unsigned) h >> 10) & 0x1fu;
    unsigned mantissa = (unsigned) h & 0x3ffu;
    if (exponent == 0x1fu) {
        return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    }
    if (exponent == 0) {
        float magnitude = (float) mantissa * 5.9604644775390625e-8f;  // mantissa · 2^-24, exact
        return sign ? -magnitude : magnitude;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Weight element types the matmul, embedding and bias kernels read: load(p, i) widens element i;
// load8(p, i, v) widens elements i..i+7 with one or two 16-byte loads (p + i 16-byte aligned).
struct tandem_f32 {
    typedef float storage;
    __device__ __forceinline__ static float load(const float* p, long long i) { return p[i]; }
    __device__ __forceinline__ static void load8(const float* p, long long i, float* v) {
        float4 a = *reinterpret_cast<const float4*>(p + i), b = *reinterpret_cast<const float4*>(p + i + 4);
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
        v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    }
};
struct tandem_bf16 {
    typedef tandem_u16 storage;
    __device__ __forceinline__ static float load(const tandem_u16* p, long long i) {
        return __uint_as_float(((unsigned) p[i]) << 16);
    }
    __device__ __forceinline__ static void load8(const tandem_u16* p, long long i, float* v) {
        uint4 q = *reinterpret_cast<const uint4*>(p + i);
        unsigned words[4] = {q.x, q.y, q.z, q.w};
        for (int t = 0; t < 4; t++) {  // little-endian: the lower half is the earlier element
            v[2 * t] = __uint_as_float(words[t] << 16);
            v[2 * t + 1] = __uint_as_float(words[t] & 0xffff0000u);
        }
    }
};
struct tandem_f16 {
    typedef tandem_u16 storage;
    __device__ __forceinline__ static float load(const tandem_u16* p, long long i) { return tandem_half_to_float(p[i]); }
    __device__ __forceinline__ static void load8(const tandem_u16* p, long long i, float* v) {
        uint4 q = *reinterpret_cast<const uint4*>(p + i);
        unsigned words[4] = {q.x, q.y, q.z, q.w};
        for (int t = 0; t < 4; t++) {
            v[2 * t] = tandem_half_to_float((tandem_u16) (words[t] & 0xffffu));
            v[2 * t + 1] = tandem_half_to_float((tandem_u16) (words[t] >> 16));
        }
    }
};

// f32 → bf16, round to nearest even; a NaN stays a quiet NaN (DType.floatToBf16 in Java does the same).
__device__ __forceinline__ tandem_u16 tandem_float_to_bf16(float value) {
    unsigned bits = __float_as_uint(value);
    if (value != value) {
        return (tandem_u16) ((bits >> 16) | 0x0040u);
    }
    unsigned rounding = 0x7fffu + ((bits >> 16) & 1u);
    return (tandem_u16) ((bits + rounding) >> 16);
}

#define TANDEM_FULL_MASK 0xffffffffu

// `#pragma unroll n` for nvcc (GCC's own spelling in the host build, which would warn on nvcc's): for loops
// whose full unrolling would cost registers, e.g. a thread walking all 256 entries of a block's scratch.
#define TANDEM_PRAGMA(x) _Pragma(#x)
#if defined(__CUDACC__)
#define TANDEM_UNROLL(n) TANDEM_PRAGMA(unroll n)
#else
#define TANDEM_UNROLL(n) TANDEM_PRAGMA(GCC unroll n)
#endif

// The sum of v over a warp, the same in every lane: a butterfly over lane distances 16, 8, 4, 2, 1, so
// the order of the additions is fixed.
template <typename T>
__device__ __forceinline__ T tandem_warp_sum(T v) {
    for (int offset = 16; offset > 0; offset /= 2) {
        v += __shfl_xor_sync(TANDEM_FULL_MASK, v, offset);
    }
    return v;
}

__device__ __forceinline__ float tandem_warp_max(float v) {
    for (int offset = 16; offset > 0; offset /= 2) {
        v = fmaxf(v, __shfl_xor_sync(TANDEM_FULL_MASK, v, offset));
    }
    return v;
}

// The sum of v (float or double) over a block of THREADS threads (a multiple of 32, at most 1024), the same in every
// thread: each warp's butterfly, then warp 0 sums the warp totals in warp order. Every thread of the block
// must call it; scratch holds THREADS / 32 values and may be reused once this returns.
template <int THREADS, typename T>
__device__ __forceinline__ T tandem_block_sum(T v, T* scratch) {
    v = tandem_warp_sum(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    T total = 0;
    for (int w = 0; w < THREADS / 32; w++) {
        total += scratch[w];
    }
    __syncthreads();
    return total;
}

template <int THREADS>
__device__ __forceinline__ float tandem_block_max(float v, float* scratch) {
    v = tandem_warp_max(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    float best = scratch[0];
    for (int w = 1; w < THREADS / 32; w++) {
        best = fmaxf(best, scratch[w]);
    }
    __syncthreads();
    return best;
}
