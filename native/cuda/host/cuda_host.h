// CUDA kernels compiled as host C++ (g++), so that they run and are tested where there is no GPU.
//
// A launch runs its blocks one after another on the calling OS thread. The threads of a block are fibers
// on that thread, scheduled cooperatively and deterministically: each round runs fiber 0 until it blocks
// (at __syncthreads or at a warp sync point: __syncwarp, __shfl*_sync, __ballot/__any/__all_sync) or
// returns, then fiber 1, and so on (TANDEM_HOST_FIBER_ORDER=reverse, read once: the highest thread first).
// When every live fiber is blocked, each warp (32 consecutive linear thread ids, x fastest) whose live
// lanes all wait at a warp sync point is released; if none is and every live fiber waits at __syncthreads,
// the block barrier is released. A thread that has returned no longer counts. Fibers blocked with nothing
// to release (a deadlock: e.g. some lanes of a warp at __syncthreads and the rest at a shuffle), or a warp
// sync whose mask leaves out a live lane of the warp (partial-warp masks are not emulated), make the launch
// fail: launch prints why, naming the block, and returns false (the driver: CUDA_ERROR_LAUNCH_FAILED).
// __shared__ variables become function statics: one copy, used by one block at a time; atomics are plain
// read-modify-writes, which is exact here because nothing runs concurrently with a fiber.
//
// What this can show: results, shared memory and barrier logic, warp-level data exchange, threads that
// return early. What it cannot: timing, blocks running at once, the GPU memory model (docs/kernels.md).
// A race between the threads of a block (a missing __syncthreads or __syncwarp) shows only as a wrong
// answer, and only when the fiber order matters; run the tests both in the default and the reverse order.
// Threads of a warp are never in lockstep here, so code that relies on implicit warp synchronicity (no
// __syncwarp) shows up as such a race too. One launch at a time, process-wide (a mutex in launch).
//
// Context switches: on x86-64 ELF a small assembly switch (callee-saved registers and the stack pointer,
// no system call; the FP control state is shared by all fibers and not switched); elsewhere, or with
// -DTANDEM_HOST_FIBER_UCONTEXT, <ucontext.h>. Fiber stacks (64 KiB, 256 KiB under AddressSanitizer; a
// PROT_NONE guard page below each, and a canary word checked after each block) are kept and reused across
// blocks and launches, and annotated for AddressSanitizer when it is on.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__ELF__) && !defined(TANDEM_HOST_FIBER_UCONTEXT)
#define TANDEM_HOST_FIBER_ASM 1
#else
#define TANDEM_HOST_FIBER_ASM 0
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TANDEM_HOST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TANDEM_HOST_ASAN 1
#endif
#endif
#if defined(TANDEM_HOST_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#else
#define TANDEM_HOST_ASAN 0
#endif

#ifndef TANDEM_HOST_FIBER_STACK_BYTES
#if TANDEM_HOST_ASAN
#define TANDEM_HOST_FIBER_STACK_BYTES (256u * 1024u)
#else
#define TANDEM_HOST_FIBER_STACK_BYTES (64u * 1024u)
#endif
#endif

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

// CUDA's vector types, with its sizes and alignments.
struct alignas(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

#if TANDEM_HOST_FIBER_ASM
// tandem_fiber_switch(save, next): pushes the callee-saved registers, stores the stack pointer in *save,
// loads next, pops the registers saved there and returns into the fiber that saved them (pop; jmp rather
// than ret: fibers resume at other call sites than the one that switched away, which the return stack
// buffer mispredicts nearly every time; the indirect jump is predicted better, 10-40% faster per block).
// Not for processes that enforce CET shadow stacks. A new fiber's
// stack is laid out as if it had switched away: six zero registers except r12 = its entry function, then
// tandem_fiber_trampoline as return address, which calls r12 with the stack 16-byte aligned (System V)
// and stops backtraces (rbp = 0, rip undefined in the CFI). In a COMDAT group, so that several
// translation units may include this header.
extern "C" {
__attribute__((visibility("hidden"))) void tandem_fiber_switch(void** save, void* next);
__attribute__((visibility("hidden"))) void tandem_fiber_trampoline();
}
asm(R"(
    .pushsection .text.tandem_fiber_switch,"axG",@progbits,tandem_fiber_switch,comdat
    .globl tandem_fiber_switch
    .hidden tandem_fiber_switch
    .type tandem_fiber_switch, @function
    .p2align 4
tandem_fiber_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popq %rcx
    jmpq *%rcx
    .size tandem_fiber_switch, .-tandem_fiber_switch

    .globl tandem_fiber_trampoline
    .hidden tandem_fiber_trampoline
    .type tandem_fiber_trampoline, @function
    .p2align 4
tandem_fiber_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    callq *%r12
    ud2
    .cfi_endproc
    .size tandem_fiber_trampoline, .-tandem_fiber_trampoline
    .popsection
)");
#endif

namespace tandem_host {
// The CUDA built-ins. Plain globals: one launch at a time, and the scheduler sets thread_index before it
// resumes a fiber (every switch is an opaque call, so kernels reload it after each sync point).
inline dim3 thread_index;
inline dim3 block_index;
inline dim3 block_dim;
inline dim3 grid_dim;

namespace detail {
// FRESH: not started yet (it gets a stack when it starts). Ready: FRESH or READY.
enum : unsigned char { FRESH, READY, AT_BARRIER, AT_WARP_SYNC, DONE };
constexpr std::uint64_t CANARY = 0x7a4e3d2c1b0a9f8eull;

struct Stack {
    unsigned char* map;  // the mapping: a guard page, then the stack
    std::size_t map_bytes;
    unsigned char* low;  // lowest usable byte: the canary
    std::size_t bytes;
    std::size_t color;   // bytes left unused at the top (a multiple of 64), to spread the fibers' top frames
                         // over the L1 cache sets
};

struct Fiber {
#if TANDEM_HOST_FIBER_ASM
    void* sp = nullptr;
#else
    ucontext_t context;
#endif
    const Stack* stack = nullptr;  // while started
    dim3 index;
#if TANDEM_HOST_ASAN
    void* fake_stack = nullptr;
    void* fake_stack_or_null() const { return fake_stack; }
#else
    void* fake_stack_or_null() const { return nullptr; }
#endif
};

struct Warp {
    std::uint32_t live;        // lanes that have not returned
    std::uint32_t waiting;     // lanes blocked at a warp sync point
    std::uint32_t mask_and;    // the masks they passed, and-ed
    std::uint32_t generation;  // warp releases so far: picks the exchange buffer
    std::uint64_t slot[2][32]; // shuffle exchange, double-buffered (one sync per shuffle suffices)
};

struct Scheduler {
    std::vector<Stack> stacks;  // kept across blocks and launches
    std::size_t stacks_used = 0;  // by the block running
    std::vector<Fiber> fibers;
    std::vector<unsigned char> state;
    std::vector<Warp> warps;
    int count = 0;         // threads in a block
    int live = 0;          // fibers that have not returned
    int at_barrier = 0;    // fibers blocked at __syncthreads
    int current = -1;      // the running fiber
    bool reverse = false;  // TANDEM_HOST_FIBER_ORDER=reverse
    void (*body)(const void*) = nullptr;
    const void* body_arg = nullptr;
#if TANDEM_HOST_FIBER_ASM
    void* scheduler_sp = nullptr;
#else
    ucontext_t scheduler_context;
#endif
#if TANDEM_HOST_ASAN
    void* scheduler_fake_stack = nullptr;
    const void* scheduler_stack_bottom = nullptr;
    std::size_t scheduler_stack_bytes = 0;
    bool from_scheduler = false;
#endif
    std::string error;
};

// Never destroyed: a launch may still run while the process exits.
inline Scheduler* const scheduler = new Scheduler;
inline std::mutex launch_mutex;

inline bool order_reversed() {
    static const bool reversed = [] {
        const char* order = std::getenv("TANDEM_HOST_FIBER_ORDER");
        return order != nullptr && std::strcmp(order, "reverse") == 0;
    }();
    return reversed;
}

// The next ready fiber after `after` in this round's order (after = -1 / count: from the start), or -1.
inline int next_ready(const Scheduler& s, int after) {
    const unsigned char* state = s.state.data();
    if (!s.reverse) {
        for (int i = after + 1; i < s.count; i++) {
            if (state[i] <= READY) return i;
        }
    } else {
        for (int i = after - 1; i >= 0; i--) {
            if (state[i] <= READY) return i;
        }
    }
    return -1;
}

// On a fiber's stack, after a switch into it (first entry: fake_stack null).
inline void arrived([[maybe_unused]] Scheduler& s, [[maybe_unused]] void* fake_stack) {
#if TANDEM_HOST_ASAN
    const void* from_bottom = nullptr;
    std::size_t from_bytes = 0;
    __sanitizer_finish_switch_fiber(fake_stack, &from_bottom, &from_bytes);
    if (s.from_scheduler) {
        s.scheduler_stack_bottom = from_bottom;
        s.scheduler_stack_bytes = from_bytes;
        s.from_scheduler = false;
    }
#endif
}

[[noreturn]] inline void fiber_main() noexcept;

// Gives a FRESH fiber the next unused stack, laid out to start at fiber_main when switched to.
inline void start_fresh(Scheduler& s, int i) {
    Fiber& f = s.fibers[i];
    f.stack = &s.stacks[s.stacks_used++];
    s.state[i] = READY;
#if TANDEM_HOST_FIBER_ASM
    auto* top = reinterpret_cast<std::uintptr_t*>(f.stack->low + f.stack->bytes - f.stack->color);
    std::uintptr_t* sp = top - 9;  // after 6 pops and the ret: rsp = top - 16, 16-byte aligned
    sp[0] = 0;  // r15
    sp[1] = 0;  // r14
    sp[2] = 0;  // r13
    sp[3] = reinterpret_cast<std::uintptr_t>(&fiber_main);  // r12: what the trampoline calls
    sp[4] = 0;  // rbx
    sp[5] = 0;  // rbp: ends frame-pointer backtraces
    sp[6] = reinterpret_cast<std::uintptr_t>(&tandem_fiber_trampoline);
    sp[7] = 0;
    sp[8] = 0;
    f.sp = sp;
#else
    f.context.uc_stack.ss_sp = f.stack->low;
    f.context.uc_stack.ss_size = f.stack->bytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, fiber_main, 0);
#endif
}

// Switches from the running fiber to fiber `next`, or to the scheduler when next < 0 (then the round is
// over). exiting: the running fiber has returned and will not be resumed.
inline void switch_from(Scheduler& s, Fiber& self, int next, [[maybe_unused]] bool exiting) {
    if (next >= 0) {
        Fiber& to = s.fibers[next];
        if (s.state[next] == FRESH) start_fresh(s, next);
        s.current = next;
        thread_index = to.index;
#if TANDEM_HOST_ASAN
        __sanitizer_start_switch_fiber(exiting ? nullptr : &self.fake_stack, to.stack->low, to.stack->bytes);
#endif
#if TANDEM_HOST_FIBER_ASM
        tandem_fiber_switch(&self.sp, to.sp);
#else
        swapcontext(&self.context, &to.context);
#endif
    } else {
#if TANDEM_HOST_ASAN
        __sanitizer_start_switch_fiber(exiting ? nullptr : &self.fake_stack, s.scheduler_stack_bottom,
                                       s.scheduler_stack_bytes);
#endif
#if TANDEM_HOST_FIBER_ASM
        tandem_fiber_switch(&self.sp, s.scheduler_sp);
#else
        swapcontext(&self.context, &s.scheduler_context);
#endif
    }
}

// The running fiber has blocked: runs the next ready fiber of the round, or goes back to the scheduler
// when there is none. Returns when this fiber is resumed.
inline void switch_away(Scheduler& s) {
    Fiber& self = s.fibers[s.current];
    switch_from(s, self, next_ready(s, s.current), false);
    arrived(s, self.fake_stack_or_null());
}

// Every fiber starts here (from tandem_fiber_trampoline, or makecontext) and never returns. When a thread
// returns and the next one of the round has not started yet, that one runs here, on the same stack, with
// no switch at all (a kernel without barriers runs a whole block so).
[[noreturn]] inline void fiber_main() noexcept {
    Scheduler& s = *scheduler;
    arrived(s, nullptr);
    for (;;) {
        s.body(s.body_arg);
        int me = s.current;
        s.state[me] = DONE;
        s.live--;
        s.warps[me >> 5].live &= ~(1u << (me & 31));
        int next = next_ready(s, me);
        if (next >= 0 && s.state[next] == FRESH) {
            s.fibers[next].stack = s.fibers[me].stack;
            s.state[next] = READY;
            s.current = next;
            thread_index = s.fibers[next].index;
            continue;
        }
#if TANDEM_HOST_ASAN
        {
            // A later block reuses this stack: unpoison the frames left on it (what __asan_handle_no_return
            // would do, without its system call).
            unsigned char* low = s.fibers[me].stack->low;
            unsigned char* top = low + s.fibers[me].stack->bytes;
            auto* here = static_cast<unsigned char*>(__builtin_frame_address(0));
            unsigned char* from = here - low > 4096 ? here - 4096 : low;
            __asan_unpoison_memory_region(from, static_cast<std::size_t>(top - from));
        }
#endif
        switch_from(s, s.fibers[me], next, true);
        std::abort();
    }
}

// A fiber blocks at a warp sync point of its warp.
inline void warp_sync(unsigned mask) {
    Scheduler& s = *scheduler;
    int me = s.current;
    Warp& w = s.warps[me >> 5];
    s.state[me] = AT_WARP_SYNC;
    w.waiting |= 1u << (me & 31);
    w.mask_and &= mask;
    switch_away(s);
}

inline void block_sync() {
    Scheduler& s = *scheduler;
    s.state[s.current] = AT_BARRIER;
    s.at_barrier++;
    switch_away(s);
}

enum ShuffleMode { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_BFLY };

// PTX shfl.sync semantics (CUDA's __shfl*_sync with width w: c = ((32 - w) << 8) | (up ? 0 : 31)).
template <typename T>
T shuffle(unsigned mask, T value, ShuffleMode mode, int b, int width) {
    static_assert((sizeof(T) == 4 || sizeof(T) == 8) && std::is_trivially_copyable_v<T>,
                  "shuffles take 4- or 8-byte values");
    Scheduler& s = *scheduler;
    int me = s.current;
    int lane = me & 31;
    Warp& w = s.warps[me >> 5];
    unsigned buffer = w.generation & 1;
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof value);
    w.slot[buffer][lane] = bits;
    warp_sync(mask);
    int seg = (32 - width) & 31;
    int bval = b & 31;
    int min_lane = lane & seg;
    int max_lane = min_lane | (mode == SHFL_UP ? 0 : (31 & ~seg));
    int j = lane;
    bool valid = true;
    switch (mode) {
        case SHFL_IDX: j = min_lane | (bval & ~seg); valid = j <= max_lane; break;
        case SHFL_UP: j = lane - bval; valid = j >= max_lane; break;
        case SHFL_DOWN: j = lane + bval; valid = j <= max_lane; break;
        case SHFL_BFLY: j = lane ^ bval; valid = j <= max_lane; break;
    }
    if (!valid) j = lane;
    T result;
    std::memcpy(&result, &w.slot[buffer][j], sizeof result);
    return result;
}

// Warp vote: the lanes in mask (that have not returned) whose predicate is set, and those lanes.
struct Vote {
    unsigned set, lanes;
};
inline Vote vote(unsigned mask, bool predicate) {
    Scheduler& s = *scheduler;
    int me = s.current;
    Warp& w = s.warps[me >> 5];
    unsigned buffer = w.generation & 1;
    w.slot[buffer][me & 31] = predicate ? 1 : 0;
    warp_sync(mask);
    Vote v{0, mask & w.live};
    for (int lane = 0; lane < 32; lane++) {
        if ((v.lanes >> lane & 1u) && w.slot[buffer][lane] != 0) v.set |= 1u << lane;
    }
    return v;
}

inline void fail(Scheduler& s, const std::string& what) {
    char where[160];
    std::snprintf(where, sizeof where, "block (%u, %u, %u) of grid (%u, %u, %u), block (%u, %u, %u): ",
                  block_index.x, block_index.y, block_index.z, grid_dim.x, grid_dim.y, grid_dim.z, block_dim.x,
                  block_dim.y, block_dim.z);
    s.error = where + what;
}

// Everything live is blocked: releases what can go on. False (with s.error) when nothing can.
inline bool release(Scheduler& s) {
    bool released = false;
    int warps = static_cast<int>(s.warps.size());
    for (int wi = 0; wi < warps; wi++) {
        Warp& w = s.warps[wi];
        if (w.waiting == 0 || w.waiting != w.live) continue;
        if ((w.mask_and & w.live) != w.live) {
            char what[200];
            std::snprintf(what, sizeof what,
                          "warp %d syncs with mask 0x%08x (and of its lanes' masks) that leaves out live lanes "
                          "0x%08x; the host build supports only masks naming every live lane of the warp",
                          wi, w.mask_and, w.live & ~w.mask_and);
            fail(s, what);
            return false;
        }
        for (int lane = 0; lane < 32; lane++) {
            if (w.waiting >> lane & 1u) s.state[wi * 32 + lane] = READY;
        }
        w.waiting = 0;
        w.mask_and = ~0u;
        w.generation++;
        released = true;
    }
    if (released) return true;
    if (s.at_barrier == s.live) {
        for (int i = 0; i < s.count; i++) {
            if (s.state[i] == AT_BARRIER) s.state[i] = READY;
        }
        s.at_barrier = 0;
        return true;
    }
    std::string what = "deadlock: of " + std::to_string(s.live) + " live threads, " +
                       std::to_string(s.at_barrier) + " wait at __syncthreads and " +
                       std::to_string(s.live - s.at_barrier) + " at a warp sync point";
    for (int wi = 0; wi < warps; wi++) {
        const Warp& w = s.warps[wi];
        if (w.waiting != 0) {
            char detail[120];
            std::snprintf(detail, sizeof detail, "; warp %d: lanes 0x%08x at a warp sync, live lanes 0x%08x", wi,
                          w.waiting, w.live);
            what += detail;
        }
    }
    fail(s, what);
    return false;
}

inline bool allocate_stack(Stack& stack) {
    std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    std::size_t bytes = (TANDEM_HOST_FIBER_STACK_BYTES + page - 1) / page * page;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_STACK
    flags |= MAP_STACK;
#endif
    void* map = mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (map == MAP_FAILED) return false;
    if (mprotect(map, page, PROT_NONE) != 0) {
        munmap(map, bytes + page);
        return false;
    }
    stack.map = static_cast<unsigned char*>(map);
    stack.map_bytes = bytes + page;
    stack.low = stack.map + page;
    stack.bytes = bytes;
    std::memcpy(stack.low, &CANARY, sizeof CANARY);
    return true;
}

inline void discard_stacks(Scheduler& s) {
    for (Stack& stack : s.stacks) {
#if TANDEM_HOST_ASAN
        __asan_unpoison_memory_region(stack.low, stack.bytes);
#endif
        munmap(stack.map, stack.map_bytes);
    }
    s.stacks.clear();
}

// Runs the current block to the end. False (with s.error) on a deadlock.
inline bool run_block(Scheduler& s) {
    s.live = s.count;
    s.at_barrier = 0;
    std::memset(s.state.data(), FRESH, s.state.size());
    for (int wi = 0; wi < static_cast<int>(s.warps.size()); wi++) {
        Warp& w = s.warps[wi];
        int lanes = s.count - wi * 32 < 32 ? s.count - wi * 32 : 32;
        w.live = lanes == 32 ? ~0u : (1u << lanes) - 1;
        w.waiting = 0;
        w.mask_and = ~0u;
    }
    s.stacks_used = 0;
    for (;;) {
        int first = next_ready(s, s.reverse ? s.count : -1);
        if (first >= 0) {
            Fiber& f = s.fibers[first];
            if (s.state[first] == FRESH) start_fresh(s, first);
            s.current = first;
            thread_index = f.index;
#if TANDEM_HOST_ASAN
            s.from_scheduler = true;
            __sanitizer_start_switch_fiber(&s.scheduler_fake_stack, f.stack->low, f.stack->bytes);
#endif
#if TANDEM_HOST_FIBER_ASM
            tandem_fiber_switch(&s.scheduler_sp, f.sp);
#else
            swapcontext(&s.scheduler_context, &f.context);
#endif
#if TANDEM_HOST_ASAN
            __sanitizer_finish_switch_fiber(s.scheduler_fake_stack, nullptr, nullptr);
#endif
        }
        // Fibers never make others ready: the round has run every ready fiber, and all live ones are blocked.
        if (s.live == 0) return true;
        if (!release(s)) return false;
    }
}

inline bool run(dim3 grid, dim3 block, void (*body)(const void*), const void* arg, const char* name) {
    std::lock_guard<std::mutex> one_at_a_time(launch_mutex);
    Scheduler& s = *scheduler;
    s.error.clear();
    s.reverse = order_reversed();
    std::uint64_t threads = std::uint64_t{block.x} * block.y * block.z;
    if (threads == 0 || threads > 65536 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
        std::fprintf(stderr, "tandem host: kernel %s: bad launch shape\n", name ? name : "?");
        s.error = "bad launch shape";
        return false;
    }
    s.count = static_cast<int>(threads);
    while (s.stacks.size() < threads) {
        Stack stack;
        if (!allocate_stack(stack)) {
            s.error = "cannot map fiber stacks";
            std::fprintf(stderr, "tandem host: kernel %s: %s\n", name ? name : "?", s.error.c_str());
            return false;
        }
        stack.color = s.stacks.size() * 11 % 64 * 64;
        s.stacks.push_back(stack);
    }
    if (s.fibers.size() < threads) {  // never shrunk: the fibers keep their contexts
        s.fibers.resize(threads);
#if !TANDEM_HOST_FIBER_ASM
        // Moved contexts point into their old places (x86-64 glibc's fpregs): fill them all in again.
        for (Fiber& f : s.fibers) getcontext(&f.context);
#endif
    }
    s.state.assign(threads, FRESH);
    s.warps.assign((threads + 31) / 32, Warp{});
    for (int t = 0; t < s.count; t++) {
        Fiber& f = s.fibers[t];
        unsigned u = static_cast<unsigned>(t);
        f.index = dim3{u % block.x, u / block.x % block.y, u / (block.x * block.y)};
    }
    grid_dim = grid;
    block_dim = block;
    s.body = body;
    s.body_arg = arg;
    bool ok = true;
    for (unsigned bz = 0; bz < grid.z && ok; bz++) {
        for (unsigned by = 0; by < grid.y && ok; by++) {
            for (unsigned bx = 0; bx < grid.x && ok; bx++) {
                block_index = dim3{bx, by, bz};
                ok = run_block(s);
                for (std::size_t i = 0; i < s.stacks_used; i++) {
                    if (std::memcmp(s.stacks[i].low, &CANARY, sizeof CANARY) != 0) {
                        std::fprintf(stderr,
                                     "tandem host: kernel %s: block (%u, %u, %u): a thread overflowed its %u-byte "
                                     "fiber stack (TANDEM_HOST_FIBER_STACK_BYTES)\n",
                                     name ? name : "?", bx, by, bz, TANDEM_HOST_FIBER_STACK_BYTES);
                        std::abort();
                    }
                }
            }
        }
    }
    s.current = -1;
    thread_index = dim3{};
    if (!ok) {
        // The blocked fibers' frames stay on their stacks, never to be resumed: do not reuse those stacks.
        discard_stacks(s);
        std::fprintf(stderr, "tandem host: kernel %s failed: %s\n", name ? name : "?", s.error.c_str());
    }
    return ok;
}

template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(params[I])...);
}
}  // namespace detail

// Runs kernel over grid × block with the given argument pointers (cuLaunchKernel's kernelParams).
// True when every block ran to the end; false (after a message on stderr) on a deadlock, an unsupported
// warp mask or a bad shape. name only labels the message.
template <typename... A>
bool launch(void (*kernel)(A...), dim3 grid, dim3 block, void** params, const char* name = nullptr) {
    struct Call {
        void (*kernel)(A...);
        void** params;
    };
    Call call{kernel, params};
    return detail::run(
        grid, block,
        [](const void* arg) {
            const Call* c = static_cast<const Call*>(arg);
            detail::call(c->kernel, c->params, std::index_sequence_for<A...>{});
        },
        &call, name);
}

// Why the last launch failed ("" when it did not).
inline const std::string& last_error() { return detail::scheduler->error; }
// Whether TANDEM_HOST_FIBER_ORDER=reverse is in effect.
inline bool fiber_order_reversed() { return detail::order_reversed(); }
}  // namespace tandem_host

#define threadIdx tandem_host::thread_index
#define blockIdx tandem_host::block_index
#define blockDim tandem_host::block_dim
#define gridDim tandem_host::grid_dim
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

inline constexpr int warpSize = 32;

inline void __syncthreads() { tandem_host::detail::block_sync(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { tandem_host::detail::warp_sync(mask); }

template <typename T>
inline T __shfl_sync(unsigned mask, T value, int src_lane, int width = warpSize) {
    return tandem_host::detail::shuffle(mask, value, tandem_host::detail::SHFL_IDX, src_lane, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = warpSize) {
    return tandem_host::detail::shuffle(mask, value, tandem_host::detail::SHFL_UP, static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = warpSize) {
    return tandem_host::detail::shuffle(mask, value, tandem_host::detail::SHFL_DOWN, static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize) {
    return tandem_host::detail::shuffle(mask, value, tandem_host::detail::SHFL_BFLY, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return tandem_host::detail::vote(mask, predicate != 0).set;
}
inline int __all_sync(unsigned mask, int predicate) {
    tandem_host::detail::Vote v = tandem_host::detail::vote(mask, predicate != 0);
    return v.set == v.lanes;
}
inline int __any_sync(unsigned mask, int predicate) { return tandem_host::detail::vote(mask, predicate != 0).set != 0; }

// Atomics: plain read-modify-write (fibers never preempt one another, and blocks run one at a time).
template <typename T>
inline T tandem_host_atomic_add(T* address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}
inline float atomicAdd(float* address, float value) { return tandem_host_atomic_add(address, value); }
inline double atomicAdd(double* address, double value) { return tandem_host_atomic_add(address, value); }
inline int atomicAdd(int* address, int value) {
    int old = *address;
    *address = static_cast<int>(static_cast<unsigned>(old) + static_cast<unsigned>(value));  // wraps, as on a GPU
    return old;
}
inline unsigned atomicAdd(unsigned* address, unsigned value) { return tandem_host_atomic_add(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return tandem_host_atomic_add(address, value);
}
template <typename T>
inline T tandem_host_atomic_max(T* address, T value) {
    T old = *address;
    if (value > old) *address = value;
    return old;
}
template <typename T>
inline T tandem_host_atomic_min(T* address, T value) {
    T old = *address;
    if (value < old) *address = value;
    return old;
}
inline int atomicMax(int* address, int value) { return tandem_host_atomic_max(address, value); }
inline unsigned atomicMax(unsigned* address, unsigned value) { return tandem_host_atomic_max(address, value); }
inline int atomicMin(int* address, int value) { return tandem_host_atomic_min(address, value); }
inline unsigned atomicMin(unsigned* address, unsigned value) { return tandem_host_atomic_min(address, value); }
template <typename T>
inline T atomicExch(T* address, T value) {
    T old = *address;
    *address = value;
    return old;
}
template <typename T>
inline T atomicCAS(T* address, T compare, T value) {
    T old = *address;
    if (old == compare) *address = value;
    return old;
}

// The _rn intrinsics: one IEEE operation, rounded to nearest even, never contracted into an FMA (the
// empty asm hides the product from the optimiser, whatever -ffp-contract says).
inline float tandem_host_opaque(float v) {
#if defined(__x86_64__) || defined(__i386__)
    asm("" : "+x"(v));
#elif defined(__aarch64__)
    asm("" : "+w"(v));
#else
    volatile float copy = v;
    v = copy;
#endif
    return v;
}
inline float __fadd_rn(float a, float b) { return tandem_host_opaque(a + b); }
inline float __fsub_rn(float a, float b) { return tandem_host_opaque(a - b); }
inline float __fmul_rn(float a, float b) { return tandem_host_opaque(a * b); }
inline float __fdiv_rn(float a, float b) { return tandem_host_opaque(a / b); }
inline float __fsqrt_rn(float a) { return tandem_host_opaque(std::sqrt(a)); }
inline float __frcp_rn(float a) { return tandem_host_opaque(1.0f / a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __int_as_float(int bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
inline float __uint_as_float(unsigned bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
inline int __float_as_int(float f) {
    int bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
}
inline unsigned __float_as_uint(float f) {
    unsigned bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
}
using std::fmaf;
