// Tests of cuda_host.h, the host (fiber) emulation of CUDA blocks: barriers, warp intrinsics, early returns,
// deadlock reporting, atomics, 3-D blocks, and the cost per block. Plain main; exits non-zero on a failure.
// Built and run (normally, under ASan+UBSan, and with the ucontext fallback, in both fiber orders) by
// test-host-runtime.sh.
#include "cuda_host.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {
int failures = 0;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            std::printf(__VA_ARGS__);                                       \
            std::printf("\n");                                              \
        }                                                                   \
    } while (0)

template <typename... A>
bool go(const char* name, void (*kernel)(A...), dim3 grid, dim3 block, std::type_identity_t<A>... args) {
    void* params[] = {&args..., nullptr};
    return tandem_host::launch(kernel, grid, block, params, name);
}

constexpr unsigned FULL = 0xffffffffu;
}  // namespace

// ---- kernels --------------------------------------------------------------------------------------------

// Sum of 256 ints per block: shared memory and a __syncthreads tree.
__global__ void block_reduce(const int* in, int* out) {
    __shared__ int partial[256];
    int t = threadIdx.x;
    partial[t] = in[blockIdx.x * 256 + t];
    __syncthreads();
    for (int half = 128; half > 0; half /= 2) {
        if (t < half) partial[t] += partial[t + half];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = partial[0];
}

// Reads a neighbour's shared slot without a __syncthreads: a race that the fiber order decides.
__global__ void racy_neighbour(int* out) {
    __shared__ int s[64];
    int t = threadIdx.x;
    s[t] = t + 1;
    out[t] = s[(t + 1) % 64];
}

// Warp reductions and the other shuffles; one block of 64 threads (two warps).
__global__ void warp_ops(const float* in, float* xor_sum, float* down_sum, int* misc, double* wide,
                         long long* wide_int) {
    int t = threadIdx.x;
    float v = in[t];
    float x = v;
    for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(FULL, x, offset);
    xor_sum[t] = x;
    float d = v;
    for (unsigned offset = 16; offset > 0; offset /= 2) d += __shfl_down_sync(FULL, d, offset);
    down_sum[t] = d;
    int* m = misc + t * 8;
    m[0] = __shfl_down_sync(FULL, t, 5u);
    m[1] = __shfl_sync(FULL, t, 3);
    m[2] = __shfl_up_sync(FULL, t, 2u);
    m[3] = __shfl_xor_sync(FULL, t, 16, 16);
    m[4] = __shfl_sync(FULL, t, 3, 8);
    m[5] = static_cast<int>(__ballot_sync(FULL, t % 3 == 0));
    m[6] = __any_sync(FULL, t == 40) * 2 + __all_sync(FULL, t < 64);
    m[7] = static_cast<int>(__shfl_xor_sync(FULL, static_cast<unsigned>(t) * 3u, 1));
    __syncwarp();
    wide[t] = __shfl_xor_sync(FULL, 0.5 + t, 31);
    wide_int[t] = __shfl_sync(FULL, (1ll << 40) + t, 31 - (t & 31));
}

// Only warp 0 shuffles; the other warps go straight to the barrier.
__global__ void warp0_only(const float* in, float* out) {
    __shared__ float total;
    int t = threadIdx.x;
    if (t / warpSize == 0) {
        float v = in[t];
        for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(FULL, v, offset);
        if (t == 0) total = v;
    }
    __syncthreads();
    out[t] = total;
}

// Threads return early, before the first barrier and between barriers; exited threads must not hold the
// barrier or the warp syncs up. Warp 2 returns entirely.
__global__ void early_return(int* out, unsigned* ballots) {
    __shared__ int s[256];
    int t = threadIdx.x;
    if (t % 3 == 0 || t / 32 == 2) return;
    s[t] = t;
    __syncthreads();
    if (t % 5 == 0) return;
    __syncwarp();
    ballots[t] = __ballot_sync(FULL, 1);
    __syncthreads();
    int sum = 0;
    for (int u = 0; u < 256; u++) {
        if (u % 3 != 0 && u / 32 != 2) sum += s[u];
    }
    out[t] = sum;
}

// Thread 0 alone reaches the barrier; the rest have returned.
__global__ void lone_barrier(int* out) {
    if (threadIdx.x != 0) return;
    __syncthreads();
    out[blockIdx.x] = 7;
}

// In block 1, warp 0's low lanes wait at __syncthreads and its high lanes at a shuffle: a deadlock.
__global__ void deadlock(int* out) {
    int t = threadIdx.x;
    if (blockIdx.x == 1 && t < 32) {
        if (t < 16) {
            __syncthreads();
        } else {
            out[1000 + t] = __shfl_xor_sync(FULL, t, 1);
        }
    } else {
        __syncthreads();
    }
    out[blockIdx.x * 64 + t] = 1;
}

// A half-warp mask: not emulated, so reported.
__global__ void partial_mask(int* out) {
    int t = threadIdx.x;
    out[t] = __shfl_xor_sync(0x0000ffffu, t, 1);
}

__global__ void atomics(int* count, float* fsum, unsigned long long* wide, int* maximum, int* seen) {
    int t = threadIdx.x + blockIdx.x * blockDim.x;
    int old = atomicAdd(count, 1);
    seen[old] += 1;
    atomicAdd(fsum, 0.5f);
    atomicAdd(wide, 1ull << 33);
    atomicMax(maximum, (t * 7919) % 10007);
}

// 3-D blocks: indices, a shared-memory sum over the linear thread id, and warp sums across y and z.
__global__ void shape_3d(int* ids, int* block_sums, int* warp_sums) {
    __shared__ int s[64];
    int n = blockDim.x * blockDim.y * blockDim.z;
    int t = threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y;
    int b = blockIdx.x + blockIdx.y * gridDim.x + blockIdx.z * gridDim.x * gridDim.y;
    ids[b * n + t] = static_cast<int>(threadIdx.x | threadIdx.y << 8 | threadIdx.z << 16 | blockIdx.x << 24 |
                                      blockIdx.y << 27 | blockIdx.z << 30);
    s[t] = t;
    __syncthreads();
    if (t == 0) {
        int sum = 0;
        for (int u = 0; u < n; u++) sum += s[u];
        block_sums[b] = sum;
    }
    // A partial last warp (n % 32 lanes): offsets below 16 stay inside the existing lanes when n % 32 == 16.
    int v = t;
    for (int offset = (n % 32 == 16 ? 8 : 16); offset > 0; offset /= 2) v += __shfl_xor_sync(FULL, v, offset);
    warp_sums[b * n + t] = v;
}

// More than six integer arguments (some passed on the stack) and a large local array.
__global__ void many_args(int a, long long b, int c, int d, int e, int f, int g, short h, int* out) {
    volatile int scratch[4096];
    int t = threadIdx.x;
    for (int i = 0; i < 4096; i++) scratch[i] = i + t;
    __syncthreads();
    int sum = 0;
    for (int i = 0; i < 4096; i += 512) sum += scratch[i];
    // The x86-64 ABI gives arrays of 16 bytes or more 16-byte alignment: wrong if a fiber started misaligned.
    // (Read back through a volatile, or the compiler folds the test to true.)
    volatile std::uintptr_t address = reinterpret_cast<std::uintptr_t>(&scratch[0]);
    bool aligned = address % 16 == 0;
    out[t] = aligned ? a + static_cast<int>(b) + c + d + e + f + g + h + sum : -999;
}

// The timed kernel: 256 threads, two barriers.
__global__ void two_barriers(const float* in, float* out) {
    __shared__ float s[256];
    int t = threadIdx.x;
    long long base = static_cast<long long>(blockIdx.x) * 256;
    s[t] = in[base + t];
    __syncthreads();
    float v = s[255 - t] + s[(t + 1) & 255];
    __syncthreads();
    s[t] = v;
    out[base + t] = v;
}

// Timed too: a warp-shuffle block reduction (five shuffles, then one barrier).
__global__ void shuffle_reduce(const float* in, float* out) {
    __shared__ float warp_total[8];
    int t = threadIdx.x;
    float v = in[static_cast<long long>(blockIdx.x) * 256 + t];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(FULL, v, offset);
    if (t % 32 == 0) warp_total[t / 32] = v;
    __syncthreads();
    if (t == 0) {
        float sum = 0;
        for (int w = 0; w < 8; w++) sum += warp_total[w];
        out[blockIdx.x] = sum;
    }
}

__global__ void big_block(int* out) {
    __shared__ int s[1024];
    int t = threadIdx.x;
    s[t] = t;
    __syncthreads();
    out[t] = s[1023 - t] + __shfl_down_sync(FULL, t, 1u);
}

// ---- tests ------------------------------------------------------------------------------------------------

namespace {
void test_block_reduce() {
    const int blocks = 37;
    std::vector<int> in(blocks * 256), out(blocks, -1);
    for (int i = 0; i < blocks * 256; i++) in[i] = (i * 37) % 1001 - 500;
    CHECK(go("block_reduce", block_reduce, dim3{blocks}, dim3{256}, in.data(), out.data()), "launch failed");
    for (int b = 0; b < blocks; b++) {
        int want = 0;
        for (int t = 0; t < 256; t++) want += in[b * 256 + t];
        CHECK(out[b] == want, "block %d: %d, want %d", b, out[b], want);
    }
}

void test_racy_order() {
    std::vector<int> out(64, -1);
    CHECK(go("racy_neighbour", racy_neighbour, dim3{1}, dim3{64}, out.data()), "launch failed");
    // Zero-initialised shared statics, first launch of this kernel.
    bool reversed = tandem_host::fiber_order_reversed();
    for (int t = 0; t < 64; t++) {
        int want = !reversed ? (t == 63 ? 1 : 0) : (t == 63 ? 0 : t + 2);
        CHECK(out[t] == want, "%s order, thread %d: %d, want %d", reversed ? "reverse" : "forward", t, out[t], want);
    }
    std::printf("racy kernel (missing __syncthreads), %s fiber order: %d of 64 threads read a stale value\n",
                reversed ? "reverse" : "forward", reversed ? 1 : 63);
}

void test_warp_ops() {
    std::vector<float> in(64), xs(64), ds(64);
    std::vector<int> misc(64 * 8);
    std::vector<double> wide(64);
    std::vector<long long> wide_int(64);
    for (int t = 0; t < 64; t++) in[t] = static_cast<float>((t * 13) % 17);
    CHECK(go("warp_ops", warp_ops, dim3{1}, dim3{64}, in.data(), xs.data(), ds.data(), misc.data(), wide.data(),
             wide_int.data()),
          "launch failed");
    for (int t = 0; t < 64; t++) {
        int base = t & ~31, lane = t & 31;
        float warp_sum = 0;
        for (int l = 0; l < 32; l++) warp_sum += in[base + l];
        CHECK(xs[t] == warp_sum, "xor reduce, thread %d: %g, want %g", t, xs[t], warp_sum);
        // __shfl_down_sync: lane l ends with the sum over lanes l .. of a tree; lane 0 with the warp sum.
        if (lane == 0) CHECK(ds[t] == warp_sum, "down reduce, thread %d: %g, want %g", t, ds[t], warp_sum);
        const int* m = &misc[t * 8];
        CHECK(m[0] == (lane + 5 < 32 ? t + 5 : t), "shfl_down 5, thread %d: %d", t, m[0]);
        CHECK(m[1] == base + 3, "shfl 3, thread %d: %d", t, m[1]);
        CHECK(m[2] == (lane >= 2 ? t - 2 : t), "shfl_up 2, thread %d: %d", t, m[2]);
        CHECK(m[3] == (lane >= 16 ? t - 16 : t), "shfl_xor 16 width 16, thread %d: %d", t, m[3]);
        CHECK(m[4] == (t & ~7) + 3, "shfl 3 width 8, thread %d: %d", t, m[4]);
        unsigned ballot = 0;
        for (int l = 0; l < 32; l++) {
            if ((base + l) % 3 == 0) ballot |= 1u << l;
        }
        CHECK(static_cast<unsigned>(m[5]) == ballot, "ballot, thread %d: %08x, want %08x", t, m[5], ballot);
        CHECK(m[6] == ((base == 32 ? 2 : 0) + 1), "any/all, thread %d: %d", t, m[6]);
        CHECK(m[7] == (t ^ 1) * 3, "shfl_xor unsigned, thread %d: %d", t, m[7]);
        CHECK(wide[t] == 0.5 + (t ^ 31), "double shuffle, thread %d: %g", t, wide[t]);
        CHECK(wide_int[t] == (1ll << 40) + base + (31 - lane), "long long shuffle, thread %d: %lld", t, wide_int[t]);
    }
    // The down-reduction tree in full: lane l sums lanes l, l+1, ... as long as their sources are in range.
    for (int w = 0; w < 2; w++) {
        std::vector<float> d(in.begin() + w * 32, in.begin() + w * 32 + 32);
        for (int offset = 16; offset > 0; offset /= 2) {
            std::vector<float> next = d;
            for (int l = 0; l < 32; l++) next[l] = d[l] + (l + offset < 32 ? d[l + offset] : d[l]);
            d = next;
        }
        for (int l = 0; l < 32; l++) {
            CHECK(ds[w * 32 + l] == d[l], "down reduce, thread %d: %g, want %g", w * 32 + l, ds[w * 32 + l], d[l]);
        }
    }
}

void test_warp0_only() {
    std::vector<float> in(256), out(256, -1);
    float want = 0;
    for (int t = 0; t < 256; t++) in[t] = static_cast<float>(t % 7);
    for (int t = 0; t < 32; t++) want += in[t];
    CHECK(go("warp0_only", warp0_only, dim3{3}, dim3{256}, in.data(), out.data()), "launch failed");
    for (int t = 0; t < 256; t++) CHECK(out[t] == want, "thread %d: %g, want %g", t, out[t], want);
}

void test_early_return() {
    std::vector<int> out(256, -1);
    std::vector<unsigned> ballots(256, 0);
    CHECK(go("early_return", early_return, dim3{2}, dim3{256}, out.data(), ballots.data()), "launch failed");
    int want = 0;
    for (int u = 0; u < 256; u++) {
        if (u % 3 != 0 && u / 32 != 2) want += u;
    }
    for (int t = 0; t < 256; t++) {
        bool finishes = t % 3 != 0 && t / 32 != 2 && t % 5 != 0;
        CHECK(out[t] == (finishes ? want : -1), "thread %d: %d", t, out[t]);
        if (finishes) {
            unsigned live = 0;
            for (int l = 0; l < 32; l++) {
                int u = (t & ~31) + l;
                if (u % 3 != 0 && u % 5 != 0) live |= 1u << l;
            }
            CHECK(ballots[t] == live, "ballot, thread %d: %08x, want %08x", t, ballots[t], live);
        }
    }
    std::vector<int> lone(4, 0);
    CHECK(go("lone_barrier", lone_barrier, dim3{4}, dim3{128}, lone.data()), "launch failed");
    for (int b = 0; b < 4; b++) CHECK(lone[b] == 7, "lone barrier, block %d: %d", b, lone[b]);
}

void test_failures() {
    std::printf("-- two launch failures are expected next --\n");
    std::vector<int> out(2048, 0);
    bool ok = go("deadlock", deadlock, dim3{3}, dim3{64}, out.data());
    const std::string& error = tandem_host::last_error();
    CHECK(!ok, "a deadlock was not reported");
    CHECK(error.find("deadlock") != std::string::npos && error.find("block (1, 0, 0)") != std::string::npos,
          "error: %s", error.c_str());
    for (int t = 0; t < 64; t++) CHECK(out[t] == 1, "block 0 (before the deadlock), thread %d: %d", t, out[t]);
    for (int t = 0; t < 64; t++) CHECK(out[128 + t] == 0, "block 2 (after the deadlock) ran, thread %d", t);

    ok = go("partial_mask", partial_mask, dim3{1}, dim3{32}, out.data());
    CHECK(!ok, "a partial mask was not reported");
    CHECK(tandem_host::last_error().find("mask") != std::string::npos, "error: %s", tandem_host::last_error().c_str());
    std::printf("-- end of expected failures --\n");

    // The stacks of the blocked fibers were dropped; launches go on working.
    test_block_reduce();
    CHECK(tandem_host::last_error().empty(), "error after a good launch: %s", tandem_host::last_error().c_str());
}

void test_atomics() {
    const int blocks = 64, threads = 256, n = blocks * threads;
    int count = 0, maximum = -1;
    float fsum = 0;
    unsigned long long wide = 5;
    std::vector<int> seen(n, 0);
    CHECK(go("atomics", atomics, dim3{blocks}, dim3{threads}, &count, &fsum, &wide, &maximum, seen.data()),
          "launch failed");
    int want_max = 0;
    for (int t = 0; t < n; t++) want_max = std::max(want_max, (t * 7919) % 10007);
    CHECK(count == n, "count %d", count);
    CHECK(fsum == 0.5f * n, "float sum %g", fsum);
    CHECK(wide == 5 + (static_cast<unsigned long long>(n) << 33), "wide sum %llu", wide);
    CHECK(maximum == want_max, "max %d, want %d", maximum, want_max);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += seen[i] != 1;
    CHECK(bad == 0, "%d old values of atomicAdd not seen exactly once", bad);
}

void test_shape_3d(dim3 block, dim3 grid) {
    int n = static_cast<int>(block.x * block.y * block.z), blocks = static_cast<int>(grid.x * grid.y * grid.z);
    std::vector<int> ids(n * blocks, -1), sums(blocks, -1), warp_sums(n * blocks, -1);
    CHECK(go("shape_3d", shape_3d, grid, block, ids.data(), sums.data(), warp_sums.data()), "launch failed");
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                int b = static_cast<int>(bx + by * grid.x + bz * grid.x * grid.y);
                CHECK(sums[b] == n * (n - 1) / 2, "block %d sum %d", b, sums[b]);
                for (unsigned z = 0; z < block.z; z++)
                    for (unsigned y = 0; y < block.y; y++)
                        for (unsigned x = 0; x < block.x; x++) {
                            int t = static_cast<int>(x + y * block.x + z * block.x * block.y);
                            int want = static_cast<int>(x | y << 8 | z << 16 | bx << 24 | by << 27 | bz << 30);
                            CHECK(ids[b * n + t] == want, "block %d thread %d: id %08x, want %08x", b, t,
                                  ids[b * n + t], want);
                            // Groups of 16 lanes when the last warp is a half warp, else whole warps;
                            // a block of fewer lanes reads lanes that do not exist (undefined in CUDA).
                            int group = n % 32 == 16 ? 16 : 32, base = t & ~(group - 1), want_sum = 0;
                            if (n % 32 != 0 && n % 32 != 16) continue;
                            for (int l = 0; l < group; l++) want_sum += base + l;
                            CHECK(warp_sums[b * n + t] == want_sum, "block %d thread %d: warp sum %d, want %d", b, t,
                                  warp_sums[b * n + t], want_sum);
                        }
            }
}

void test_many_args_and_big_blocks() {
    std::vector<int> out(1024, -1);
    CHECK(go("many_args", many_args, dim3{2}, dim3{96}, 1, 2ll, 3, 4, 5, 6, 7, short{8}, out.data()),
          "launch failed");
    for (int t = 0; t < 96; t++) {
        int want = 36;
        for (int i = 0; i < 4096; i += 512) want += i + t;
        CHECK(out[t] == want, "many_args, thread %d: %d, want %d", t, out[t], want);
    }
    CHECK(go("big_block", big_block, dim3{2}, dim3{1024}, out.data()), "launch failed");
    for (int t = 0; t < 1024; t++) {
        int want = 1023 - t + ((t & 31) == 31 ? t : t + 1);
        CHECK(out[t] == want, "big_block, thread %d: %d, want %d", t, out[t], want);
    }
}

void test_other_os_thread() {
    std::thread other([] { test_block_reduce(); });
    other.join();
}

double time_per_block_us(const char* name, void (*kernel)(const float*, float*), int blocks) {
    std::vector<float> in(static_cast<std::size_t>(blocks) * 256), out(static_cast<std::size_t>(blocks) * 256);
    for (std::size_t i = 0; i < in.size(); i++) in[i] = static_cast<float>(i % 101);
    CHECK(go(name, kernel, dim3{64}, dim3{256}, in.data(), out.data()), "warm-up failed");
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        auto start = std::chrono::steady_clock::now();
        bool ok = go(name, kernel, dim3{static_cast<unsigned>(blocks)}, dim3{256}, in.data(), out.data());
        double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
        CHECK(ok, "timed launch failed");
        best = std::min(best, us / blocks);
    }
    if (kernel == two_barriers) {
        for (int b = 0; b < blocks; b += 511) {
            for (int t = 0; t < 256; t++) {
                std::size_t base = static_cast<std::size_t>(b) * 256;
                float want = in[base + 255 - t] + in[base + ((t + 1) & 255)];
                CHECK(out[base + t] == want, "two_barriers block %d thread %d", b, t);
            }
        }
    }
    std::printf("%-15s %d blocks x 256 threads: %.2f us per block\n", name, blocks, best);
    return best;
}
}  // namespace

// Argument: the blocks of the timed launches (4096; fewer for the slow ucontext fallback).
int main(int argc, char** argv) {
    int timed_blocks = argc > 1 ? std::atoi(argv[1]) : 4096;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // in order with the failure messages on stderr
    test_block_reduce();
    test_racy_order();
    test_warp_ops();
    test_warp0_only();
    test_early_return();
    test_failures();
    test_atomics();
    test_shape_3d(dim3{4, 4, 4}, dim3{3, 2, 2});
    test_shape_3d(dim3{6, 4, 2}, dim3{2, 1, 3});  // 48 threads: a half warp
    test_shape_3d(dim3{1, 1, 1}, dim3{2, 2, 1});
    test_many_args_and_big_blocks();
    test_other_os_thread();
    time_per_block_us("two_barriers", two_barriers, timed_blocks);
    time_per_block_us("shuffle_reduce", shuffle_reduce, timed_blocks);
    if (failures != 0) {
        std::printf("%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("host runtime tests passed (%s fiber order)\n",
                tandem_host::fiber_order_reversed() ? "reverse" : "forward");
    return 0;
}
