// The cuBLAS entry points Tandem's Java code calls (CublasLibrary), implemented on the host over the host
// build's "device" memory (host memory: native/cuda/host/host_driver.cpp), so that the Java cuBLAS path is
// tested where there is no GPU. Built by build-host.sh into libtandem_cublas_host.so; plain g++, no CUDA
// toolkit.
//
// What it does, exactly as cuBLAS defines it: C = alpha * op(A) * op(B) + beta * C over column-major
// matrices, op(X) = X (CUBLAS_OP_N) or its transpose (CUBLAS_OP_T); A is lda-strided, op(A) is m x k, op(B)
// is k x n, C is m x n; with beta == 0, C is not read (NaN in C does not propagate). alpha and beta are
// floats in host memory (CUBLAS_POINTER_MODE_HOST, the default). The strided batched form does the same
// for batchCount matrices at strideA / strideB / strideC elements apart.
//
// Supported: A and B both CUDA_R_32F, CUDA_R_16F or CUDA_R_16BF; C CUDA_R_32F; compute type
// CUBLAS_COMPUTE_32F or CUBLAS_COMPUTE_32F_PEDANTIC; any algorithm value (ignored); math modes
// CUBLAS_DEFAULT_MATH and CUBLAS_PEDANTIC_MATH (TF32 and the others are refused: this shim computes in strict
// f32 only). Anything else is CUBLAS_STATUS_NOT_SUPPORTED; bad sizes or leading dimensions are
// CUBLAS_STATUS_INVALID_VALUE, checked in cuBLAS's order. Each element of C is one f32 sum over p = 0..k-1
// in that order (inputs widened to f32 exactly), then alpha * sum + beta * c: a fixed summation order, so a
// plain Java loop gives the same bits. The stream is a token; the work is done before the call returns.
#include <cstdint>
#include <cstring>
#include <mutex>
#include <unordered_set>

namespace {
// cublasStatus_t (cublas_api.h)
constexpr int SUCCESS = 0, NOT_INITIALIZED = 1, ALLOC_FAILED = 3, INVALID_VALUE = 7, ARCH_MISMATCH = 8,
              MAPPING_ERROR = 11, EXECUTION_FAILED = 13, INTERNAL_ERROR = 14, NOT_SUPPORTED = 15, LICENSE_ERROR = 16;
// cublasOperation_t
constexpr int OP_N = 0, OP_T = 1;
// cudaDataType (library_types.h)
constexpr int R_32F = 0, R_16F = 2, R_16BF = 14;
// cublasComputeType_t
constexpr int COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69;
// cublasMath_t
constexpr int DEFAULT_MATH = 0, PEDANTIC_MATH = 2;

struct Handle {
    void* stream;
    int math_mode;
};

std::mutex registry;
std::unordered_set<const void*> handles;

bool live(const void* handle) {
    std::lock_guard<std::mutex> lock(registry);
    return handles.count(handle) != 0;
}

float from_bf16(std::uint16_t bits) {
    std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &wide, sizeof f);
    return f;
}

float from_f16(std::uint16_t bits) {
    std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
    std::uint32_t exponent = (bits >> 10) & 0x1fu;
    std::uint32_t mantissa = bits & 0x3ffu;
    std::uint32_t wide;
    if (exponent == 0x1f) {
        wide = sign | 0x7f800000u | (mantissa << 13);  // infinity, NaN (payload kept)
    } else if (exponent != 0) {
        wide = sign | ((exponent + 112) << 23) | (mantissa << 13);  // normal: rebias 15 -> 127
    } else if (mantissa == 0) {
        wide = sign;  // zero
    } else {
        // subnormal: mantissa * 2^-24, exact in f32
        float f = static_cast<float>(mantissa) * 0x1p-24f;
        return sign != 0 ? -f : f;
    }
    float f;
    std::memcpy(&f, &wide, sizeof f);
    return f;
}

// Element i (0-based) of a matrix of type `type` at `base`, widened to f32.
float element(const void* base, int type, std::int64_t i) {
    switch (type) {
        case R_32F: return static_cast<const float*>(base)[i];
        case R_16BF: return from_bf16(static_cast<const std::uint16_t*>(base)[i]);
        default: return from_f16(static_cast<const std::uint16_t*>(base)[i]);
    }
}

int check(const void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* A, int a_type,
          int lda, const void* B, int b_type, int ldb, const void* beta, void* C, int c_type, int ldc, int batch,
          int compute) {
    if (!live(handle)) return NOT_INITIALIZED;
    if ((transa != OP_N && transa != OP_T) || (transb != OP_N && transb != OP_T)) return INVALID_VALUE;
    if (m < 0 || n < 0 || k < 0 || batch < 0) return INVALID_VALUE;
    if (lda < (transa == OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1))) return INVALID_VALUE;
    if (ldb < (transb == OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1))) return INVALID_VALUE;
    if (ldc < (m > 1 ? m : 1)) return INVALID_VALUE;
    if (compute != COMPUTE_32F && compute != COMPUTE_32F_PEDANTIC) return NOT_SUPPORTED;
    if (a_type != b_type || (a_type != R_32F && a_type != R_16F && a_type != R_16BF) || c_type != R_32F)
        return NOT_SUPPORTED;
    int mode = static_cast<const Handle*>(handle)->math_mode & ~16;  // DISALLOW_REDUCED_PRECISION_REDUCTION: moot
    if (mode != DEFAULT_MATH && mode != PEDANTIC_MATH) return NOT_SUPPORTED;
    if (m == 0 || n == 0 || batch == 0) return SUCCESS;
    if (alpha == nullptr || beta == nullptr || C == nullptr || (k > 0 && (A == nullptr || B == nullptr)))
        return INVALID_VALUE;
    return SUCCESS;
}

void gemm(int transa, int transb, int m, int n, int k, float alpha, const void* A, int type, int lda, const void* B,
          int ldb, float beta, float* C, int ldc) {
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) {
            float sum = 0.0f;
            for (int p = 0; p < k; p++) {
                std::int64_t a = transa == OP_N ? i + static_cast<std::int64_t>(p) * lda : p + static_cast<std::int64_t>(i) * lda;
                std::int64_t b = transb == OP_N ? p + static_cast<std::int64_t>(j) * ldb : j + static_cast<std::int64_t>(p) * ldb;
                float product = element(A, type, a) * element(B, type, b);
                sum = sum + product;
            }
            float& c = C[i + static_cast<std::int64_t>(j) * ldc];
            float scaled = alpha * sum;
            c = beta == 0.0f ? scaled : scaled + beta * c;
        }
    }
}

std::size_t element_bytes(int type) { return type == R_32F ? 4 : 2; }
}  // namespace

extern "C" {
int cublasCreate_v2(void** handle) {
    if (handle == nullptr) return INVALID_VALUE;
    Handle* h = new Handle{nullptr, DEFAULT_MATH};
    std::lock_guard<std::mutex> lock(registry);
    handles.insert(h);
    *handle = h;
    return SUCCESS;
}
int cublasDestroy_v2(void* handle) {
    {
        std::lock_guard<std::mutex> lock(registry);
        if (handles.erase(handle) == 0) return NOT_INITIALIZED;
    }
    delete static_cast<Handle*>(handle);
    return SUCCESS;
}
int cublasSetStream_v2(void* handle, void* stream) {
    if (!live(handle)) return NOT_INITIALIZED;
    static_cast<Handle*>(handle)->stream = stream;
    return SUCCESS;
}
int cublasGetStream_v2(void* handle, void** stream) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (stream == nullptr) return INVALID_VALUE;
    *stream = static_cast<Handle*>(handle)->stream;
    return SUCCESS;
}
int cublasSetMathMode(void* handle, int mode) {
    if (!live(handle)) return NOT_INITIALIZED;
    static_cast<Handle*>(handle)->math_mode = mode;  // what the GEMMs cannot honour they refuse
    return SUCCESS;
}
int cublasGetMathMode(void* handle, int* mode) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (mode == nullptr) return INVALID_VALUE;
    *mode = static_cast<Handle*>(handle)->math_mode;
    return SUCCESS;
}
int cublasGemmEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* A,
                 int a_type, int lda, const void* B, int b_type, int ldb, const void* beta, void* C, int c_type,
                 int ldc, int compute, int /*algo*/) {
    int status = check(handle, transa, transb, m, n, k, alpha, A, a_type, lda, B, b_type, ldb, beta, C, c_type, ldc,
                       1, compute);
    if (status != SUCCESS || m == 0 || n == 0) return status;
    gemm(transa, transb, m, n, k, *static_cast<const float*>(alpha), A, a_type, lda, B, ldb,
         *static_cast<const float*>(beta), static_cast<float*>(C), ldc);
    return SUCCESS;
}
int cublasGemmStridedBatchedEx(void* handle, int transa, int transb, int m, int n, int k, const void* alpha,
                               const void* A, int a_type, int lda, long long stride_a, const void* B, int b_type,
                               int ldb, long long stride_b, const void* beta, void* C, int c_type, int ldc,
                               long long stride_c, int batch, int compute, int /*algo*/) {
    int status = check(handle, transa, transb, m, n, k, alpha, A, a_type, lda, B, b_type, ldb, beta, C, c_type, ldc,
                       batch, compute);
    if (status != SUCCESS || m == 0 || n == 0 || batch == 0) return status;
    float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
    std::size_t in_bytes = element_bytes(a_type);
    for (int i = 0; i < batch; i++) {
        const char* Ai = static_cast<const char*>(A) + i * stride_a * static_cast<long long>(in_bytes);
        const char* Bi = static_cast<const char*>(B) + i * stride_b * static_cast<long long>(in_bytes);
        float* Ci = static_cast<float*>(C) + i * stride_c;
        gemm(transa, transb, m, n, k, a, Ai, a_type, lda, Bi, ldb, b, Ci, ldc);
    }
    return SUCCESS;
}
const char* cublasGetStatusName(int status) {
    switch (status) {
        case SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
        default: return "CUBLAS_STATUS_UNKNOWN";
    }
}
}
