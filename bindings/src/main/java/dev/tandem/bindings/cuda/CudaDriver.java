package dev.tandem.bindings.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The CUDA driver API ({@code libcuda.so.1}) through raw FFM downcalls, in jextract's style: one
 * descriptor and one handle per C function, each wrapped by a static method that returns the raw
 * {@code CUresult}. The library is looked up and {@code cuInit(0)} called once, on first use; a
 * missing library, missing symbol or failing {@code cuInit} makes {@link #isAvailable()} false and
 * {@link #unavailableReason()} say why, and never fails loading this class.
 */
public final class CudaDriver {
    static final String LIBRARY = "libcuda.so.1";

    private static final FunctionDescriptor CU_INIT = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT);
    private static final FunctionDescriptor CU_DRIVER_GET_VERSION = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS);
    private static final FunctionDescriptor CU_DEVICE_GET_COUNT = FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS);

    private CudaDriver() {
    }

    /**
     * What loading {@code library} gave: the handles when it worked, otherwise the one-sentence reason.
     * Exactly one of {@code reason} and the handles is null.
     */
    record Binding(String reason, MethodHandle cuDriverGetVersion, MethodHandle cuDeviceGetCount) {
        boolean available() {
            return reason == null;
        }
    }

    // Initialisation-on-demand holder: the JVM runs load() once, on first use, under its class-init lock.
    private static final class Holder {
        static final Binding BINDING = load(LIBRARY);
    }

    /** Looks {@code library} up, binds the functions and calls {@code cuInit(0)}; never throws. */
    @SuppressWarnings("restricted") // this layer is where native access is meant to happen
    static Binding load(String library) {
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            return unavailable(library + " was not found on the library path (no NVIDIA driver).");
        } catch (IllegalCallerException e) {
            return unavailable(library + " could not be loaded because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).");
        }
        try {
            Linker linker = Linker.nativeLinker();
            MethodHandle cuInit = bind(linker, lookup, library, "cuInit", CU_INIT);
            MethodHandle cuDriverGetVersion = bind(linker, lookup, library, "cuDriverGetVersion", CU_DRIVER_GET_VERSION);
            MethodHandle cuDeviceGetCount = bind(linker, lookup, library, "cuDeviceGetCount", CU_DEVICE_GET_COUNT);
            int result = cuInit(cuInit, 0);
            if (result != CudaStatus.SUCCESS.code()) {
                return unavailable(library + " was loaded but cuInit failed: " + CudaStatus.describe(result) + ".");
            }
            return new Binding(null, cuDriverGetVersion, cuDeviceGetCount);
        } catch (MissingSymbol e) {
            return unavailable(e.getMessage());
        } catch (IllegalCallerException e) {
            return unavailable(library + " could not be bound because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).");
        }
    }

    private static Binding unavailable(String reason) {
        return new Binding(reason, null, null);
    }

    private static final class MissingSymbol extends RuntimeException {
        MissingSymbol(String message) {
            super(message, null, false, false);
        }
    }

    @SuppressWarnings("restricted")
    private static MethodHandle bind(Linker linker, SymbolLookup lookup, String library, String name,
                                     FunctionDescriptor descriptor) {
        MemorySegment address = lookup.find(name).orElseThrow(
                () -> new MissingSymbol(library + " was loaded but has no symbol " + name + " (driver too old or not NVIDIA's)."));
        return linker.downcallHandle(address, descriptor);
    }

    // ---- downcalls: CUresult fn(...), raw codes, no checking ----

    private static int cuInit(MethodHandle handle, int flags) {
        try {
            return (int) handle.invokeExact(flags);
        } catch (Throwable t) {
            throw new AssertionError("downcall cuInit threw", t);
        }
    }

    private static int cuDriverGetVersion(MethodHandle handle, MemorySegment version) {
        try {
            return (int) handle.invokeExact(version);
        } catch (Throwable t) {
            throw new AssertionError("downcall cuDriverGetVersion threw", t);
        }
    }

    private static int cuDeviceGetCount(MethodHandle handle, MemorySegment count) {
        try {
            return (int) handle.invokeExact(count);
        } catch (Throwable t) {
            throw new AssertionError("downcall cuDeviceGetCount threw", t);
        }
    }

    // ---- checked API ----

    /** True when libcuda.so.1 loaded and {@code cuInit(0)} returned CUDA_SUCCESS (tried once, on first call). */
    public static boolean isAvailable() {
        return Holder.BINDING.available();
    }

    /** One sentence saying what was looked for and why it failed, or null when the driver is available. */
    public static String unavailableReason() {
        return Holder.BINDING.reason();
    }

    /** The driver's CUDA version as {@code 1000 × major + 10 × minor} (12040 is CUDA 12.4). */
    public static int driverVersion() {
        Binding b = binding();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_INT);
            CudaStatus.check(cuDriverGetVersion(b.cuDriverGetVersion(), out), "cuDriverGetVersion");
            return out.get(ValueLayout.JAVA_INT, 0);
        }
    }

    /** The number of CUDA devices the driver sees. */
    public static int deviceCount() {
        Binding b = binding();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ValueLayout.JAVA_INT);
            CudaStatus.check(cuDeviceGetCount(b.cuDeviceGetCount(), out), "cuDeviceGetCount");
            return out.get(ValueLayout.JAVA_INT, 0);
        }
    }

    private static Binding binding() {
        Binding b = Holder.BINDING;
        if (!b.available()) {
            throw new IllegalStateException(b.reason());
        }
        return b;
    }
}
