package dev.tandem.bindings.cuda;

import dev.tandem.bindings.cuda.internal.CudaDriverApi;
import dev.tandem.bindings.cuda.internal.MissingSymbolException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * One CUDA driver library bound through FFM: NVIDIA's {@code libcuda.so.1}, or the host build of Tandem's
 * kernels ({@code native/cuda/host}), which exports the same entry points so that the same Java code drives
 * both. The raw downcalls ({@link CudaDriverApi}: jextract's style, the {@code _v2} entry points) sit under
 * this checked layer: every failing {@code CUresult} becomes a {@link CudaException} naming the call and the
 * CUDA error (by the library's own {@code cuGetErrorName}, else by {@link CudaStatus}'s table, else by
 * number). {@link #open} never throws: a library that is missing, lacks a required symbol or fails
 * {@code cuInit} gives an unavailable instance whose {@link #reason()} says why, and whose calls throw
 * that reason. Optional symbols ({@code cuMemAllocAsync} / {@code cuMemFreeAsync}, CUDA 11.2;
 * {@code cuGetErrorName} / {@code cuGetErrorString}) may be absent without making the library unavailable:
 * {@link #supportsAsyncAllocation()} says whether stream-ordered allocation is there.
 *
 * <p>Device pointers ({@code CUdeviceptr}) are {@code long}s; contexts, modules and functions are
 * addresses. {@link DeviceBuffer}, {@link PinnedBuffer}, {@link Stream}, {@link Event} and {@link Module}
 * wrap what needs releasing in {@link AutoCloseable}s; closing one twice does nothing the second time.
 */
public final class CudaLibrary {
    /** {@code CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK}. */
    public static final int ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1;
    /** {@code CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK}, in bytes. */
    public static final int ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8;
    /** {@code CU_DEVICE_ATTRIBUTE_WARP_SIZE}. */
    public static final int ATTRIBUTE_WARP_SIZE = 10;
    /** {@code CU_DEVICE_ATTRIBUTE_CLOCK_RATE}, in kHz. */
    public static final int ATTRIBUTE_CLOCK_RATE = 13;
    /** {@code CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT}. */
    public static final int ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    /** {@code CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE}, peak, in kHz. */
    public static final int ATTRIBUTE_MEMORY_CLOCK_RATE = 36;
    /** {@code CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH}, in bits. */
    public static final int ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37;
    /** {@code CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR}. */
    public static final int ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR = 39;
    /** {@code CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR}. */
    public static final int ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    /** {@code CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR}. */
    public static final int ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    /** {@code CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN}, in bytes. */
    public static final int ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    /** {@code CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED}: 1 when {@code cuMemAllocAsync} works on the device. */
    public static final int ATTRIBUTE_MEMORY_POOLS_SUPPORTED = 115;

    /** {@code CU_STREAM_DEFAULT}: the stream synchronizes with the default (NULL) stream. */
    public static final int STREAM_DEFAULT = 0;
    /** {@code CU_STREAM_NON_BLOCKING}: the stream runs concurrently with the default (NULL) stream. */
    public static final int STREAM_NON_BLOCKING = 1;
    /** {@code CU_EVENT_DEFAULT}: a timing event. */
    public static final int EVENT_DEFAULT = 0;
    /** {@code CU_EVENT_BLOCKING_SYNC}: waiting on the event blocks the thread instead of spinning. */
    public static final int EVENT_BLOCKING_SYNC = 1;
    /** {@code CU_EVENT_DISABLE_TIMING}: no timing, cheaper to record; {@link Event#elapsedMillisSince} fails. */
    public static final int EVENT_DISABLE_TIMING = 2;

    private static final String ASYNC_ALLOC = "cuMemAllocAsync";
    private static final String ASYNC_FREE = "cuMemFreeAsync";

    private final String library;
    private final String reason;
    private final CudaDriverApi api;

    private CudaLibrary(String library, String reason, CudaDriverApi api) {
        this.library = library;
        this.reason = reason;
        this.api = api;
    }

    /**
     * Loads {@code library} (a name the dynamic linker looks up, such as {@code libcuda.so.1}, or a path),
     * binds its functions and calls {@code cuInit(0)}; never throws.
     */
    public static CudaLibrary open(String library) {
        return open(library, Set.of());
    }

    /** {@link #open(String)} as if the library lacked the symbols in {@code hidden} (tests of older drivers). */
    @SuppressWarnings("restricted") // this layer is where native access is meant to happen
    static CudaLibrary open(String library, Set<String> hidden) {
        SymbolLookup lookup;
        try {
            SymbolLookup all = SymbolLookup.libraryLookup(library, Arena.global());
            lookup = hidden.isEmpty() ? all : name -> hidden.contains(name) ? Optional.empty() : all.find(name);
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            return new CudaLibrary(library, library + " was not found on the library path (no NVIDIA driver).", null);
        } catch (IllegalCallerException e) {
            return new CudaLibrary(library, library + " could not be loaded because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).", null);
        }
        CudaDriverApi api;
        try {
            api = new CudaDriverApi(lookup);
        } catch (MissingSymbolException e) {
            return new CudaLibrary(library, library + " was loaded but has no symbol " + e.symbol()
                    + " (driver too old or not NVIDIA's).", null);
        } catch (IllegalCallerException e) {
            return new CudaLibrary(library, library + " could not be bound because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).", null);
        }
        CudaLibrary bound = new CudaLibrary(library, null, api);
        int result = api.cuInit(0);
        if (result != CudaStatus.SUCCESS.code()) {
            return new CudaLibrary(library, library + " was loaded but cuInit failed: " + bound.describe(result) + ".", null);
        }
        return bound;
    }

    /** True when the library loaded, has every required function and {@code cuInit(0)} succeeded. */
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

    /**
     * True when the library has stream-ordered allocation ({@code cuMemAllocAsync} and
     * {@code cuMemFreeAsync}, CUDA 11.2 and newer), so that {@link #allocateAsync} and {@link #freeAsync}
     * can work; whether the device supports memory pools is {@link #ATTRIBUTE_MEMORY_POOLS_SUPPORTED}.
     */
    public boolean supportsAsyncAllocation() {
        return api != null && api.isBound(ASYNC_ALLOC) && api.isBound(ASYNC_FREE);
    }

    private void requireAvailable() {
        if (reason != null) {
            throw new IllegalStateException(reason);
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // The checked layer

    /** A downcall returning a {@code CUresult}, with an arena for its arguments. */
    @FunctionalInterface
    private interface Downcall {
        int call(Arena arena);
    }

    /** A downcall returning a {@code CUresult} and writing its output to {@code out}. */
    @FunctionalInterface
    private interface OutDowncall {
        int call(Arena arena, MemorySegment out);
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
            check(downcall.call(arena, out), name);
            return read.apply(out);
        }
    }

    /** Throws {@link CudaException}{@code ("<call> failed: <describe(result)>.")} unless result is CUDA_SUCCESS. */
    void check(int result, String call) {
        if (result != CudaStatus.SUCCESS.code()) {
            throw new CudaException(call + " failed: " + describe(result) + ".", result);
        }
    }

    /** {@code "CUDA_ERROR_NO_DEVICE (100)"}, or {@code "CUresult 12345"} for a code neither the library nor the table names. */
    String describe(int code) {
        String name = errorName(code);
        return name == null ? "CUresult " + code : name + " (" + code + ")";
    }

    /**
     * The name {@code cuda.h} gives {@code code} ({@code "CUDA_ERROR_OUT_OF_MEMORY"}), as the library's
     * {@code cuGetErrorName} says, else as {@link CudaStatus}'s table says, or null when neither knows it.
     * Works on an unavailable instance too (from the table).
     */
    public String errorName(int code) {
        String name = libraryString(code, true);
        if (name != null) {
            return name;
        }
        CudaStatus status = CudaStatus.of(code);
        return status == null ? null : status.cudaName();
    }

    /** What the library's {@code cuGetErrorString} says of {@code code}, or null when it cannot say. */
    public String errorString(int code) {
        return libraryString(code, false);
    }

    /** {@code cuGetErrorName} or {@code cuGetErrorString} of {@code code}; null when absent, failing or NULL. */
    @SuppressWarnings("restricted") // reading the driver's static NUL-terminated string
    private String libraryString(int code, boolean name) {
        if (api == null || !api.isBound(name ? "cuGetErrorName" : "cuGetErrorString")) {
            return null;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int result = name ? api.cuGetErrorName(code, out) : api.cuGetErrorString(code, out);
            MemorySegment text = out.get(ADDRESS, 0);
            if (result != CudaStatus.SUCCESS.code() || text.equals(MemorySegment.NULL)) {
                return null;
            }
            return text.reinterpret(4096).getString(0, StandardCharsets.UTF_8);
        }
    }

    private static int readInt(MemorySegment out) {
        return out.get(JAVA_INT, 0);
    }

    private static long readLong(MemorySegment out) {
        return out.get(JAVA_LONG, 0);
    }

    private static MemorySegment readAddress(MemorySegment out) {
        return out.get(ADDRESS, 0);
    }

    private static MemorySegment handleOf(Stream stream) {
        return stream == null ? MemorySegment.NULL : stream.handle();
    }

    // ---------------------------------------------------------------------------------------------------
    // Driver and devices

    /** The driver's CUDA version as {@code 1000 × major + 10 × minor}. */
    public int driverVersion() {
        return call("cuDriverGetVersion", JAVA_INT, (arena, out) -> api.cuDriverGetVersion(out), CudaLibrary::readInt);
    }

    /** The number of devices the driver sees. */
    public int deviceCount() {
        return call("cuDeviceGetCount", JAVA_INT, (arena, out) -> api.cuDeviceGetCount(out), CudaLibrary::readInt);
    }

    /** The name of device {@code ordinal}. */
    public String deviceName(int ordinal) {
        int device = device(ordinal);
        return call("cuDeviceGetName", MemoryLayout.sequenceLayout(256, ValueLayout.JAVA_BYTE),
                (arena, out) -> api.cuDeviceGetName(out, 256, device), out -> out.getString(0, StandardCharsets.UTF_8));
    }

    private int device(int ordinal) {
        return call("cuDeviceGet", JAVA_INT, (arena, out) -> api.cuDeviceGet(out, ordinal), CudaLibrary::readInt);
    }

    /** Attribute {@code attribute} ({@code CUdevice_attribute}: the {@code ATTRIBUTE_*} constants) of device {@code ordinal}. */
    public int deviceAttribute(int ordinal, int attribute) {
        int device = device(ordinal);
        return call("cuDeviceGetAttribute(" + attribute + ")", JAVA_INT,
                (arena, out) -> api.cuDeviceGetAttribute(out, attribute, device), CudaLibrary::readInt);
    }

    /** The total memory of device {@code ordinal}, in bytes. */
    public long totalMemory(int ordinal) {
        int device = device(ordinal);
        return call("cuDeviceTotalMem_v2", JAVA_LONG, (arena, out) -> api.cuDeviceTotalMem_v2(out, device), CudaLibrary::readLong);
    }

    /** Free and total memory of the current context's device, in bytes. */
    public record MemoryInfo(long free, long total) {
    }

    /** Free and total memory of the current context's device ({@code cuMemGetInfo_v2}). */
    public MemoryInfo memoryInfo() {
        return call("cuMemGetInfo_v2", MemoryLayout.sequenceLayout(2, JAVA_LONG),
                (arena, out) -> api.cuMemGetInfo_v2(out, out.asSlice(JAVA_LONG.byteSize())),
                out -> new MemoryInfo(out.getAtIndex(JAVA_LONG, 0), out.getAtIndex(JAVA_LONG, 1)));
    }

    /** Retains device {@code ordinal}'s primary context and makes it current on the calling thread. */
    public MemorySegment usePrimaryContext(int ordinal) {
        int device = device(ordinal);
        MemorySegment context = call("cuDevicePrimaryCtxRetain", ADDRESS,
                (arena, out) -> api.cuDevicePrimaryCtxRetain(out, device), CudaLibrary::readAddress);
        call("cuCtxSetCurrent", arena -> api.cuCtxSetCurrent(context));
        return context;
    }

    /** Releases one retain of device {@code ordinal}'s primary context ({@link #usePrimaryContext} retains). */
    public void releasePrimaryContext(int ordinal) {
        int device = device(ordinal);
        call("cuDevicePrimaryCtxRelease_v2", arena -> api.cuDevicePrimaryCtxRelease_v2(device));
    }

    /** Waits for everything queued in the current context. */
    public void synchronize() {
        call("cuCtxSynchronize", arena -> api.cuCtxSynchronize());
    }

    // ---------------------------------------------------------------------------------------------------
    // Memory

    /** {@code bytes} of device memory; free with {@link #free}. */
    public long allocate(long bytes) {
        return call("cuMemAlloc_v2", JAVA_LONG, (arena, out) -> api.cuMemAlloc_v2(out, bytes), CudaLibrary::readLong);
    }

    public void free(long devicePointer) {
        call("cuMemFree_v2", arena -> api.cuMemFree_v2(devicePointer));
    }

    /** {@code bytes} of device memory that closing frees ({@code cuMemAlloc_v2}, {@code cuMemFree_v2}). */
    public DeviceBuffer allocateBuffer(long bytes) {
        return new DeviceBuffer(allocate(bytes), bytes, null);
    }

    /**
     * {@code bytes} of device memory allocated in {@code stream}'s order ({@code cuMemAllocAsync}; usable by
     * work queued on the stream after this call; null: the default stream); closing frees it in the same
     * stream's order ({@code cuMemFreeAsync}), so close it before the stream.
     *
     * @throws UnsupportedOperationException when the library has no stream-ordered allocation
     *         ({@link #supportsAsyncAllocation()})
     */
    public DeviceBuffer allocateAsync(long bytes, Stream stream) {
        requireAsyncAllocation(ASYNC_ALLOC);
        long address = call(ASYNC_ALLOC, JAVA_LONG, (arena, out) -> api.cuMemAllocAsync(out, bytes, handleOf(stream)),
                CudaLibrary::readLong);
        return new DeviceBuffer(address, bytes, stream);
    }

    /** Frees {@code devicePointer} in {@code stream}'s order ({@code cuMemFreeAsync}). */
    public void freeAsync(long devicePointer, Stream stream) {
        requireAsyncAllocation(ASYNC_FREE);
        call(ASYNC_FREE, arena -> api.cuMemFreeAsync(devicePointer, handleOf(stream)));
    }

    private void requireAsyncAllocation(String symbol) {
        requireAvailable();
        if (!api.isBound(symbol)) {
            throw new UnsupportedOperationException(library + " has no " + symbol
                    + " (stream-ordered allocation needs a CUDA 11.2 or newer driver); use allocateBuffer instead.");
        }
    }

    /**
     * {@code bytes} of page-locked host memory ({@code cuMemHostAlloc}, no flags), which the device copies to
     * and from at full speed and asynchronously; closing frees it ({@code cuMemFreeHost}) and makes the
     * segment inaccessible.
     */
    @SuppressWarnings("restricted") // the driver's allocation, sized as asked
    public PinnedBuffer allocatePinned(long bytes) {
        MemorySegment raw = call("cuMemHostAlloc", ADDRESS, (arena, out) -> api.cuMemHostAlloc(out, bytes, 0),
                CudaLibrary::readAddress);
        Arena scope = Arena.ofShared();
        return new PinnedBuffer(raw, raw.reinterpret(bytes, scope, null), scope);
    }

    /** Sets {@code bytes} bytes of device memory from {@code to} to {@code value}, waiting until done. */
    public void fill(long to, byte value, long bytes) {
        call("cuMemsetD8_v2", arena -> api.cuMemsetD8_v2(to, value, bytes));
    }

    /** Queues setting {@code bytes} bytes of device memory from {@code to} to {@code value} on {@code stream} (null: the default stream). */
    public void fillAsync(long to, byte value, long bytes, Stream stream) {
        call("cuMemsetD8Async", arena -> api.cuMemsetD8Async(to, value, bytes, handleOf(stream)));
    }

    /** Copies {@code bytes} bytes from {@code from} to {@code to}, both on the device. */
    public void copyOnDevice(long to, long from, long bytes) {
        call("cuMemcpyDtoD_v2", arena -> api.cuMemcpyDtoD_v2(to, from, bytes));
    }

    /** Copies all of {@code from} (host memory) to {@code to} on the device, waiting until done. */
    public void copyToDevice(long to, MemorySegment from) {
        call("cuMemcpyHtoD_v2", arena -> api.cuMemcpyHtoD_v2(to, from, from.byteSize()));
    }

    /** Fills all of {@code to} (host memory) from {@code from} on the device, waiting until done. */
    public void copyToHost(MemorySegment to, long from) {
        call("cuMemcpyDtoH_v2", arena -> api.cuMemcpyDtoH_v2(to, from, to.byteSize()));
    }

    /**
     * Queues copying all of {@code from} (native host memory) to {@code to} on the device on {@code stream}
     * (null: the default stream). {@code from} must stay valid until the stream has done the copy; from
     * pinned memory ({@link #allocatePinned}) the copy overlaps other work, from pageable memory the driver
     * stages it first.
     */
    public void copyToDeviceAsync(long to, MemorySegment from, Stream stream) {
        call("cuMemcpyHtoDAsync_v2", arena -> api.cuMemcpyHtoDAsync_v2(to, from, from.byteSize(), handleOf(stream)));
    }

    /**
     * Queues filling all of {@code to} (native host memory) from {@code from} on the device on {@code stream}
     * (null: the default stream); read {@code to} only after synchronizing with the stream.
     */
    public void copyToHostAsync(MemorySegment to, long from, Stream stream) {
        call("cuMemcpyDtoHAsync_v2", arena -> api.cuMemcpyDtoHAsync_v2(to, from, to.byteSize(), handleOf(stream)));
    }

    // ---------------------------------------------------------------------------------------------------
    // Streams and events

    /** A new stream ({@link #STREAM_DEFAULT}: ordered with the default stream); close destroys it. */
    public Stream createStream() {
        return createStream(STREAM_DEFAULT);
    }

    /** A new stream with {@code flags} ({@link #STREAM_DEFAULT} or {@link #STREAM_NON_BLOCKING}). */
    public Stream createStream(int flags) {
        MemorySegment handle = call("cuStreamCreate", ADDRESS, (arena, out) -> api.cuStreamCreate(out, flags),
                CudaLibrary::readAddress);
        return new Stream(handle, true);
    }

    /** The default (NULL) stream of the current context; closing it does nothing. */
    public Stream defaultStream() {
        requireAvailable();
        return new Stream(MemorySegment.NULL, false);
    }

    /** A new timing event ({@link #EVENT_DEFAULT}); close destroys it. */
    public Event createEvent() {
        return createEvent(EVENT_DEFAULT);
    }

    /** A new event with {@code flags} (the {@code EVENT_*} constants, or-ed). */
    public Event createEvent(int flags) {
        MemorySegment handle = call("cuEventCreate", ADDRESS, (arena, out) -> api.cuEventCreate(out, flags),
                CudaLibrary::readAddress);
        return new Event(handle);
    }

    // ---------------------------------------------------------------------------------------------------
    // Modules and launches

    /** Loads a fatbin (or cubin, or PTX) into the current context. */
    public MemorySegment loadModule(byte[] image) {
        return call("cuModuleLoadData", ADDRESS, (arena, out) -> {
            MemorySegment bytes = arena.allocate(image.length + 1L, 16); // PTX must end in a NUL
            MemorySegment.copy(image, 0, bytes, ValueLayout.JAVA_BYTE, 0, image.length);
            return api.cuModuleLoadData(out, bytes);
        }, CudaLibrary::readAddress);
    }

    /** Unloads a module {@link #loadModule} gave. */
    public void unloadModule(MemorySegment module) {
        call("cuModuleUnload", arena -> api.cuModuleUnload(module));
    }

    /** {@link #loadModule} as a {@link Module}, which closing unloads. */
    public Module openModule(byte[] image) {
        return new Module(loadModule(image));
    }

    /** The kernel {@code name} of {@code module}. */
    public MemorySegment function(MemorySegment module, String name) {
        return call("cuModuleGetFunction(" + name + ")", ADDRESS,
                (arena, out) -> api.cuModuleGetFunction(out, module, arena.allocateFrom(name)), CudaLibrary::readAddress);
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

        /** A {@code double}. */
        public Args f64(double value) {
            values.add(value);
            return this;
        }

        /** {@code void** kernelParams}: one slot per argument, each holding the argument's address. */
        MemorySegment toKernelParams(Arena arena) {
            MemorySegment params = arena.allocate(ADDRESS, Math.max(1, values.size()));
            for (int i = 0; i < values.size(); i++) {
                MemorySegment slot = switch (values.get(i)) {
                    case Long v -> arena.allocateFrom(JAVA_LONG, v);
                    case Integer v -> arena.allocateFrom(JAVA_INT, v);
                    case Float v -> arena.allocateFrom(JAVA_FLOAT, v);
                    case Double v -> arena.allocateFrom(JAVA_DOUBLE, v);
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
        launchAsync(function, gridX, gridY, 1, block, 1, 1, 0, null, args);
        synchronize();
    }

    /**
     * Queues {@code function} over a {@code gridX × gridY × gridZ} grid of {@code blockX × blockY × blockZ}
     * blocks with {@code sharedBytes} of dynamic shared memory on {@code stream} (null: the default stream),
     * and returns without waiting: a kernel's failure may show in a later call that waits. The argument
     * values are copied at the call, so {@code args} may change afterwards.
     */
    public void launchAsync(MemorySegment function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                            int sharedBytes, Stream stream, Args args) {
        call("cuLaunchKernel", arena -> api.cuLaunchKernel(function, gridX, gridY, gridZ, blockX, blockY, blockZ,
                sharedBytes, handleOf(stream), args.toKernelParams(arena), MemorySegment.NULL));
    }

    // ---------------------------------------------------------------------------------------------------
    // Handles

    /** What every handle does on close: the release call once, nothing after. */
    private abstract class Handle implements AutoCloseable {
        private boolean closed;

        final void requireOpen() {
            if (closed) {
                throw new IllegalStateException(this + " is closed");
            }
        }

        abstract void release();

        @Override
        public final void close() {
            if (!closed) {
                closed = true;
                release();
            }
        }

        /** True once closed. */
        public final boolean closed() {
            return closed;
        }

        /** The library this handle belongs to. */
        public final CudaLibrary library() {
            return CudaLibrary.this;
        }
    }

    /**
     * Device memory: {@link #address()} for {@link #bytes()} bytes. Closing frees it: {@code cuMemFree_v2}, or
     * {@code cuMemFreeAsync} on the stream it was allocated on ({@link #allocateAsync}).
     */
    public final class DeviceBuffer extends Handle {
        private final long address;
        private final long bytes;
        private final Stream stream;

        private DeviceBuffer(long address, long bytes, Stream stream) {
            this.address = address;
            this.bytes = bytes;
            this.stream = stream;
        }

        /** The device pointer. */
        public long address() {
            requireOpen();
            return address;
        }

        /** Its size in bytes, as asked for. */
        public long bytes() {
            return bytes;
        }

        @Override
        void release() {
            if (stream == null) {
                free(address);
            } else {
                freeAsync(address, stream);
            }
        }

        @Override
        public String toString() {
            return "device buffer 0x" + Long.toHexString(address) + " (" + bytes + " bytes)";
        }
    }

    /** Page-locked host memory ({@code cuMemHostAlloc}); closing frees it and makes {@link #segment()} inaccessible. */
    public final class PinnedBuffer extends Handle {
        private final MemorySegment raw;
        private final MemorySegment segment;
        private final Arena scope;

        private PinnedBuffer(MemorySegment raw, MemorySegment segment, Arena scope) {
            this.raw = raw;
            this.segment = segment;
            this.scope = scope;
        }

        /** The memory, readable and writable from any thread until closed. */
        public MemorySegment segment() {
            return segment;
        }

        /** Its size in bytes. */
        public long bytes() {
            return segment.byteSize();
        }

        @Override
        void release() {
            scope.close();
            call("cuMemFreeHost", arena -> api.cuMemFreeHost(raw));
        }

        @Override
        public String toString() {
            return "pinned buffer 0x" + Long.toHexString(raw.address()) + " (" + segment.byteSize() + " bytes)";
        }
    }

    /** A stream ({@code CUstream}); closing destroys it ({@code cuStreamDestroy_v2}), except for {@link #defaultStream()}. */
    public final class Stream extends Handle {
        private final MemorySegment handle;
        private final boolean owned;

        private Stream(MemorySegment handle, boolean owned) {
            this.handle = handle;
            this.owned = owned;
        }

        /** The {@code CUstream} (NULL for the default stream). */
        public MemorySegment handle() {
            requireOpen();
            return handle;
        }

        /** Waits until everything queued on this stream is done ({@code cuStreamSynchronize}). */
        public void synchronize() {
            call("cuStreamSynchronize", arena -> api.cuStreamSynchronize(handle()));
        }

        @Override
        void release() {
            if (owned) {
                call("cuStreamDestroy_v2", arena -> api.cuStreamDestroy_v2(handle));
            }
        }

        @Override
        public String toString() {
            return owned ? "stream 0x" + Long.toHexString(handle.address()) : "the default stream";
        }
    }

    /** An event ({@code CUevent}), for ordering and GPU timing; closing destroys it ({@code cuEventDestroy_v2}). */
    public final class Event extends Handle {
        private final MemorySegment handle;

        private Event(MemorySegment handle) {
            this.handle = handle;
        }

        /** The {@code CUevent}. */
        public MemorySegment handle() {
            requireOpen();
            return handle;
        }

        /** Records this event at the current end of {@code stream} (null: the default stream). */
        public void record(Stream stream) {
            call("cuEventRecord", arena -> api.cuEventRecord(handle(), handleOf(stream)));
        }

        /** Waits until the work before the last {@link #record} is done. */
        public void synchronize() {
            call("cuEventSynchronize", arena -> api.cuEventSynchronize(handle()));
        }

        /**
         * Milliseconds of device time from {@code start} to this event ({@code cuEventElapsedTime}); both must
         * be recorded and done (synchronize on this one first) and neither created with
         * {@link #EVENT_DISABLE_TIMING}.
         */
        public float elapsedMillisSince(Event start) {
            MemorySegment from = start.handle();
            return call("cuEventElapsedTime", JAVA_FLOAT, (arena, out) -> api.cuEventElapsedTime(out, from, handle()),
                    out -> out.get(JAVA_FLOAT, 0));
        }

        @Override
        void release() {
            call("cuEventDestroy_v2", arena -> api.cuEventDestroy_v2(handle));
        }

        @Override
        public String toString() {
            return "event 0x" + Long.toHexString(handle.address());
        }
    }

    /** A loaded module ({@code CUmodule}); closing unloads it ({@code cuModuleUnload}). */
    public final class Module extends Handle {
        private final MemorySegment handle;

        private Module(MemorySegment handle) {
            this.handle = handle;
        }

        /** The {@code CUmodule}. */
        public MemorySegment handle() {
            requireOpen();
            return handle;
        }

        /** The kernel {@code name} of this module. */
        public MemorySegment function(String name) {
            return CudaLibrary.this.function(handle(), name);
        }

        @Override
        void release() {
            unloadModule(handle);
        }

        @Override
        public String toString() {
            return "module 0x" + Long.toHexString(handle.address());
        }
    }
}
