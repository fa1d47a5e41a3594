package dev.tandem.bindings.cuda.internal;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Set;

/**
 * Raw downcalls of cuBLAS ({@code cublas_api.h}) in jextract's generated style, as {@link CudaDriverApi}
 * does for the driver: one descriptor, one handle and one method of the C name per function, returning the
 * {@code cublasStatus_t} unchecked; the {@code _v2} entry points. One instance binds one library (NVIDIA's
 * {@code libcublas.so.*}, or the host shim {@code libtandem_cublas_host.so}).
 *
 * <p>Internal: the API is the checked layer, {@link dev.tandem.bindings.cuda.CublasLibrary}.
 */
public final class CublasApi {
    /** {@code int}, {@code cublasStatus_t} and the enums ({@code cublasOperation_t}, {@code cudaDataType}, ...). */
    public static final ValueLayout.OfInt C_INT = ValueLayout.JAVA_INT;
    /** {@code long long int}. */
    public static final ValueLayout.OfLong C_LONG_LONG = ValueLayout.JAVA_LONG;
    /** Pointers and handles ({@code cublasHandle_t}, {@code cudaStream_t}, device pointers, {@code alpha} and {@code beta}). */
    public static final AddressLayout C_POINTER = ValueLayout.ADDRESS;

    private static final FunctionDescriptor cublasCreate_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cublasDestroy_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cublasSetStream_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
    private static final FunctionDescriptor cublasSetMathMode$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
    private static final FunctionDescriptor cublasGemmEx$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_INT, C_INT, C_POINTER, C_INT, C_INT, C_POINTER, C_POINTER, C_INT, C_INT, C_INT, C_INT);
    private static final FunctionDescriptor cublasGemmStridedBatchedEx$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_INT, C_INT, C_LONG_LONG, C_POINTER, C_INT, C_INT, C_LONG_LONG, C_POINTER, C_POINTER, C_INT, C_INT, C_LONG_LONG, C_INT, C_INT, C_INT);
    private static final FunctionDescriptor cublasGetStatusName$DESC = FunctionDescriptor.of(C_POINTER, C_INT);

    private final MethodHandle cublasCreate_v2$MH;
    private final MethodHandle cublasDestroy_v2$MH;
    private final MethodHandle cublasSetStream_v2$MH;
    private final MethodHandle cublasSetMathMode$MH;
    private final MethodHandle cublasGemmEx$MH;
    private final MethodHandle cublasGemmStridedBatchedEx$MH;
    private final MethodHandle cublasGetStatusName$MH;
    private final Set<String> bound;

    /**
     * Binds every function from {@code lookup}.
     *
     * @throws MissingSymbolException when a required function is missing (the optional ones may be)
     */
    public CublasApi(SymbolLookup lookup) {
        Binder binder = new Binder(lookup);
        cublasCreate_v2$MH = binder.required("cublasCreate_v2", cublasCreate_v2$DESC);
        cublasDestroy_v2$MH = binder.required("cublasDestroy_v2", cublasDestroy_v2$DESC);
        cublasSetStream_v2$MH = binder.required("cublasSetStream_v2", cublasSetStream_v2$DESC);
        cublasSetMathMode$MH = binder.required("cublasSetMathMode", cublasSetMathMode$DESC);
        cublasGemmEx$MH = binder.required("cublasGemmEx", cublasGemmEx$DESC);
        cublasGemmStridedBatchedEx$MH = binder.required("cublasGemmStridedBatchedEx", cublasGemmStridedBatchedEx$DESC);
        cublasGetStatusName$MH = binder.optional("cublasGetStatusName", cublasGetStatusName$DESC);
        bound = binder.bound();
    }

    /** True when the library exports {@code symbol} (always so for the required functions). */
    public boolean isBound(String symbol) {
        return bound.contains(symbol);
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
     * }
     */
    public int cublasCreate_v2(MemorySegment handle) {
        var mh$ = cublasCreate_v2$MH;
        try {
            return (int) mh$.invokeExact(handle);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
     * }
     */
    public int cublasDestroy_v2(MemorySegment handle) {
        var mh$ = cublasDestroy_v2$MH;
        try {
            return (int) mh$.invokeExact(handle);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
     * }
     */
    public int cublasSetStream_v2(MemorySegment handle, MemorySegment streamId) {
        var mh$ = cublasSetStream_v2$MH;
        try {
            return (int) mh$.invokeExact(handle, streamId);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
     * }
     */
    public int cublasSetMathMode(MemorySegment handle, int mode) {
        var mh$ = cublasSetMathMode$MH;
        try {
            return (int) mh$.invokeExact(handle, mode);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B, cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
     * }
     */
    public int cublasGemmEx(MemorySegment handle, int transa, int transb, int m, int n, int k, MemorySegment alpha, MemorySegment A, int Atype, int lda, MemorySegment B, int Btype, int ldb, MemorySegment beta, MemorySegment C, int Ctype, int ldc, int computeType, int algo) {
        var mh$ = cublasGemmEx$MH;
        try {
            return (int) mh$.invokeExact(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType, algo);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda, long long int strideA, const void *B, cudaDataType Btype, int ldb, long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc, long long int strideC, int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
     * }
     */
    public int cublasGemmStridedBatchedEx(MemorySegment handle, int transa, int transb, int m, int n, int k, MemorySegment alpha, MemorySegment A, int Atype, int lda, long strideA, MemorySegment B, int Btype, int ldb, long strideB, MemorySegment beta, MemorySegment C, int Ctype, int ldc, long strideC, int batchCount, int computeType, int algo) {
        var mh$ = cublasGemmStridedBatchedEx$MH;
        try {
            return (int) mh$.invokeExact(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * const char *cublasGetStatusName(cublasStatus_t status) // cuBLAS 11.4.2
     * }
     * Optional: see {@link #isBound}; throws {@link UnsatisfiedLinkError} when the library lacks it.
     */
    public MemorySegment cublasGetStatusName(int status) {
        var mh$ = cublasGetStatusName$MH;
        if (mh$ == null) {
            throw Binder.unresolved("cublasGetStatusName");
        }
        try {
            return (MemorySegment) mh$.invokeExact(status);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }
}
