package dev.tandem.bindings.cuda.internal;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Set;

/**
 * Raw downcalls of the CUDA driver API ({@code cuda.h}) in jextract's generated style: for each C function
 * one {@link FunctionDescriptor}, one {@link MethodHandle} and one method of the C name taking the C
 * arguments as they are ({@code CUresult} an {@code int}, {@code CUdeviceptr} and {@code size_t} a
 * {@code long}, handles and out-parameters {@link MemorySegment}s), returning the {@code CUresult}
 * unchecked. The {@code _v2} entry points, as {@code cuda.h} maps the names. Unlike jextract's static
 * bindings, one instance binds one library ({@code libcuda.so.1}, or the host build of Tandem's kernels),
 * so that both can be open in one process.
 *
 * <p>Internal: the API is the checked layer, {@link dev.tandem.bindings.cuda.CudaLibrary}. Optional
 * functions (newer than the oldest driver the backend runs on, or only used to name errors) may be absent:
 * {@link #isBound} says which are there, and calling an absent one throws {@link UnsatisfiedLinkError}.
 */
public final class CudaDriverApi {
    /** {@code int}, {@code unsigned int}, {@code CUresult}, {@code CUdevice} and the enums. */
    public static final ValueLayout.OfInt C_INT = ValueLayout.JAVA_INT;
    /** {@code size_t} and {@code CUdeviceptr} ({@code unsigned long long}) on the 64-bit platforms CUDA runs on. */
    public static final ValueLayout.OfLong C_LONG_LONG = ValueLayout.JAVA_LONG;
    /** {@code unsigned char}. */
    public static final ValueLayout.OfByte C_CHAR = ValueLayout.JAVA_BYTE;
    /** {@code float}. */
    public static final ValueLayout.OfFloat C_FLOAT = ValueLayout.JAVA_FLOAT;
    /** Pointers and opaque handles ({@code CUcontext}, {@code CUmodule}, {@code CUfunction}, {@code CUstream}, {@code CUevent}). */
    public static final AddressLayout C_POINTER = ValueLayout.ADDRESS;

    private static final FunctionDescriptor cuInit$DESC = FunctionDescriptor.of(C_INT, C_INT);
    private static final FunctionDescriptor cuDriverGetVersion$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuGetErrorName$DESC = FunctionDescriptor.of(C_INT, C_INT, C_POINTER);
    private static final FunctionDescriptor cuGetErrorString$DESC = FunctionDescriptor.of(C_INT, C_INT, C_POINTER);
    private static final FunctionDescriptor cuDeviceGetCount$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuDeviceGet$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
    private static final FunctionDescriptor cuDeviceGetName$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT);
    private static final FunctionDescriptor cuDeviceGetAttribute$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT);
    private static final FunctionDescriptor cuDeviceTotalMem_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
    private static final FunctionDescriptor cuDevicePrimaryCtxRetain$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
    private static final FunctionDescriptor cuDevicePrimaryCtxRelease_v2$DESC = FunctionDescriptor.of(C_INT, C_INT);
    private static final FunctionDescriptor cuCtxSetCurrent$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuCtxSynchronize$DESC = FunctionDescriptor.of(C_INT);
    private static final FunctionDescriptor cuMemGetInfo_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
    private static final FunctionDescriptor cuMemAlloc_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG_LONG);
    private static final FunctionDescriptor cuMemFree_v2$DESC = FunctionDescriptor.of(C_INT, C_LONG_LONG);
    private static final FunctionDescriptor cuMemAllocAsync$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG_LONG, C_POINTER);
    private static final FunctionDescriptor cuMemFreeAsync$DESC = FunctionDescriptor.of(C_INT, C_LONG_LONG, C_POINTER);
    private static final FunctionDescriptor cuMemHostAlloc$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG_LONG, C_INT);
    private static final FunctionDescriptor cuMemFreeHost$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuMemsetD8_v2$DESC = FunctionDescriptor.of(C_INT, C_LONG_LONG, C_CHAR, C_LONG_LONG);
    private static final FunctionDescriptor cuMemsetD8Async$DESC = FunctionDescriptor.of(C_INT, C_LONG_LONG, C_CHAR, C_LONG_LONG, C_POINTER);
    private static final FunctionDescriptor cuMemcpyHtoD_v2$DESC = FunctionDescriptor.of(C_INT, C_LONG_LONG, C_POINTER, C_LONG_LONG);
    private static final FunctionDescriptor cuMemcpyDtoH_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG_LONG, C_LONG_LONG);
    private static final FunctionDescriptor cuMemcpyDtoD_v2$DESC = FunctionDescriptor.of(C_INT, C_LONG_LONG, C_LONG_LONG, C_LONG_LONG);
    private static final FunctionDescriptor cuMemcpyHtoDAsync_v2$DESC = FunctionDescriptor.of(C_INT, C_LONG_LONG, C_POINTER, C_LONG_LONG, C_POINTER);
    private static final FunctionDescriptor cuMemcpyDtoHAsync_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_LONG_LONG, C_LONG_LONG, C_POINTER);
    private static final FunctionDescriptor cuStreamCreate$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
    private static final FunctionDescriptor cuStreamDestroy_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuStreamSynchronize$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuEventCreate$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT);
    private static final FunctionDescriptor cuEventRecord$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
    private static final FunctionDescriptor cuEventSynchronize$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuEventElapsedTime$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER);
    private static final FunctionDescriptor cuEventDestroy_v2$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuModuleLoadData$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER);
    private static final FunctionDescriptor cuModuleUnload$DESC = FunctionDescriptor.of(C_INT, C_POINTER);
    private static final FunctionDescriptor cuModuleGetFunction$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_POINTER, C_POINTER);
    private static final FunctionDescriptor cuLaunchKernel$DESC = FunctionDescriptor.of(C_INT, C_POINTER, C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_INT, C_POINTER, C_POINTER, C_POINTER);

    private final MethodHandle cuInit$MH;
    private final MethodHandle cuDriverGetVersion$MH;
    private final MethodHandle cuGetErrorName$MH;
    private final MethodHandle cuGetErrorString$MH;
    private final MethodHandle cuDeviceGetCount$MH;
    private final MethodHandle cuDeviceGet$MH;
    private final MethodHandle cuDeviceGetName$MH;
    private final MethodHandle cuDeviceGetAttribute$MH;
    private final MethodHandle cuDeviceTotalMem_v2$MH;
    private final MethodHandle cuDevicePrimaryCtxRetain$MH;
    private final MethodHandle cuDevicePrimaryCtxRelease_v2$MH;
    private final MethodHandle cuCtxSetCurrent$MH;
    private final MethodHandle cuCtxSynchronize$MH;
    private final MethodHandle cuMemGetInfo_v2$MH;
    private final MethodHandle cuMemAlloc_v2$MH;
    private final MethodHandle cuMemFree_v2$MH;
    private final MethodHandle cuMemAllocAsync$MH;
    private final MethodHandle cuMemFreeAsync$MH;
    private final MethodHandle cuMemHostAlloc$MH;
    private final MethodHandle cuMemFreeHost$MH;
    private final MethodHandle cuMemsetD8_v2$MH;
    private final MethodHandle cuMemsetD8Async$MH;
    private final MethodHandle cuMemcpyHtoD_v2$MH;
    private final MethodHandle cuMemcpyDtoH_v2$MH;
    private final MethodHandle cuMemcpyDtoD_v2$MH;
    private final MethodHandle cuMemcpyHtoDAsync_v2$MH;
    private final MethodHandle cuMemcpyDtoHAsync_v2$MH;
    private final MethodHandle cuStreamCreate$MH;
    private final MethodHandle cuStreamDestroy_v2$MH;
    private final MethodHandle cuStreamSynchronize$MH;
    private final MethodHandle cuEventCreate$MH;
    private final MethodHandle cuEventRecord$MH;
    private final MethodHandle cuEventSynchronize$MH;
    private final MethodHandle cuEventElapsedTime$MH;
    private final MethodHandle cuEventDestroy_v2$MH;
    private final MethodHandle cuModuleLoadData$MH;
    private final MethodHandle cuModuleUnload$MH;
    private final MethodHandle cuModuleGetFunction$MH;
    private final MethodHandle cuLaunchKernel$MH;
    private final Set<String> bound;

    /**
     * Binds every function from {@code lookup}.
     *
     * @throws MissingSymbolException when a required function is missing (the optional ones may be)
     */
    public CudaDriverApi(SymbolLookup lookup) {
        Binder binder = new Binder(lookup);
        cuInit$MH = binder.required("cuInit", cuInit$DESC);
        cuDriverGetVersion$MH = binder.required("cuDriverGetVersion", cuDriverGetVersion$DESC);
        cuGetErrorName$MH = binder.optional("cuGetErrorName", cuGetErrorName$DESC);
        cuGetErrorString$MH = binder.optional("cuGetErrorString", cuGetErrorString$DESC);
        cuDeviceGetCount$MH = binder.required("cuDeviceGetCount", cuDeviceGetCount$DESC);
        cuDeviceGet$MH = binder.required("cuDeviceGet", cuDeviceGet$DESC);
        cuDeviceGetName$MH = binder.required("cuDeviceGetName", cuDeviceGetName$DESC);
        cuDeviceGetAttribute$MH = binder.required("cuDeviceGetAttribute", cuDeviceGetAttribute$DESC);
        cuDeviceTotalMem_v2$MH = binder.required("cuDeviceTotalMem_v2", cuDeviceTotalMem_v2$DESC);
        cuDevicePrimaryCtxRetain$MH = binder.required("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain$DESC);
        cuDevicePrimaryCtxRelease_v2$MH = binder.required("cuDevicePrimaryCtxRelease_v2", cuDevicePrimaryCtxRelease_v2$DESC);
        cuCtxSetCurrent$MH = binder.required("cuCtxSetCurrent", cuCtxSetCurrent$DESC);
        cuCtxSynchronize$MH = binder.required("cuCtxSynchronize", cuCtxSynchronize$DESC);
        cuMemGetInfo_v2$MH = binder.required("cuMemGetInfo_v2", cuMemGetInfo_v2$DESC);
        cuMemAlloc_v2$MH = binder.required("cuMemAlloc_v2", cuMemAlloc_v2$DESC);
        cuMemFree_v2$MH = binder.required("cuMemFree_v2", cuMemFree_v2$DESC);
        cuMemAllocAsync$MH = binder.optional("cuMemAllocAsync", cuMemAllocAsync$DESC);
        cuMemFreeAsync$MH = binder.optional("cuMemFreeAsync", cuMemFreeAsync$DESC);
        cuMemHostAlloc$MH = binder.required("cuMemHostAlloc", cuMemHostAlloc$DESC);
        cuMemFreeHost$MH = binder.required("cuMemFreeHost", cuMemFreeHost$DESC);
        cuMemsetD8_v2$MH = binder.required("cuMemsetD8_v2", cuMemsetD8_v2$DESC);
        cuMemsetD8Async$MH = binder.required("cuMemsetD8Async", cuMemsetD8Async$DESC);
        cuMemcpyHtoD_v2$MH = binder.required("cuMemcpyHtoD_v2", cuMemcpyHtoD_v2$DESC);
        cuMemcpyDtoH_v2$MH = binder.required("cuMemcpyDtoH_v2", cuMemcpyDtoH_v2$DESC);
        cuMemcpyDtoD_v2$MH = binder.required("cuMemcpyDtoD_v2", cuMemcpyDtoD_v2$DESC);
        cuMemcpyHtoDAsync_v2$MH = binder.required("cuMemcpyHtoDAsync_v2", cuMemcpyHtoDAsync_v2$DESC);
        cuMemcpyDtoHAsync_v2$MH = binder.required("cuMemcpyDtoHAsync_v2", cuMemcpyDtoHAsync_v2$DESC);
        cuStreamCreate$MH = binder.required("cuStreamCreate", cuStreamCreate$DESC);
        cuStreamDestroy_v2$MH = binder.required("cuStreamDestroy_v2", cuStreamDestroy_v2$DESC);
        cuStreamSynchronize$MH = binder.required("cuStreamSynchronize", cuStreamSynchronize$DESC);
        cuEventCreate$MH = binder.required("cuEventCreate", cuEventCreate$DESC);
        cuEventRecord$MH = binder.required("cuEventRecord", cuEventRecord$DESC);
        cuEventSynchronize$MH = binder.required("cuEventSynchronize", cuEventSynchronize$DESC);
        cuEventElapsedTime$MH = binder.required("cuEventElapsedTime", cuEventElapsedTime$DESC);
        cuEventDestroy_v2$MH = binder.required("cuEventDestroy_v2", cuEventDestroy_v2$DESC);
        cuModuleLoadData$MH = binder.required("cuModuleLoadData", cuModuleLoadData$DESC);
        cuModuleUnload$MH = binder.required("cuModuleUnload", cuModuleUnload$DESC);
        cuModuleGetFunction$MH = binder.required("cuModuleGetFunction", cuModuleGetFunction$DESC);
        cuLaunchKernel$MH = binder.required("cuLaunchKernel", cuLaunchKernel$DESC);
        bound = binder.bound();
    }

    /** True when the library exports {@code symbol} (always so for the required functions). */
    public boolean isBound(String symbol) {
        return bound.contains(symbol);
    }

    /**
     * {@snippet lang=c :
     * CUresult cuInit(unsigned int Flags)
     * }
     */
    public int cuInit(int Flags) {
        var mh$ = cuInit$MH;
        try {
            return (int) mh$.invokeExact(Flags);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDriverGetVersion(int *driverVersion)
     * }
     */
    public int cuDriverGetVersion(MemorySegment driverVersion) {
        var mh$ = cuDriverGetVersion$MH;
        try {
            return (int) mh$.invokeExact(driverVersion);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuGetErrorName(CUresult error, const char **pStr)
     * }
     * Optional: see {@link #isBound}; throws {@link UnsatisfiedLinkError} when the library lacks it.
     */
    public int cuGetErrorName(int error, MemorySegment pStr) {
        var mh$ = cuGetErrorName$MH;
        if (mh$ == null) {
            throw Binder.unresolved("cuGetErrorName");
        }
        try {
            return (int) mh$.invokeExact(error, pStr);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuGetErrorString(CUresult error, const char **pStr)
     * }
     * Optional: see {@link #isBound}; throws {@link UnsatisfiedLinkError} when the library lacks it.
     */
    public int cuGetErrorString(int error, MemorySegment pStr) {
        var mh$ = cuGetErrorString$MH;
        if (mh$ == null) {
            throw Binder.unresolved("cuGetErrorString");
        }
        try {
            return (int) mh$.invokeExact(error, pStr);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGetCount(int *count)
     * }
     */
    public int cuDeviceGetCount(MemorySegment count) {
        var mh$ = cuDeviceGetCount$MH;
        try {
            return (int) mh$.invokeExact(count);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGet(CUdevice *device, int ordinal)
     * }
     */
    public int cuDeviceGet(MemorySegment device, int ordinal) {
        var mh$ = cuDeviceGet$MH;
        try {
            return (int) mh$.invokeExact(device, ordinal);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
     * }
     */
    public int cuDeviceGetName(MemorySegment name, int len, int dev) {
        var mh$ = cuDeviceGetName$MH;
        try {
            return (int) mh$.invokeExact(name, len, dev);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
     * }
     */
    public int cuDeviceGetAttribute(MemorySegment pi, int attrib, int dev) {
        var mh$ = cuDeviceGetAttribute$MH;
        try {
            return (int) mh$.invokeExact(pi, attrib, dev);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
     * }
     */
    public int cuDeviceTotalMem_v2(MemorySegment bytes, int dev) {
        var mh$ = cuDeviceTotalMem_v2$MH;
        try {
            return (int) mh$.invokeExact(bytes, dev);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
     * }
     */
    public int cuDevicePrimaryCtxRetain(MemorySegment pctx, int dev) {
        var mh$ = cuDevicePrimaryCtxRetain$MH;
        try {
            return (int) mh$.invokeExact(pctx, dev);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
     * }
     */
    public int cuDevicePrimaryCtxRelease_v2(int dev) {
        var mh$ = cuDevicePrimaryCtxRelease_v2$MH;
        try {
            return (int) mh$.invokeExact(dev);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuCtxSetCurrent(CUcontext ctx)
     * }
     */
    public int cuCtxSetCurrent(MemorySegment ctx) {
        var mh$ = cuCtxSetCurrent$MH;
        try {
            return (int) mh$.invokeExact(ctx);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuCtxSynchronize(void)
     * }
     */
    public int cuCtxSynchronize() {
        var mh$ = cuCtxSynchronize$MH;
        try {
            return (int) mh$.invokeExact();
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
     * }
     */
    public int cuMemGetInfo_v2(MemorySegment free, MemorySegment total) {
        var mh$ = cuMemGetInfo_v2$MH;
        try {
            return (int) mh$.invokeExact(free, total);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
     * }
     */
    public int cuMemAlloc_v2(MemorySegment dptr, long bytesize) {
        var mh$ = cuMemAlloc_v2$MH;
        try {
            return (int) mh$.invokeExact(dptr, bytesize);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemFree_v2(CUdeviceptr dptr)
     * }
     */
    public int cuMemFree_v2(long dptr) {
        var mh$ = cuMemFree_v2$MH;
        try {
            return (int) mh$.invokeExact(dptr);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) // CUDA 11.2
     * }
     * Optional: see {@link #isBound}; throws {@link UnsatisfiedLinkError} when the library lacks it.
     */
    public int cuMemAllocAsync(MemorySegment dptr, long bytesize, MemorySegment hStream) {
        var mh$ = cuMemAllocAsync$MH;
        if (mh$ == null) {
            throw Binder.unresolved("cuMemAllocAsync");
        }
        try {
            return (int) mh$.invokeExact(dptr, bytesize, hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) // CUDA 11.2
     * }
     * Optional: see {@link #isBound}; throws {@link UnsatisfiedLinkError} when the library lacks it.
     */
    public int cuMemFreeAsync(long dptr, MemorySegment hStream) {
        var mh$ = cuMemFreeAsync$MH;
        if (mh$ == null) {
            throw Binder.unresolved("cuMemFreeAsync");
        }
        try {
            return (int) mh$.invokeExact(dptr, hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
     * }
     */
    public int cuMemHostAlloc(MemorySegment pp, long bytesize, int Flags) {
        var mh$ = cuMemHostAlloc$MH;
        try {
            return (int) mh$.invokeExact(pp, bytesize, Flags);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemFreeHost(void *p)
     * }
     */
    public int cuMemFreeHost(MemorySegment p) {
        var mh$ = cuMemFreeHost$MH;
        try {
            return (int) mh$.invokeExact(p);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N)
     * }
     */
    public int cuMemsetD8_v2(long dstDevice, byte uc, long N) {
        var mh$ = cuMemsetD8_v2$MH;
        try {
            return (int) mh$.invokeExact(dstDevice, uc, N);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream)
     * }
     */
    public int cuMemsetD8Async(long dstDevice, byte uc, long N, MemorySegment hStream) {
        var mh$ = cuMemsetD8Async$MH;
        try {
            return (int) mh$.invokeExact(dstDevice, uc, N, hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount)
     * }
     */
    public int cuMemcpyHtoD_v2(long dstDevice, MemorySegment srcHost, long ByteCount) {
        var mh$ = cuMemcpyHtoD_v2$MH;
        try {
            return (int) mh$.invokeExact(dstDevice, srcHost, ByteCount);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount)
     * }
     */
    public int cuMemcpyDtoH_v2(MemorySegment dstHost, long srcDevice, long ByteCount) {
        var mh$ = cuMemcpyDtoH_v2$MH;
        try {
            return (int) mh$.invokeExact(dstHost, srcDevice, ByteCount);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount)
     * }
     */
    public int cuMemcpyDtoD_v2(long dstDevice, long srcDevice, long ByteCount) {
        var mh$ = cuMemcpyDtoD_v2$MH;
        try {
            return (int) mh$.invokeExact(dstDevice, srcDevice, ByteCount);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream)
     * }
     */
    public int cuMemcpyHtoDAsync_v2(long dstDevice, MemorySegment srcHost, long ByteCount, MemorySegment hStream) {
        var mh$ = cuMemcpyHtoDAsync_v2$MH;
        try {
            return (int) mh$.invokeExact(dstDevice, srcHost, ByteCount, hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream)
     * }
     */
    public int cuMemcpyDtoHAsync_v2(MemorySegment dstHost, long srcDevice, long ByteCount, MemorySegment hStream) {
        var mh$ = cuMemcpyDtoHAsync_v2$MH;
        try {
            return (int) mh$.invokeExact(dstHost, srcDevice, ByteCount, hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
     * }
     */
    public int cuStreamCreate(MemorySegment phStream, int Flags) {
        var mh$ = cuStreamCreate$MH;
        try {
            return (int) mh$.invokeExact(phStream, Flags);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamDestroy_v2(CUstream hStream)
     * }
     */
    public int cuStreamDestroy_v2(MemorySegment hStream) {
        var mh$ = cuStreamDestroy_v2$MH;
        try {
            return (int) mh$.invokeExact(hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuStreamSynchronize(CUstream hStream)
     * }
     */
    public int cuStreamSynchronize(MemorySegment hStream) {
        var mh$ = cuStreamSynchronize$MH;
        try {
            return (int) mh$.invokeExact(hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
     * }
     */
    public int cuEventCreate(MemorySegment phEvent, int Flags) {
        var mh$ = cuEventCreate$MH;
        try {
            return (int) mh$.invokeExact(phEvent, Flags);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
     * }
     */
    public int cuEventRecord(MemorySegment hEvent, MemorySegment hStream) {
        var mh$ = cuEventRecord$MH;
        try {
            return (int) mh$.invokeExact(hEvent, hStream);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventSynchronize(CUevent hEvent)
     * }
     */
    public int cuEventSynchronize(MemorySegment hEvent) {
        var mh$ = cuEventSynchronize$MH;
        try {
            return (int) mh$.invokeExact(hEvent);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)
     * }
     */
    public int cuEventElapsedTime(MemorySegment pMilliseconds, MemorySegment hStart, MemorySegment hEnd) {
        var mh$ = cuEventElapsedTime$MH;
        try {
            return (int) mh$.invokeExact(pMilliseconds, hStart, hEnd);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuEventDestroy_v2(CUevent hEvent)
     * }
     */
    public int cuEventDestroy_v2(MemorySegment hEvent) {
        var mh$ = cuEventDestroy_v2$MH;
        try {
            return (int) mh$.invokeExact(hEvent);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuModuleLoadData(CUmodule *module, const void *image)
     * }
     */
    public int cuModuleLoadData(MemorySegment module, MemorySegment image) {
        var mh$ = cuModuleLoadData$MH;
        try {
            return (int) mh$.invokeExact(module, image);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuModuleUnload(CUmodule hmod)
     * }
     */
    public int cuModuleUnload(MemorySegment hmod) {
        var mh$ = cuModuleUnload$MH;
        try {
            return (int) mh$.invokeExact(hmod);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
     * }
     */
    public int cuModuleGetFunction(MemorySegment hfunc, MemorySegment hmod, MemorySegment name) {
        var mh$ = cuModuleGetFunction$MH;
        try {
            return (int) mh$.invokeExact(hfunc, hmod, name);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }

    /**
     * {@snippet lang=c :
     * CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra)
     * }
     */
    public int cuLaunchKernel(MemorySegment f, int gridDimX, int gridDimY, int gridDimZ, int blockDimX, int blockDimY, int blockDimZ, int sharedMemBytes, MemorySegment hStream, MemorySegment kernelParams, MemorySegment extra) {
        var mh$ = cuLaunchKernel$MH;
        try {
            return (int) mh$.invokeExact(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream, kernelParams, extra);
        } catch (Error | RuntimeException ex) {
            throw ex;
        } catch (Throwable ex$) {
            throw new AssertionError("should not reach here", ex$);
        }
    }
}
