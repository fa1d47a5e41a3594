// The CUDA driver entry points Tandem's Java code calls, implemented on the host over the kernels of
// tandem.cu built by g++ (cuda_host.h): "device" memory is host memory, a launch runs at once, streams
// and contexts are tokens. The Java CudaBackend is pointed at this library in tests
// (-Dtandem.cuda.host.library=... in the tests, -Dtandem.cuda.library=... for --device cuda), so the same
// Java code that drives a GPU drives these kernels.
//
// Semantics, where they differ from a GPU's or need saying:
//   - Everything is synchronous: an "async" copy, set, allocation or free on a stream is done before the call
//     returns, and a launch runs to the end inside cuLaunchKernel. Streams and events are tokens, checked
//     like the driver checks its handles (an unknown or destroyed one is CUDA_ERROR_INVALID_HANDLE); the
//     NULL stream and CU_STREAM_LEGACY / CU_STREAM_PER_THREAD are always valid.
//   - An event records a steady_clock time point; cuEventElapsedTime is the time between two records in
//     milliseconds (CUDA_ERROR_INVALID_HANDLE when either was never recorded or has timing disabled).
//   - Device allocations (cuMemAlloc_v2, cuMemAllocAsync) are 256-byte aligned host allocations and pinned
//     host memory (cuMemHostAlloc) is 4096-byte aligned; both are tracked, so freeing a pointer that is not a
//     live allocation of the matching kind is CUDA_ERROR_INVALID_VALUE, as on a GPU. Zero bytes is
//     CUDA_ERROR_INVALID_VALUE, as the driver documents.
//   - One device, ordinal 0 ("Tandem host build (no GPU)"); any other ordinal is CUDA_ERROR_INVALID_DEVICE.
//     cuDeviceTotalMem_v2 and cuMemGetInfo_v2 report the machine's physical and available memory.
//   - cuDeviceGetAttribute answers the attributes in `attributes` below with the limits this build
//     enforces or emulates (1 multiprocessor: blocks run one after another; 1024 threads a block; 48 KiB of
//     static shared memory; warps of 32; compute capability 8.0, the oldest real target of the fatbin) and
//     nominal figures for the rest (clocks, a 64-bit memory bus); any other attribute is
//     CUDA_ERROR_INVALID_VALUE, so a caller sees that this build does not model it.
//   - cuGetErrorName and cuGetErrorString know every CUresult of cuda.h (CUDA 13) by name; cuGetErrorString
//     describes the codes this library returns and names the rest. Unknown codes are CUDA_ERROR_INVALID_VALUE
//     with *pStr = NULL, like the driver.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <unistd.h>

#include "cuda_host.h"
#include "../tandem.cu"

namespace {
// False when the launch failed (a deadlock in a block, say; cuda_host.h has printed why).
using Launcher = bool (*)(dim3, dim3, void**, const char*);

template <auto Kernel>
bool launcher(dim3 grid, dim3 block, void** params, const char* name) {
    return tandem_host::launch(Kernel, grid, block, params, name);
}

#define TANDEM_KERNEL(name) {#name, &launcher<name>}
// Every kernel of tandem.cu; CudaKernelsTest checks that none is missing.
const std::map<std::string, Launcher> kernels = {
    TANDEM_KERNEL(tandem_write_kv_f32),
    TANDEM_KERNEL(tandem_write_kv_bf16),
    TANDEM_KERNEL(tandem_gather_rows_u32),
    TANDEM_KERNEL(tandem_scatter_rows_u32),
    TANDEM_KERNEL(tandem_gather_rows_u8),
    TANDEM_KERNEL(tandem_attention_split_f32),
    TANDEM_KERNEL(tandem_attention_split_bf16),
    TANDEM_KERNEL(tandem_attention_merge),
    TANDEM_KERNEL(tandem_add_f32),
    TANDEM_KERNEL(tandem_silu_mul_f32),
    TANDEM_KERNEL(tandem_gelu_f32),
    TANDEM_KERNEL(tandem_add_bias_f32),
    TANDEM_KERNEL(tandem_add_bias_bf16),
    TANDEM_KERNEL(tandem_add_bias_f16),
    TANDEM_KERNEL(tandem_embedding_gather_f32),
    TANDEM_KERNEL(tandem_embedding_gather_bf16),
    TANDEM_KERNEL(tandem_embedding_gather_f16),
    TANDEM_KERNEL(tandem_embedding_gather_q8_0),
    TANDEM_KERNEL(tandem_embedding_gather_q4_0),
    TANDEM_KERNEL(tandem_embedding_gather_q4_k),
    TANDEM_KERNEL(tandem_embedding_gather_q6_k),
    TANDEM_KERNEL(tandem_rmsnorm_f32),
    TANDEM_KERNEL(tandem_rmsnorm_bf16),
    TANDEM_KERNEL(tandem_rmsnorm_f16),
    TANDEM_KERNEL(tandem_layer_norm_f32),
    TANDEM_KERNEL(tandem_layer_norm_bf16),
    TANDEM_KERNEL(tandem_layer_norm_f16),
    TANDEM_KERNEL(tandem_rope_f32),
    TANDEM_KERNEL(tandem_matmul_f32),
    TANDEM_KERNEL(tandem_matmul_bf16),
    TANDEM_KERNEL(tandem_matmul_f16),
    TANDEM_KERNEL(tandem_matmul_q8_0),
    TANDEM_KERNEL(tandem_matmul_q4_0),
    TANDEM_KERNEL(tandem_matmul_q4_k),
    TANDEM_KERNEL(tandem_matmul_q6_k),
    TANDEM_KERNEL(tandem_multiply_add_peak),
    TANDEM_KERNEL(tandem_uniform_f64),
    TANDEM_KERNEL(tandem_sample_temperature_f32),
    TANDEM_KERNEL(tandem_verify_chain_f32),
    TANDEM_KERNEL(tandem_softmax_f32),
    TANDEM_KERNEL(tandem_argmax_f32),
    TANDEM_KERNEL(tandem_logit_summary_f32),
    TANDEM_KERNEL(tandem_select_rows_f32),
    TANDEM_KERNEL(tandem_mix_logits_f32),
};

// CUresult codes (cuda.h) this library returns.
constexpr int SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_DEVICE = 101, INVALID_CONTEXT = 201,
              INVALID_HANDLE = 400, NOT_FOUND = 500, LAUNCH_FAILED = 719;

// Every CUresult of cuda.h (CUDA 13.0), for cuGetErrorName.
const std::unordered_map<int, const char*> error_names = {
    {0, "CUDA_SUCCESS"},
    {1, "CUDA_ERROR_INVALID_VALUE"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY"},
    {3, "CUDA_ERROR_NOT_INITIALIZED"},
    {4, "CUDA_ERROR_DEINITIALIZED"},
    {5, "CUDA_ERROR_PROFILER_DISABLED"},
    {6, "CUDA_ERROR_PROFILER_NOT_INITIALIZED"},
    {7, "CUDA_ERROR_PROFILER_ALREADY_STARTED"},
    {8, "CUDA_ERROR_PROFILER_ALREADY_STOPPED"},
    {34, "CUDA_ERROR_STUB_LIBRARY"},
    {36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER"},
    {46, "CUDA_ERROR_DEVICE_UNAVAILABLE"},
    {100, "CUDA_ERROR_NO_DEVICE"},
    {101, "CUDA_ERROR_INVALID_DEVICE"},
    {102, "CUDA_ERROR_DEVICE_NOT_LICENSED"},
    {200, "CUDA_ERROR_INVALID_IMAGE"},
    {201, "CUDA_ERROR_INVALID_CONTEXT"},
    {202, "CUDA_ERROR_CONTEXT_ALREADY_CURRENT"},
    {205, "CUDA_ERROR_MAP_FAILED"},
    {206, "CUDA_ERROR_UNMAP_FAILED"},
    {207, "CUDA_ERROR_ARRAY_IS_MAPPED"},
    {208, "CUDA_ERROR_ALREADY_MAPPED"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU"},
    {210, "CUDA_ERROR_ALREADY_ACQUIRED"},
    {211, "CUDA_ERROR_NOT_MAPPED"},
    {212, "CUDA_ERROR_NOT_MAPPED_AS_ARRAY"},
    {213, "CUDA_ERROR_NOT_MAPPED_AS_POINTER"},
    {214, "CUDA_ERROR_ECC_UNCORRECTABLE"},
    {215, "CUDA_ERROR_UNSUPPORTED_LIMIT"},
    {216, "CUDA_ERROR_CONTEXT_ALREADY_IN_USE"},
    {217, "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED"},
    {218, "CUDA_ERROR_INVALID_PTX"},
    {219, "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT"},
    {220, "CUDA_ERROR_NVLINK_UNCORRECTABLE"},
    {221, "CUDA_ERROR_JIT_COMPILER_NOT_FOUND"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
    {223, "CUDA_ERROR_JIT_COMPILATION_DISABLED"},
    {224, "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY"},
    {225, "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC"},
    {226, "CUDA_ERROR_CONTAINED"},
    {300, "CUDA_ERROR_INVALID_SOURCE"},
    {301, "CUDA_ERROR_FILE_NOT_FOUND"},
    {302, "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND"},
    {303, "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED"},
    {304, "CUDA_ERROR_OPERATING_SYSTEM"},
    {400, "CUDA_ERROR_INVALID_HANDLE"},
    {401, "CUDA_ERROR_ILLEGAL_STATE"},
    {402, "CUDA_ERROR_LOSSY_QUERY"},
    {500, "CUDA_ERROR_NOT_FOUND"},
    {600, "CUDA_ERROR_NOT_READY"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
    {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"},
    {702, "CUDA_ERROR_LAUNCH_TIMEOUT"},
    {703, "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING"},
    {704, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED"},
    {705, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED"},
    {708, "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE"},
    {709, "CUDA_ERROR_CONTEXT_IS_DESTROYED"},
    {710, "CUDA_ERROR_ASSERT"},
    {711, "CUDA_ERROR_TOO_MANY_PEERS"},
    {712, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED"},
    {713, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED"},
    {714, "CUDA_ERROR_HARDWARE_STACK_ERROR"},
    {715, "CUDA_ERROR_ILLEGAL_INSTRUCTION"},
    {716, "CUDA_ERROR_MISALIGNED_ADDRESS"},
    {717, "CUDA_ERROR_INVALID_ADDRESS_SPACE"},
    {718, "CUDA_ERROR_INVALID_PC"},
    {719, "CUDA_ERROR_LAUNCH_FAILED"},
    {720, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE"},
    {721, "CUDA_ERROR_TENSOR_MEMORY_LEAK"},
    {800, "CUDA_ERROR_NOT_PERMITTED"},
    {801, "CUDA_ERROR_NOT_SUPPORTED"},
    {802, "CUDA_ERROR_SYSTEM_NOT_READY"},
    {803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"},
    {804, "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE"},
    {805, "CUDA_ERROR_MPS_CONNECTION_FAILED"},
    {806, "CUDA_ERROR_MPS_RPC_FAILURE"},
    {807, "CUDA_ERROR_MPS_SERVER_NOT_READY"},
    {808, "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED"},
    {809, "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED"},
    {810, "CUDA_ERROR_MPS_CLIENT_TERMINATED"},
    {811, "CUDA_ERROR_CDP_NOT_SUPPORTED"},
    {812, "CUDA_ERROR_CDP_VERSION_MISMATCH"},
    {900, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
    {901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"},
    {902, "CUDA_ERROR_STREAM_CAPTURE_MERGE"},
    {903, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED"},
    {904, "CUDA_ERROR_STREAM_CAPTURE_UNJOINED"},
    {905, "CUDA_ERROR_STREAM_CAPTURE_ISOLATION"},
    {906, "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT"},
    {907, "CUDA_ERROR_CAPTURED_EVENT"},
    {908, "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD"},
    {909, "CUDA_ERROR_TIMEOUT"},
    {910, "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE"},
    {911, "CUDA_ERROR_EXTERNAL_DEVICE"},
    {912, "CUDA_ERROR_INVALID_CLUSTER_SIZE"},
    {913, "CUDA_ERROR_FUNCTION_NOT_LOADED"},
    {914, "CUDA_ERROR_INVALID_RESOURCE_TYPE"},
    {915, "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION"},
    {916, "CUDA_ERROR_KEY_ROTATION"},
    {999, "CUDA_ERROR_UNKNOWN"},
};

// What cuGetErrorString says for the codes this library returns (the driver's wording).
const std::unordered_map<int, const char*> error_strings = {
    {SUCCESS, "no error"},
    {INVALID_VALUE, "invalid argument"},
    {OUT_OF_MEMORY, "out of memory"},
    {INVALID_DEVICE, "invalid device ordinal"},
    {INVALID_CONTEXT, "invalid device context"},
    {INVALID_HANDLE, "invalid resource handle"},
    {NOT_FOUND, "named symbol not found"},
    {LAUNCH_FAILED, "unspecified launch failure"},
};

// cuDeviceGetAttribute's answers, by CUdevice_attribute (cuda.h).
const std::unordered_map<int, int> attributes = {
    {1, 1024},        // MAX_THREADS_PER_BLOCK: cuLaunchKernel refuses more
    {2, 1024},        // MAX_BLOCK_DIM_X
    {3, 1024},        // MAX_BLOCK_DIM_Y
    {4, 64},          // MAX_BLOCK_DIM_Z
    {5, 2147483647},  // MAX_GRID_DIM_X
    {6, 65535},       // MAX_GRID_DIM_Y
    {7, 65535},       // MAX_GRID_DIM_Z
    {8, 49152},       // MAX_SHARED_MEMORY_PER_BLOCK: 48 KiB, the static limit the kernels are written to
    {9, 65536},       // TOTAL_CONSTANT_MEMORY
    {10, 32},         // WARP_SIZE: cuda_host.h's warps
    {12, 65536},      // MAX_REGISTERS_PER_BLOCK
    {13, 1000000},    // CLOCK_RATE (kHz): nominal 1 GHz
    {16, 1},          // MULTIPROCESSOR_COUNT: blocks run one after another
    {18, 1},          // INTEGRATED: device memory is host memory
    {19, 1},          // CAN_MAP_HOST_MEMORY
    {31, 0},          // CONCURRENT_KERNELS: one launch at a time
    {36, 1600000},    // MEMORY_CLOCK_RATE (kHz): nominal, DDR4-3200
    {37, 64},         // GLOBAL_MEMORY_BUS_WIDTH (bits): one 64-bit channel, nominal
    {39, 1024},       // MAX_THREADS_PER_MULTIPROCESSOR: one block at a time
    {40, 0},          // ASYNC_ENGINE_COUNT: copies are synchronous
    {41, 1},          // UNIFIED_ADDRESSING
    {75, 8},          // COMPUTE_CAPABILITY_MAJOR: 8.0, the oldest real target of the fatbin
    {76, 0},          // COMPUTE_CAPABILITY_MINOR
    {81, 49152},      // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
    {82, 65536},      // MAX_REGISTERS_PER_MULTIPROCESSOR
    {97, 49152},      // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: no opt-in beyond the static limit
    {106, 1},         // MAX_BLOCKS_PER_MULTIPROCESSOR
    {115, 1},         // MEMORY_POOLS_SUPPORTED: cuMemAllocAsync works
};

constexpr unsigned STREAM_FLAGS = 0x1;     // CU_STREAM_NON_BLOCKING
constexpr unsigned EVENT_FLAGS = 0x7;      // CU_EVENT_BLOCKING_SYNC | DISABLE_TIMING | INTERPROCESS
constexpr unsigned EVENT_DISABLE_TIMING = 0x2;
constexpr unsigned HOST_ALLOC_FLAGS = 0x7;  // CU_MEMHOSTALLOC_PORTABLE | DEVICEMAP | WRITECOMBINED
constexpr unsigned MAX_DYNAMIC_SHARED = 49152;

struct Stream {
    unsigned flags;
};
struct Event {
    unsigned flags;
    bool recorded;
    std::chrono::steady_clock::time_point at;
};
struct Module {};

using KernelEntry = std::pair<const std::string, Launcher>;  // a CUfunction points at its entry of kernels
int context_token;
std::mutex launches;  // one launch at a time: a launch's grid and block sizes are process-wide in cuda_host.h

// Live handles and allocations, so that a stale or foreign one is reported as the driver reports it.
std::mutex registry;
std::unordered_set<const void*> streams, events, modules, pinned;
std::unordered_set<std::uint64_t> allocations;

bool live(const std::unordered_set<const void*>& set, const void* handle) {
    std::lock_guard<std::mutex> lock(registry);
    return set.count(handle) != 0;
}

// The NULL stream, CU_STREAM_LEGACY (0x1), CU_STREAM_PER_THREAD (0x2) or a live stream.
bool valid_stream(const void* stream) {
    auto bits = reinterpret_cast<std::uintptr_t>(stream);
    return bits <= 2 || live(streams, stream);
}

int allocate(std::uint64_t* pointer, std::size_t bytes) {
    if (pointer == nullptr || bytes == 0) return INVALID_VALUE;
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (p == nullptr) return OUT_OF_MEMORY;
    *pointer = reinterpret_cast<std::uint64_t>(p);
    std::lock_guard<std::mutex> lock(registry);
    allocations.insert(*pointer);
    return SUCCESS;
}

int release(std::uint64_t pointer) {
    {
        std::lock_guard<std::mutex> lock(registry);
        if (allocations.erase(pointer) == 0) return INVALID_VALUE;
    }
    std::free(reinterpret_cast<void*>(pointer));
    return SUCCESS;
}

std::size_t page_bytes(int pages_name) {
    long pages = sysconf(pages_name), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
}
}  // namespace

extern "C" {
int cuInit(unsigned) { return SUCCESS; }
int cuDriverGetVersion(int* version) {
    if (version == nullptr) return INVALID_VALUE;
    *version = 13000;
    return SUCCESS;
}
int cuDeviceGetCount(int* count) {
    if (count == nullptr) return INVALID_VALUE;
    *count = 1;
    return SUCCESS;
}
int cuDeviceGet(int* device, int ordinal) {
    if (device == nullptr) return INVALID_VALUE;
    if (ordinal != 0) return INVALID_DEVICE;
    *device = ordinal;
    return SUCCESS;
}
int cuDeviceGetName(char* name, int length, int device) {
    if (name == nullptr || length <= 0) return INVALID_VALUE;
    if (device != 0) return INVALID_DEVICE;
    std::strncpy(name, "Tandem host build (no GPU)", length);
    name[length - 1] = 0;
    return SUCCESS;
}
int cuDeviceGetAttribute(int* value, int attribute, int device) {
    if (value == nullptr) return INVALID_VALUE;
    if (device != 0) return INVALID_DEVICE;
    auto it = attributes.find(attribute);
    if (it == attributes.end()) return INVALID_VALUE;
    *value = it->second;
    return SUCCESS;
}
int cuDeviceTotalMem_v2(std::size_t* bytes, int device) {
    if (bytes == nullptr) return INVALID_VALUE;
    if (device != 0) return INVALID_DEVICE;
    *bytes = page_bytes(_SC_PHYS_PAGES);
    return SUCCESS;
}
int cuMemGetInfo_v2(std::size_t* free, std::size_t* total) {
    if (free == nullptr || total == nullptr) return INVALID_VALUE;
    *total = page_bytes(_SC_PHYS_PAGES);
    *free = page_bytes(_SC_AVPHYS_PAGES);
    return SUCCESS;
}
int cuDevicePrimaryCtxRetain(void** context, int device) {
    if (context == nullptr) return INVALID_VALUE;
    if (device != 0) return INVALID_DEVICE;
    *context = &context_token;
    return SUCCESS;
}
int cuDevicePrimaryCtxRelease_v2(int device) { return device == 0 ? SUCCESS : INVALID_DEVICE; }
int cuCtxSetCurrent(void* context) { return context == nullptr || context == &context_token ? SUCCESS : INVALID_CONTEXT; }
int cuCtxSynchronize() { return SUCCESS; }

int cuMemAlloc_v2(std::uint64_t* pointer, std::size_t bytes) { return allocate(pointer, bytes); }
int cuMemFree_v2(std::uint64_t pointer) { return release(pointer); }
int cuMemAllocAsync(std::uint64_t* pointer, std::size_t bytes, void* stream) {
    if (!valid_stream(stream)) return INVALID_HANDLE;
    return allocate(pointer, bytes);
}
int cuMemFreeAsync(std::uint64_t pointer, void* stream) {
    if (!valid_stream(stream)) return INVALID_HANDLE;
    return release(pointer);
}
int cuMemHostAlloc(void** pointer, std::size_t bytes, unsigned flags) {
    if (pointer == nullptr || bytes == 0 || (flags & ~HOST_ALLOC_FLAGS) != 0) return INVALID_VALUE;
    void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (p == nullptr) return OUT_OF_MEMORY;
    *pointer = p;
    std::lock_guard<std::mutex> lock(registry);
    pinned.insert(p);
    return SUCCESS;
}
int cuMemFreeHost(void* pointer) {
    {
        std::lock_guard<std::mutex> lock(registry);
        if (pinned.erase(pointer) == 0) return INVALID_VALUE;
    }
    std::free(pointer);
    return SUCCESS;
}

int cuMemsetD8_v2(std::uint64_t to, unsigned char value, std::size_t bytes) {
    std::memset(reinterpret_cast<void*>(to), value, bytes);
    return SUCCESS;
}
int cuMemsetD8Async(std::uint64_t to, unsigned char value, std::size_t bytes, void* stream) {
    if (!valid_stream(stream)) return INVALID_HANDLE;
    return cuMemsetD8_v2(to, value, bytes);
}
int cuMemcpyDtoD_v2(std::uint64_t to, std::uint64_t from, std::size_t bytes) {
    std::memmove(reinterpret_cast<void*>(to), reinterpret_cast<const void*>(from), bytes);
    return SUCCESS;
}
int cuMemcpyHtoD_v2(std::uint64_t to, const void* from, std::size_t bytes) {
    std::memcpy(reinterpret_cast<void*>(to), from, bytes);
    return SUCCESS;
}
int cuMemcpyDtoH_v2(void* to, std::uint64_t from, std::size_t bytes) {
    std::memcpy(to, reinterpret_cast<const void*>(from), bytes);
    return SUCCESS;
}
int cuMemcpyHtoDAsync_v2(std::uint64_t to, const void* from, std::size_t bytes, void* stream) {
    if (!valid_stream(stream)) return INVALID_HANDLE;
    return cuMemcpyHtoD_v2(to, from, bytes);
}
int cuMemcpyDtoHAsync_v2(void* to, std::uint64_t from, std::size_t bytes, void* stream) {
    if (!valid_stream(stream)) return INVALID_HANDLE;
    return cuMemcpyDtoH_v2(to, from, bytes);
}

int cuStreamCreate(void** stream, unsigned flags) {
    if (stream == nullptr || (flags & ~STREAM_FLAGS) != 0) return INVALID_VALUE;
    Stream* s = new Stream{flags};
    std::lock_guard<std::mutex> lock(registry);
    streams.insert(s);
    *stream = s;
    return SUCCESS;
}
int cuStreamDestroy_v2(void* stream) {
    {
        std::lock_guard<std::mutex> lock(registry);
        if (streams.erase(stream) == 0) return INVALID_HANDLE;
    }
    delete static_cast<Stream*>(stream);
    return SUCCESS;
}
int cuStreamSynchronize(void* stream) { return valid_stream(stream) ? SUCCESS : INVALID_HANDLE; }

int cuEventCreate(void** event, unsigned flags) {
    if (event == nullptr || (flags & ~EVENT_FLAGS) != 0) return INVALID_VALUE;
    Event* e = new Event{flags, false, {}};
    std::lock_guard<std::mutex> lock(registry);
    events.insert(e);
    *event = e;
    return SUCCESS;
}
int cuEventRecord(void* event, void* stream) {
    if (!live(events, event) || !valid_stream(stream)) return INVALID_HANDLE;
    Event* e = static_cast<Event*>(event);
    e->at = std::chrono::steady_clock::now();  // the stream's earlier work is already done
    e->recorded = true;
    return SUCCESS;
}
int cuEventSynchronize(void* event) { return live(events, event) ? SUCCESS : INVALID_HANDLE; }
int cuEventElapsedTime(float* milliseconds, void* start, void* end) {
    if (milliseconds == nullptr) return INVALID_VALUE;
    if (!live(events, start) || !live(events, end)) return INVALID_HANDLE;
    const Event* s = static_cast<const Event*>(start);
    const Event* e = static_cast<const Event*>(end);
    if (!s->recorded || !e->recorded || ((s->flags | e->flags) & EVENT_DISABLE_TIMING) != 0) return INVALID_HANDLE;
    *milliseconds = std::chrono::duration<float, std::milli>(e->at - s->at).count();
    return SUCCESS;
}
int cuEventElapsedTime_v2(float* milliseconds, void* start, void* end) { return cuEventElapsedTime(milliseconds, start, end); }
int cuEventDestroy_v2(void* event) {
    {
        std::lock_guard<std::mutex> lock(registry);
        if (events.erase(event) == 0) return INVALID_HANDLE;
    }
    delete static_cast<Event*>(event);
    return SUCCESS;
}

// The image is not read: every kernel of tandem.cu is linked into this library.
int cuModuleLoadData(void** module, const void* image) {
    if (module == nullptr || image == nullptr) return INVALID_VALUE;
    Module* m = new Module{};
    std::lock_guard<std::mutex> lock(registry);
    modules.insert(m);
    *module = m;
    return SUCCESS;
}
int cuModuleUnload(void* module) {
    {
        std::lock_guard<std::mutex> lock(registry);
        if (modules.erase(module) == 0) return INVALID_HANDLE;
    }
    delete static_cast<Module*>(module);
    return SUCCESS;
}
int cuModuleGetFunction(void** function, void* module, const char* name) {
    if (function == nullptr || name == nullptr) return INVALID_VALUE;
    if (!live(modules, module)) return INVALID_HANDLE;
    auto it = kernels.find(name);
    if (it == kernels.end()) return NOT_FOUND;
    *function = const_cast<KernelEntry*>(&*it);
    return SUCCESS;
}
int cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned shared_bytes, void* stream, void** params, void**) {
    if (function == nullptr || gx * gy * gz == 0 || bx * by * bz == 0 || bx * by * bz > 1024 ||
        shared_bytes > MAX_DYNAMIC_SHARED)
        return INVALID_VALUE;
    if (!valid_stream(stream)) return INVALID_HANDLE;
    const KernelEntry* kernel = static_cast<const KernelEntry*>(function);
    std::lock_guard<std::mutex> one_at_a_time(launches);
    return kernel->second(dim3{gx, gy, gz}, dim3{bx, by, bz}, params, kernel->first.c_str()) ? SUCCESS
                                                                                             : LAUNCH_FAILED;
}

int cuGetErrorName(int error, const char** name) {
    if (name == nullptr) return INVALID_VALUE;
    auto it = error_names.find(error);
    *name = it == error_names.end() ? nullptr : it->second;
    return *name == nullptr ? INVALID_VALUE : SUCCESS;
}
int cuGetErrorString(int error, const char** text) {
    if (text == nullptr) return INVALID_VALUE;
    auto described = error_strings.find(error);
    if (described != error_strings.end()) {
        *text = described->second;
        return SUCCESS;
    }
    return cuGetErrorName(error, text);
}
}
