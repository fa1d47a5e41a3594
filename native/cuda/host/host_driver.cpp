// The CUDA driver entry points Tandem's Java code calls, implemented on the host over the kernels of
// tandem.cu built by g++ (cuda_host.h): "device" memory is host memory, a launch runs at once, streams
// and contexts are tokens. The Java CudaBackend is pointed at this library in tests
// (-Dtandem.cuda.host.library=... in the tests, -Dtandem.cuda.library=... for --device cuda), so the same Java code that drives a GPU drives these kernels.
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

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
    TANDEM_KERNEL(tandem_attention_f32),
    TANDEM_KERNEL(tandem_attention_bf16),
    TANDEM_KERNEL(tandem_add_f32),
    TANDEM_KERNEL(tandem_silu_mul_f32),
    TANDEM_KERNEL(tandem_add_bias_f32),
    TANDEM_KERNEL(tandem_add_bias_bf16),
    TANDEM_KERNEL(tandem_add_bias_f16),
    TANDEM_KERNEL(tandem_embedding_gather_f32),
    TANDEM_KERNEL(tandem_embedding_gather_bf16),
    TANDEM_KERNEL(tandem_embedding_gather_f16),
    TANDEM_KERNEL(tandem_rmsnorm_f32),
    TANDEM_KERNEL(tandem_rmsnorm_bf16),
    TANDEM_KERNEL(tandem_rmsnorm_f16),
    TANDEM_KERNEL(tandem_rope_f32),
    TANDEM_KERNEL(tandem_matmul_f32),
    TANDEM_KERNEL(tandem_matmul_bf16),
    TANDEM_KERNEL(tandem_matmul_f16),
    TANDEM_KERNEL(tandem_read_bandwidth),
    TANDEM_KERNEL(tandem_multiply_add_peak),
    TANDEM_KERNEL(tandem_softmax_f32),
    TANDEM_KERNEL(tandem_argmax_f32),
};

constexpr int SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, NOT_FOUND = 500, LAUNCH_FAILED = 719;
using KernelEntry = std::pair<const std::string, Launcher>;  // a CUfunction points at its entry of kernels
int module_token, context_token;
std::mutex launches;  // one launch at a time: a launch's grid and block sizes are process-wide in cuda_host.h
}  // namespace

extern "C" {
int cuInit(unsigned) { return SUCCESS; }
int cuDriverGetVersion(int* version) { *version = 13000; return SUCCESS; }
int cuDeviceGetCount(int* count) { *count = 1; return SUCCESS; }
int cuDeviceGet(int* device, int ordinal) { *device = ordinal; return ordinal == 0 ? SUCCESS : INVALID_VALUE; }
int cuDeviceGetName(char* name, int length, int) {
    std::strncpy(name, "Tandem host build (no GPU)", length);
    if (length > 0) name[length - 1] = 0;
    return SUCCESS;
}
int cuDevicePrimaryCtxRetain(void** context, int) { *context = &context_token; return SUCCESS; }
int cuDevicePrimaryCtxRelease_v2(int) { return SUCCESS; }
int cuCtxSetCurrent(void*) { return SUCCESS; }
int cuCtxSynchronize() { return SUCCESS; }
int cuMemAlloc_v2(std::uint64_t* pointer, std::size_t bytes) {
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (p == nullptr) return OUT_OF_MEMORY;
    *pointer = reinterpret_cast<std::uint64_t>(p);
    return SUCCESS;
}
int cuMemFree_v2(std::uint64_t pointer) { std::free(reinterpret_cast<void*>(pointer)); return SUCCESS; }
int cuMemsetD8_v2(std::uint64_t to, unsigned char value, std::size_t bytes) {
    std::memset(reinterpret_cast<void*>(to), value, bytes);
    return SUCCESS;
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
int cuModuleLoadData(void** module, const void*) { *module = &module_token; return SUCCESS; }
int cuModuleUnload(void*) { return SUCCESS; }
int cuModuleGetFunction(void** function, void*, const char* name) {
    auto it = kernels.find(name);
    if (it == kernels.end()) return NOT_FOUND;
    *function = const_cast<KernelEntry*>(&*it);
    return SUCCESS;
}
int cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned, void*, void** params, void**) {
    if (function == nullptr || gx * gy * gz == 0 || bx * by * bz == 0 || bx * by * bz > 1024) return INVALID_VALUE;
    const KernelEntry* kernel = static_cast<const KernelEntry*>(function);
    std::lock_guard<std::mutex> one_at_a_time(launches);
    return kernel->second(dim3{gx, gy, gz}, dim3{bx, by, bz}, params, kernel->first.c_str()) ? SUCCESS
                                                                                             : LAUNCH_FAILED;
}
int cuGetErrorName(int error, const char** name) {
    switch (error) {
        case SUCCESS: *name = "CUDA_SUCCESS"; return SUCCESS;
        case INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; return SUCCESS;
        case OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; return SUCCESS;
        case NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; return SUCCESS;
        case LAUNCH_FAILED: *name = "CUDA_ERROR_LAUNCH_FAILED"; return SUCCESS;
        default: *name = nullptr; return INVALID_VALUE;
    }
}
}
