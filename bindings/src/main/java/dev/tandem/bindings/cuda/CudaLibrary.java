package dev.tandem.bindings.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * One CUDA driver library bound through FFM: NVIDIA's {@code libcuda.so.1}, or the host build of Tandem's
 * kernels ({@code native/cuda/host}), which exports the same entry points so that the same Java code drives
 * both. Raw downcalls in jextract's style (one descriptor and one handle per C function, the {@code _v2}
 * entry points), under a checked layer: every failing {@code CUresult} becomes an exception naming the call
 * and the CUDA error. {@link #open} never throws: a library that is missing, lacks a symbol or fails
 * {@code cuInit} gives an unavailable instance whose {@link #reason()} says why, and whose calls throw that
 * reason.
 *
 * <p>Device pointers ({@code CUdeviceptr}) are {@code long}s; contexts, modules and functions are
 * addresses.
 */
public final class CudaLibrary {
    private static final FunctionDescriptor INT_OF_INT = FunctionDescriptor.of(JAVA_INT, JAVA_INT);
    private static final FunctionDescriptor INT_OF_ADDRESS = FunctionDescriptor.of(JAVA_INT, ADDRESS);
    private static final FunctionDescriptor INT_OF_VOID = FunctionDescriptor.of(JAVA_INT);

    private final String library;
    private final String reason;
    private MethodHandle cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDevicePrimaryCtxRetain,
            cuCtxSetCurrent, cuCtxSynchronize, cuMemAlloc, cuMemFree, cuMemsetD8, cuMemcpyHtoD, cuMemcpyDtoH, cuMemcpyDtoD,
            cuModuleLoadData,
            cuModuleGetFunction, cuLaunchKernel;

    private CudaLibrary(String library, String reason) {
        this.library = library;
        this.reason = reason;
    }

    /**
     * Loads {@code library} (a name the dynamic linker looks up, such as {@code libcuda.so.1}, or a path),
     * binds its functions and calls {@code cuInit(0)}; never throws.
     */
    @SuppressWarnings("restricted") // this layer is where native access is meant to happen
    public static CudaLibrary open(String library) {
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            return new CudaLibrary(library, library + " was not found on the library path (no NVIDIA driver).");
        } catch (IllegalCallerException e) {
            return new CudaLibrary(library, library + " could not be loaded because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).");
        }
        CudaLibrary l = new CudaLibrary(library, null);
        try {
            Linker linker = Linker.nativeLinker();
            MethodHandle cuInit = l.bind(linker, lookup, "cuInit", INT_OF_INT);
            l.cuDriverGetVersion = l.bind(linker, lookup, "cuDriverGetVersion", INT_OF_ADDRESS);
            l.cuDeviceGetCount = l.bind(linker, lookup, "cuDeviceGetCount", INT_OF_ADDRESS);
            l.cuDeviceGet = l.bind(linker, lookup, "cuDeviceGet", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
            l.cuDeviceGetName = l.bind(linker, lookup, "cuDeviceGetName", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
            l.cuDevicePrimaryCtxRetain = l.bind(linker, lookup, "cuDevicePrimaryCtxRetain",
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
            l.cuCtxSetCurrent = l.bind(linker, lookup, "cuCtxSetCurrent", INT_OF_ADDRESS);
            l.cuCtxSynchronize = l.bind(linker, lookup, "cuCtxSynchronize", INT_OF_VOID);
            l.cuMemAlloc = l.bind(linker, lookup, "cuMemAlloc_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
            l.cuMemFree = l.bind(linker, lookup, "cuMemFree_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
            l.cuMemsetD8 = l.bind(linker, lookup, "cuMemsetD8_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ValueLayout.JAVA_BYTE, JAVA_LONG));
            l.cuMemcpyDtoD = l.bind(linker, lookup, "cuMemcpyDtoD_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
            l.cuMemcpyHtoD = l.bind(linker, lookup, "cuMemcpyHtoD_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG));
            l.cuMemcpyDtoH = l.bind(linker, lookup, "cuMemcpyDtoH_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
            l.cuModuleLoadData = l.bind(linker, lookup, "cuModuleLoadData", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
            l.cuModuleGetFunction = l.bind(linker, lookup, "cuModuleGetFunction",
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
            l.cuLaunchKernel = l.bind(linker, lookup, "cuLaunchKernel", FunctionDescriptor.of(JAVA_INT, ADDRESS,
                    JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
            int result = (int) cuInit.invokeExact(0);
            if (result != CudaStatus.SUCCESS.code()) {
                return new CudaLibrary(library, library + " was loaded but cuInit failed: " + CudaStatus.describe(result) + ".");
            }
            return l;
        } catch (MissingSymbol e) {
            return new CudaLibrary(library, e.getMessage());
        } catch (IllegalCallerException e) {
            return new CudaLibrary(library, library + " could not be bound because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).");
        } catch (Throwable t) {
            throw new AssertionError("downcall cuInit threw", t);
        }
    }

    private static final class MissingSymbol extends RuntimeException {
        MissingSymbol(String message) {
            super(message, null, false, false);
        }
    }

    @SuppressWarnings("restricted")
    private MethodHandle bind(Linker linker, SymbolLookup lookup, String name, FunctionDescriptor descriptor) {
        MemorySegment address = lookup.find(name).orElseThrow(
                () -> new MissingSymbol(library + " was loaded but has no symbol " + name + " (driver too old or not NVIDIA's)."));
        return linker.downcallHandle(address, descriptor);
    }

    /** True when the library loaded, has every function and {@code cuInit(0)} succeeded. */
    public boolean available() {
        return reason == null;
    }

    /** One sentence saying what was looked for and why it failed, or null when available. */
    public String reason() {
        return reason;
    }

    /** The library's name or path, as given to {@link #open}. */
    public String library() {
        return library;
    }

    private void requireAvailable() {
        if (reason != null) {
            throw new IllegalStateException(reason);
        }
    }

    /** A downcall returning a {@code CUresult}, with an arena for its arguments. */
    @FunctionalInterface
    private interface Downcall {
        int call(Arena arena) throws Throwable;
    }

    /** A downcall returning a {@code CUresult} and writing its output to {@code out}. */
    @FunctionalInterface
    private interface OutDowncall {
        int call(Arena arena, MemorySegment out) throws Throwable;
    }

    /** Runs {@code downcall} in a confined arena; a failing {@code CUresult} throws, naming {@code name}. */
    private void call(String name, Downcall downcall) {
        call(name, JAVA_INT, (arena, unused) -> downcall.call(arena), out -> null);
    }

    /**
     * Runs {@code downcall} with an output slot of {@code layout} in a confined arena and, once its
     * {@code CUresult} says it succeeded, returns what {@code read} takes from the slot.
     */
    private <T> T call(String name, MemoryLayout layout, OutDowncall downcall, Function<MemorySegment, T> read) {
        requireAvailable();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(layout);
            CudaStatus.check(downcall.call(arena, out), name);
            return read.apply(out);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("downcall " + name + " threw", t);
        }
    }

    private static int readInt(MemorySegment out) {
        return out.get(JAVA_INT, 0);
    }

    private static MemorySegment readAddress(MemorySegment out) {
        return out.get(ADDRESS, 0);
    }

    /** The driver's CUDA version as {@code 1000 × major + 10 × minor}. */
    public int driverVersion() {
        return call("cuDriverGetVersion", JAVA_INT, (arena, out) -> (int) cuDriverGetVersion.invokeExact(out), CudaLibrary::readInt);
    }

    /** The number of devices the driver sees. */
    public int deviceCount() {
        return call("cuDeviceGetCount", JAVA_INT, (arena, out) -> (int) cuDeviceGetCount.invokeExact(out), CudaLibrary::readInt);
    }

    /** The name of device {@code ordinal}. */
    public String deviceName(int ordinal) {
        int device = device(ordinal);
        return call("cuDeviceGetName", MemoryLayout.sequenceLayout(256, ValueLayout.JAVA_BYTE),
                (arena, out) -> (int) cuDeviceGetName.invokeExact(out, 256, device), out -> out.getString(0, StandardCharsets.UTF_8));
    }

    private int device(int ordinal) {
        return call("cuDeviceGet", JAVA_INT, (arena, out) -> (int) cuDeviceGet.invokeExact(out, ordinal), CudaLibrary::readInt);
    }

    /** Retains device {@code ordinal}'s primary context and makes it current on the calling thread. */
    public MemorySegment usePrimaryContext(int ordinal) {
        int device = device(ordinal);
        MemorySegment context = call("cuDevicePrimaryCtxRetain", ADDRESS,
                (arena, out) -> (int) cuDevicePrimaryCtxRetain.invokeExact(out, device), CudaLibrary::readAddress);
        call("cuCtxSetCurrent", arena -> (int) cuCtxSetCurrent.invokeExact(context));
        return context;
    }

    /** Waits for everything queued in the current context. */
    public void synchronize() {
        call("cuCtxSynchronize", arena -> (int) cuCtxSynchronize.invokeExact());
    }

    /** {@code bytes} of device memory; free with {@link #free}. */
    public long allocate(long bytes) {
        return call("cuMemAlloc_v2", JAVA_LONG, (arena, out) -> (int) cuMemAlloc.invokeExact(out, bytes), out -> out.get(JAVA_LONG, 0));
    }

    public void free(long devicePointer) {
        call("cuMemFree_v2", arena -> (int) cuMemFree.invokeExact(devicePointer));
    }

    /** Sets {@code bytes} bytes of device memory from {@code to} to {@code value}, waiting until done. */
    public void fill(long to, byte value, long bytes) {
        call("cuMemsetD8_v2", arena -> (int) cuMemsetD8.invokeExact(to, value, bytes));
    }

    /** Copies {@code bytes} bytes from {@code from} to {@code to}, both on the device. */
    public void copyOnDevice(long to, long from, long bytes) {
        call("cuMemcpyDtoD_v2", arena -> (int) cuMemcpyDtoD.invokeExact(to, from, bytes));
    }

    /** Copies all of {@code from} (host memory) to {@code to} on the device, waiting until done. */
    public void copyToDevice(long to, MemorySegment from) {
        call("cuMemcpyHtoD_v2", arena -> (int) cuMemcpyHtoD.invokeExact(to, from, from.byteSize()));
    }

    /** Fills all of {@code to} (host memory) from {@code from} on the device, waiting until done. */
    public void copyToHost(MemorySegment to, long from) {
        call("cuMemcpyDtoH_v2", arena -> (int) cuMemcpyDtoH.invokeExact(to, from, to.byteSize()));
    }

    /** Loads a fatbin (or cubin, or PTX) into the current context. */
    public MemorySegment loadModule(byte[] image) {
        return call("cuModuleLoadData", ADDRESS, (arena, out) -> {
            MemorySegment bytes = arena.allocate(image.length + 1L, 16); // PTX must end in a NUL
            MemorySegment.copy(image, 0, bytes, ValueLayout.JAVA_BYTE, 0, image.length);
            return (int) cuModuleLoadData.invokeExact(out, bytes);
        }, CudaLibrary::readAddress);
    }

    /** The kernel {@code name} of {@code module}. */
    public MemorySegment function(MemorySegment module, String name) {
        return call("cuModuleGetFunction(" + name + ")", ADDRESS,
                (arena, out) -> (int) cuModuleGetFunction.invokeExact(out, module, arena.allocateFrom(name)), CudaLibrary::readAddress);
    }

    /** A kernel's arguments in order, as the kernel declares them. */
    public static final class Args {
        private final List<Object> values = new ArrayList<>();

        /** A device pointer. */
        public Args pointer(long devicePointer) {
            values.add(devicePointer);
            return this;
        }

        /** A {@code long long}. */
        public Args i64(long value) {
            values.add(value);
            return this;
        }

        /** An {@code int}. */
        public Args i32(int value) {
            values.add(value);
            return this;
        }

        /** A {@code float}. */
        public Args f32(float value) {
            values.add(value);
            return this;
        }

        /** {@code void** kernelParams}: one slot per argument, each holding the argument's address. */
        MemorySegment toKernelParams(Arena arena) {
            MemorySegment params = arena.allocate(ADDRESS, values.size());
            for (int i = 0; i < values.size(); i++) {
                MemorySegment slot = switch (values.get(i)) {
                    case Long v -> arena.allocateFrom(JAVA_LONG, v);
                    case Integer v -> arena.allocateFrom(JAVA_INT, v);
                    case Float v -> arena.allocateFrom(ValueLayout.JAVA_FLOAT, v);
                    default -> throw new AssertionError(values.get(i));
                };
                params.setAtIndex(ADDRESS, i, slot);
            }
            return params;
        }
    }

    /** Launches {@code function} over {@code grid} × {@code block} (x only) on the default stream and waits. */
    public void launch(MemorySegment function, int grid, int block, Args args) {
        launch(function, grid, 1, block, args);
    }

    /** Launches {@code function} over a {@code gridX × gridY} grid of {@code block}-thread blocks on the default stream and waits. */
    public void launch(MemorySegment function, int gridX, int gridY, int block, Args args) {
        call("cuLaunchKernel", arena -> (int) cuLaunchKernel.invokeExact(function, gridX, gridY, 1, block, 1, 1, 0,
                MemorySegment.NULL, args.toKernelParams(arena), MemorySegment.NULL));
        synchronize();
    }
}
