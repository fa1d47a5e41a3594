// Weights in llama.cpp's block formats, read in place: matmul and embedding gather for Q8_0, Q4_0, Q4_K
// and Q6_K (DType's layouts, ggml's block_q8_0, block_q4_0, block_q4_K and block_q6_K: little-endian, no
// padding, blocks of 34, 18, 144 and 210 bytes, so a block is only 2-byte aligned).
//
// Every weight decodes to the exact float QuantBlocks (Java, the reference) gives: d·q, d·(q − 8) and
// (d·sc)·q are exact in f32 (at most 23 significant bits), and Q4_K's (d·sc)·q − dmin·m rounds once, at the
// subtraction, whether or not the compiler fuses it (the product is exact), so the GPU, the host build and
// QuantBlocks agree bit for bit on every weight.
//
// A row of k values is k / 32 groups of 32 consecutive values (a Q8_0 or Q4_0 block is one group, a Q4_K or
// Q6_K block eight). The matmul runs like matmul.cuh's: a warp per weight row, activation rows
// TANDEM_MATMUL_ROWS at a time; lane l owns groups l, l + 32, l + 64, ..., sums each group's 32 products in
// increasing order with fmaf, and the warp adds its 32 partial sums by a butterfly. The order depends only
// on k, so a row's result is the same alone or among any number of rows (batch invariance), and the same on
// every path below. The warp copies each chunk of 32 groups (at most 1,088 bytes, 32 Q8_0 blocks) into its
// own shared memory with the widest loads the chunk's address and length allow (16-byte loads whenever a row
// is a multiple of 8 blocks, as in every model's shapes), so the weights are read from memory coalesced
// and whole, then each lane decodes its group from shared memory.
#pragma once

#include "common.cuh"
#include "matmul.cuh"

// The bytes of one chunk of 32 groups in the widest format: 32 Q8_0 blocks (Q4_0: 576, Q4_K: 4 blocks, 576,
// Q6_K: 4 blocks, 840).
#define TANDEM_QUANT_CHUNK_BYTES 1088

__device__ __forceinline__ unsigned tandem_u16_at(const unsigned char* p) {
    return *reinterpret_cast<const tandem_u16*>(p);
}

// Each format: BYTES per block, GROUPS of 32 values per block; decode(block, g, v) writes values 32g ..
// 32g + 31 of the block into v; element(block, i) returns value i. block is 2-byte aligned.
struct tandem_q8_0 {
    static const int BYTES = 34, GROUPS = 1;
    __device__ __forceinline__ static void decode(const unsigned char* p, int, float* v) {
        float d = tandem_half_to_float((tandem_u16) tandem_u16_at(p));
        for (int t = 0; t < 16; t++) {
            unsigned h = tandem_u16_at(p + 2 + 2 * t);
            v[2 * t] = (float) (signed char) (h & 0xffu) * d;
            v[2 * t + 1] = (float) (signed char) (h >> 8) * d;
        }
    }
    __device__ __forceinline__ static float element(const unsigned char* p, int i) {
        return (float) (signed char) p[2 + i] * tandem_half_to_float((tandem_u16) tandem_u16_at(p));
    }
};

struct tandem_q4_0 {
    static const int BYTES = 18, GROUPS = 1;
    __device__ __forceinline__ static void decode(const unsigned char* p, int, float* v) {
        float d = tandem_half_to_float((tandem_u16) tandem_u16_at(p));
        for (int t = 0; t < 8; t++) {
            unsigned h = tandem_u16_at(p + 2 + 2 * t);
            unsigned b0 = h & 0xffu, b1 = h >> 8;  // bytes 2t and 2t + 1: elements 2t, 2t + 1 low, + 16 high
            v[2 * t] = (float) ((int) (b0 & 0xfu) - 8) * d;
            v[2 * t + 1] = (float) ((int) (b1 & 0xfu) - 8) * d;
            v[2 * t + 16] = (float) ((int) (b0 >> 4) - 8) * d;
            v[2 * t + 17] = (float) ((int) (b1 >> 4) - 8) * d;
        }
    }
    __device__ __forceinline__ static float element(const unsigned char* p, int i) {
        unsigned b = p[2 + (i & 15)];
        unsigned q = i < 16 ? b & 0xfu : b >> 4;
        return (float) ((int) q - 8) * tandem_half_to_float((tandem_u16) tandem_u16_at(p));
    }
};

// Q4_K: f16 d and dmin, twelve bytes of 6-bit scales and mins (ggml's get_scale_min_k4), 128 bytes of
// nibbles; group g (scale and min g) is the low nibbles of bytes 32·(g/2) .. + 31 for even g, the high for odd.
struct tandem_q4_k {
    static const int BYTES = 144, GROUPS = 8;
    __device__ __forceinline__ static void scale_min(const unsigned char* s, int j, int* sc, int* mn) {
        if (j < 4) {
            *sc = s[j] & 63;
            *mn = s[j + 4] & 63;
        } else {
            *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
            *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    __device__ __forceinline__ static void decode(const unsigned char* p, int g, float* v) {
        int sc, mn;
        scale_min(p + 4, g, &sc, &mn);
        float d1 = tandem_half_to_float((tandem_u16) tandem_u16_at(p)) * (float) sc;
        float m1 = tandem_half_to_float((tandem_u16) tandem_u16_at(p + 2)) * (float) mn;
        const unsigned char* qs = p + 16 + 32 * (g >> 1);
        int shift = 4 * (g & 1);
        for (int t = 0; t < 16; t++) {
            unsigned h = tandem_u16_at(qs + 2 * t);
            v[2 * t] = d1 * (float) ((h >> shift) & 0xfu) - m1;
            v[2 * t + 1] = d1 * (float) ((h >> (8 + shift)) & 0xfu) - m1;
        }
    }
    __device__ __forceinline__ static float element(const unsigned char* p, int i) {
        int g = i >> 5, sc, mn;
        scale_min(p + 4, g, &sc, &mn);
        float d1 = tandem_half_to_float((tandem_u16) tandem_u16_at(p)) * (float) sc;
        float m1 = tandem_half_to_float((tandem_u16) tandem_u16_at(p + 2)) * (float) mn;
        unsigned q = (p[16 + 32 * (g >> 1) + (i & 31)] >> (4 * (g & 1))) & 0xfu;
        return d1 * (float) q - m1;
    }
};

// Q6_K: 128 bytes of low nibbles (ql), 64 of high 2-bit pairs (qh), 16 int8 scales, f16 d. Group g is
// half h = g/4 and quarter r = g%4 of ggml's dequantize_row_q6_K: low nibble (r < 2) or high (r ≥ 2) of
// ql[64h + 32(r%2) + l], bits 2r, 2r + 1 of qh[32h + l], scale sc[8h + 2r + l/16].
struct tandem_q6_k {
    static const int BYTES = 210, GROUPS = 8;
    __device__ __forceinline__ static float value(const unsigned char* p, int g, int l, float d) {
        int h = g >> 2, r = g & 3;
        unsigned lo = (p[64 * h + 32 * (r & 1) + l] >> (4 * (r >> 1))) & 0xfu;
        unsigned hi = (p[128 + 32 * h + l] >> (2 * r)) & 3u;
        int q = (int) (lo | (hi << 4)) - 32;
        float sc = (float) (signed char) p[192 + 8 * h + 2 * r + (l >> 4)];
        return d * sc * (float) q;
    }
    __device__ __forceinline__ static void decode(const unsigned char* p, int g, float* v) {
        float d = tandem_half_to_float((tandem_u16) tandem_u16_at(p + 208));
        for (int l = 0; l < 32; l++) {
            v[l] = value(p, g, l, d);
        }
    }
    __device__ __forceinline__ static float element(const unsigned char* p, int i) {
        return value(p, i >> 5, i & 31, tandem_half_to_float((tandem_u16) tandem_u16_at(p + 208)));
    }
};

// Copies `bytes` from src to the 16-byte aligned dst, the warp's lanes taking consecutive words, with the
// widest words that both src and bytes are multiples of (the same choice in every lane).
__device__ __forceinline__ void tandem_quant_stage(unsigned char* dst, const unsigned char* src, int bytes, int lane) {
    unsigned long long alignment = (unsigned long long) src | (unsigned long long) bytes;
    if (alignment % 16 == 0) {
        for (int i = lane; i < bytes / 16; i += 32) {
            reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
        }
    } else if (alignment % 8 == 0) {
        for (int i = lane; i < bytes / 8; i += 32) {
            reinterpret_cast<uint2*>(dst)[i] = reinterpret_cast<const uint2*>(src)[i];
        }
    } else if (alignment % 4 == 0) {
        for (int i = lane; i < bytes / 4; i += 32) {
            reinterpret_cast<unsigned*>(dst)[i] = reinterpret_cast<const unsigned*>(src)[i];
        }
    } else {
        for (int i = lane; i < bytes / 2; i += 32) {
            reinterpret_cast<tandem_u16*>(dst)[i] = reinterpret_cast<const tandem_u16*>(src)[i];
        }
    }
}

// out[n, m] = x[n, k] · w[m, k]ᵀ, w rows of k / (32·GROUPS) blocks of Q; k a multiple of 32·GROUPS (CudaBackend
// checks). Launch: ⌈m / TANDEM_MATMUL_WARPS⌉ blocks of TANDEM_MATMUL_THREADS threads.
template <typename Q>
__device__ __forceinline__ void matmul_quant(float* out, const float* x, const unsigned char* w, int n, int k, int m) {
    __shared__ uint4 staging[TANDEM_MATMUL_WARPS][TANDEM_QUANT_CHUNK_BYTES / 16];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int column = blockIdx.x * TANDEM_MATMUL_WARPS + warp;
    if (column >= m) {
        return;  // the whole warp leaves together; only warp-level syncs follow
    }
    int groups = k / 32;
    long long rowBytes = (long long) (groups / Q::GROUPS) * Q::BYTES;
    const unsigned char* row = w + (long long) column * rowBytes;
    unsigned char* chunk = reinterpret_cast<unsigned char*>(staging[warp]);
    // The same in every thread of the launch; both loads give the same values, so the same sums.
    bool vectorized = ((unsigned long long) x % 16) == 0;
    for (int r0 = 0; r0 < n; r0 += TANDEM_MATMUL_ROWS) {
        float acc[TANDEM_MATMUL_ROWS];
        for (int j = 0; j < TANDEM_MATMUL_ROWS; j++) {
            acc[j] = 0.0f;
        }
        for (int g0 = 0; g0 < groups; g0 += 32) {
            int count = groups - g0 < 32 ? groups - g0 : 32;  // a multiple of GROUPS: chunks start on a block
            __syncwarp();  // every lane is done with the previous chunk
            tandem_quant_stage(chunk, row + (long long) (g0 / Q::GROUPS) * Q::BYTES, count / Q::GROUPS * Q::BYTES, lane);
            __syncwarp();
            if (lane < count) {
                float v[32];
                Q::decode(chunk + (lane / Q::GROUPS) * Q::BYTES, lane % Q::GROUPS, v);
                long long i = 32LL * (g0 + lane);
                for (int j = 0; j < TANDEM_MATMUL_ROWS; j++) {
                    if (r0 + j < n) {
                        const float* xr = x + (long long) (r0 + j) * k + i;
                        float a = acc[j];
                        if (vectorized) {
                            for (int t = 0; t < 8; t++) {
                                float4 q = reinterpret_cast<const float4*>(xr)[t];
                                a = fmaf(q.x, v[4 * t], a);
                                a = fmaf(q.y, v[4 * t + 1], a);
                                a = fmaf(q.z, v[4 * t + 2], a);
                                a = fmaf(q.w, v[4 * t + 3], a);
                            }
                        } else {
                            for (int t = 0; t < 32; t++) {
                                a = fmaf(xr[t], v[t], a);
                            }
                        }
                        acc[j] = a;
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
tandem_matmul_q8_0(float* out, const float* x, const unsigned char* w, int n, int k, int m) {
    matmul_quant<tandem_q8_0>(out, x, w, n, k, m);
}
extern "C" __global__ void __launch_bounds__(TANDEM_MATMUL_THREADS)
tandem_matmul_q4_0(float* out, const float* x, const unsigned char* w, int n, int k, int m) {
    matmul_quant<tandem_q4_0>(out, x, w, n, k, m);
}
extern "C" __global__ void __launch_bounds__(TANDEM_MATMUL_THREADS)
tandem_matmul_q4_k(float* out, const float* x, const unsigned char* w, int n, int k, int m) {
    matmul_quant<tandem_q4_k>(out, x, w, n, k, m);
}
extern "C" __global__ void __launch_bounds__(TANDEM_MATMUL_THREADS)
tandem_matmul_q6_k(float* out, const float* x, const unsigned char* w, int n, int k, int m) {
    matmul_quant<tandem_q6_k>(out, x, w, n, k, m);
}

// out[r, :] = the decoded row ids[r] of a table of rows of `width` values (a multiple of 32·GROUPS), for
// r < rows; a block per row, its threads striding over the width. An id outside [0, vocab) leaves the row
// NaN (the Java side refuses such ids first), as embedding_gather does.
template <typename Q>
__device__ __forceinline__ void embedding_gather_quant(float* out, const unsigned char* table, const int* ids, int rows,
                                                       int width, int vocab) {
    int r = blockIdx.x;
    if (r >= rows) {
        return;
    }
    int id = ids[r];
    bool valid = id >= 0 && id < vocab;
    const int per = 32 * Q::GROUPS;
    const unsigned char* row = table + (valid ? (long long) id * (width / per) * Q::BYTES : 0);
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        out[(long long) r * width + c] = valid ? Q::element(row + (long long) (c / per) * Q::BYTES, c % per)
                                               : __int_as_float(0x7fc00000);
    }
}
extern "C" __global__ void tandem_embedding_gather_q8_0(float* out, const unsigned char* table, const int* ids, int rows,
                                                        int width, int vocab) {
    embedding_gather_quant<tandem_q8_0>(out, table, ids, rows, width, vocab);
}
extern "C" __global__ void tandem_embedding_gather_q4_0(float* out, const unsigned char* table, const int* ids, int rows,
                                                        int width, int vocab) {
    embedding_gather_quant<tandem_q4_0>(out, table, ids, rows, width, vocab);
}
extern "C" __global__ void tandem_embedding_gather_q4_k(float* out, const unsigned char* table, const int* ids, int rows,
                                                        int width, int vocab) {
    embedding_gather_quant<tandem_q4_k>(out, table, ids, rows, width, vocab);
}
extern "C" __global__ void tandem_embedding_gather_q6_k(float* out, const unsigned char* table, const int* ids, int rows,
                                                        int width, int vocab) {
    embedding_gather_quant<tandem_q6_k>(out, table, ids, rows, width, vocab);
}
