// CUDA kernels compiled as host C++ (g++), so that they run and are tested where there is no GPU.
//
// A launch runs its blocks one after another; the threads of a block run as real threads that meet at
// __syncthreads (a std::barrier), so shared memory and barriers keep their meaning. __shared__ variables
// become function statics: one copy, used by one block at a time. What this cannot show: timing, blocks
// running at once, the GPU memory model (docs/kernels.md).
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace tandem_host {
inline thread_local dim3 thread_index;
inline thread_local dim3 block_index;
inline dim3 block_dim;
inline dim3 grid_dim;
inline std::barrier<>* block_barrier = nullptr;

template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(params[I])...);
}

// Runs kernel over grid × block with the given argument pointers (cuLaunchKernel's kernelParams).
template <typename... A>
void launch(void (*kernel)(A...), dim3 grid, dim3 block, void** params) {
    grid_dim = grid;
    block_dim = block;
    unsigned threads = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; bz++) {
        for (unsigned by = 0; by < grid.y; by++) {
            for (unsigned bx = 0; bx < grid.x; bx++) {
                std::barrier<> barrier(threads);
                block_barrier = &barrier;
                std::vector<std::thread> team;
                team.reserve(threads);
                for (unsigned t = 0; t < threads; t++) {
                    team.emplace_back([&, t] {
                        block_index = dim3{bx, by, bz};
                        thread_index = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        call(kernel, params, std::index_sequence_for<A...>{});
                        barrier.arrive_and_drop(); // a thread that has returned no longer holds the others up
                    });
                }
                for (std::thread& member : team) {
                    member.join();
                }
                block_barrier = nullptr;
            }
        }
    }
}
}  // namespace tandem_host

#define threadIdx tandem_host::thread_index
#define blockIdx tandem_host::block_index
#define blockDim tandem_host::block_dim
#define gridDim tandem_host::grid_dim
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

inline void __syncthreads() {
    tandem_host::block_barrier->arrive_and_wait();
}
inline float rsqrtf(float x) {
    return 1.0f / std::sqrt(x);
}
inline float __int_as_float(int bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
using std::fmaf;
