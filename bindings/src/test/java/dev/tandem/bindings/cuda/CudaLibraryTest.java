package dev.tandem.bindings.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every driver binding of {@link CudaLibrary}, exercised on the host build ({@code "host"}) and, where there
 * is one, on a GPU ({@code "gpu"}; skipped with the reason elsewhere). What only the host build can promise
 * (its documented attribute values, alignment, timing against the wall clock) is checked on it alone.
 */
class CudaLibraryTest {

    // ---------------------------------------------------------------------------------------------------
    // Devices

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void attributesAreThereAndPlausible(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        int sms = cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_MULTIPROCESSOR_COUNT);
        int threads = cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_MAX_THREADS_PER_BLOCK);
        int shared = cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
        int major = cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        int minor = cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        int memoryClock = cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_MEMORY_CLOCK_RATE);
        int busWidth = cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
        assertTrue(sms >= 1, "multiprocessors " + sms);
        assertEquals(1024, threads);
        assertTrue(shared >= 48 * 1024, "shared memory per block " + shared);
        assertTrue(major >= 5 && minor >= 0, major + "." + minor);
        assertTrue(memoryClock > 0, "memory clock " + memoryClock);
        assertTrue(busWidth >= 32, "bus width " + busWidth);
        assertEquals(32, cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_WARP_SIZE));
        for (int attribute : new int[] {CudaLibrary.ATTRIBUTE_CLOCK_RATE, CudaLibrary.ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR,
                CudaLibrary.ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, CudaLibrary.ATTRIBUTE_MEMORY_POOLS_SUPPORTED}) {
            assertTrue(cuda.deviceAttribute(0, attribute) >= 0, "attribute " + attribute);
        }
        if (which.equals("host")) {
            assertEquals(1, sms);
            assertEquals(49152, shared);
            assertEquals("8.0", major + "." + minor);
            assertEquals(64, busWidth);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void memorySizesAreConsistent(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        long total = cuda.totalMemory(0);
        CudaLibrary.MemoryInfo info = cuda.memoryInfo();
        assertTrue(total > 0, "total " + total);
        assertTrue(info.free() > 0 && info.free() <= info.total(), info.toString());
        assertTrue(info.total() <= total, info + " of " + total); // a MIG slice sees less than the device has
        if (which.equals("host")) {
            assertEquals(total, info.total());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void aMissingDeviceIsAnInvalidDevice(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        int beyond = cuda.deviceCount();
        CudaException e = assertThrows(CudaException.class, () -> cuda.deviceAttribute(beyond, CudaLibrary.ATTRIBUTE_WARP_SIZE));
        assertTrue(e.getMessage().startsWith("cuDeviceGet failed: CUDA_ERROR_"), e.getMessage());
        if (which.equals("host")) {
            assertEquals("cuDeviceGet failed: CUDA_ERROR_INVALID_DEVICE (101).", e.getMessage());
            assertEquals(101, e.code());
        }
        assertThrows(CudaException.class, () -> cuda.totalMemory(beyond));
    }

    @Test
    void theHostBuildRefusesAttributesItDoesNotModel() {
        CudaLibrary cuda = CudaTargets.driver("host");
        CudaException e = assertThrows(CudaException.class, () -> cuda.deviceAttribute(0, 9999));
        assertEquals("cuDeviceGetAttribute(9999) failed: CUDA_ERROR_INVALID_VALUE (1).", e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void thePrimaryContextCanBeReleasedAndRetainedAgain(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        cuda.usePrimaryContext(0); // a second retain, so that releasing one leaves the context alive
        cuda.releasePrimaryContext(0);
        try (CudaLibrary.DeviceBuffer b = cuda.allocateBuffer(256)) {
            assertTrue(b.address() != 0);
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Memory and copies

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void deviceBuffersRoundTripAndFreeOnce(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        float[] values = {1.5f, -2f, 3.25f, 0f, 1e-3f, 7f, -8.5f, 9f};
        try (Arena arena = Arena.ofConfined();
             CudaLibrary.DeviceBuffer a = cuda.allocateBuffer(4L * values.length);
             CudaLibrary.DeviceBuffer b = cuda.allocateBuffer(4L * values.length)) {
            assertEquals(32, a.bytes());
            cuda.copyToDevice(a.address(), arena.allocateFrom(ValueLayout.JAVA_FLOAT, values));
            cuda.copyOnDevice(b.address(), a.address(), a.bytes());
            MemorySegment back = arena.allocate(ValueLayout.JAVA_FLOAT, values.length);
            cuda.copyToHost(back, b.address());
            assertArrayEquals(values, back.toArray(ValueLayout.JAVA_FLOAT));
            b.close();
            assertTrue(b.closed());
            assertDoesNotThrow(b::close, "a second close does nothing");
            assertThrows(IllegalStateException.class, b::address);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void freeingTwiceIsAnInvalidValue(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        long p = cuda.allocate(1024);
        cuda.free(p);
        CudaException e = assertThrows(CudaException.class, () -> cuda.free(p));
        assertTrue(e.getMessage().startsWith("cuMemFree_v2 failed: CUDA_ERROR_"), e.getMessage());
        if (which.equals("host")) {
            assertEquals("cuMemFree_v2 failed: CUDA_ERROR_INVALID_VALUE (1).", e.getMessage());
            assertEquals("cuMemAlloc_v2 failed: CUDA_ERROR_INVALID_VALUE (1).",
                    assertThrows(CudaException.class, () -> cuda.allocate(0)).getMessage(), "cuda.h: zero bytes is invalid");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void asyncCopiesThroughPinnedMemoryRoundTrip(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        int n = 4096;
        try (CudaLibrary.Stream stream = cuda.createStream(CudaLibrary.STREAM_NON_BLOCKING);
             CudaLibrary.PinnedBuffer up = cuda.allocatePinned(n);
             CudaLibrary.PinnedBuffer down = cuda.allocatePinned(n);
             CudaLibrary.DeviceBuffer device = cuda.allocateBuffer(n)) {
            assertEquals(n, up.bytes());
            for (int i = 0; i < n; i++) {
                up.segment().set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31 + 7));
            }
            cuda.fillAsync(device.address(), (byte) 0x5a, n, stream);
            cuda.copyToHostAsync(down.segment(), device.address(), stream);
            stream.synchronize();
            for (int i = 0; i < n; i++) {
                assertEquals((byte) 0x5a, down.segment().get(ValueLayout.JAVA_BYTE, i), "filled byte " + i);
            }
            cuda.copyToDeviceAsync(device.address(), up.segment(), stream);
            cuda.copyToHostAsync(down.segment(), device.address(), stream);
            stream.synchronize();
            assertEquals(-1L, up.segment().mismatch(down.segment()), "the bytes came back as they went");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void pinnedMemoryIsInaccessibleOnceClosed(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        CudaLibrary.PinnedBuffer pinned = cuda.allocatePinned(100);
        MemorySegment segment = pinned.segment();
        segment.set(ValueLayout.JAVA_INT, 0, 42);
        if (which.equals("host")) {
            assertEquals(0, segment.address() % 4096, "the host build aligns pinned memory to a page");
        }
        pinned.close();
        assertThrows(IllegalStateException.class, () -> segment.get(ValueLayout.JAVA_INT, 0));
        assertDoesNotThrow(pinned::close);
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void streamOrderedAllocationWorksWhereTheDriverHasIt(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        org.junit.jupiter.api.Assumptions.assumeTrue(cuda.supportsAsyncAllocation()
                && cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_MEMORY_POOLS_SUPPORTED) == 1, "no memory pools");
        try (Arena arena = Arena.ofConfined(); CudaLibrary.Stream stream = cuda.createStream()) {
            MemorySegment back = arena.allocate(64);
            try (CudaLibrary.DeviceBuffer b = cuda.allocateAsync(64, stream)) {
                cuda.fillAsync(b.address(), (byte) 3, 64, stream);
                cuda.copyToHostAsync(back, b.address(), stream);
                stream.synchronize();
            }
            stream.synchronize();
            for (int i = 0; i < 64; i++) {
                assertEquals(3, back.get(ValueLayout.JAVA_BYTE, i));
            }
            long p = cuda.allocateAsync(16, null).address();
            cuda.freeAsync(p, null);
            cuda.synchronize();
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Streams and events

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void streamsSynchronizeAndCloseOnce(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        CudaLibrary.Stream stream = cuda.createStream();
        assertFalse(stream.handle().equals(MemorySegment.NULL));
        stream.synchronize();
        stream.close();
        assertDoesNotThrow(stream::close);
        assertThrows(IllegalStateException.class, stream::synchronize);
        CudaLibrary.Stream standard = cuda.defaultStream();
        assertEquals(MemorySegment.NULL, standard.handle());
        standard.synchronize();
        standard.close(); // does nothing to the NULL stream
        cuda.synchronize();
        CudaException e = assertThrows(CudaException.class, () -> cuda.createStream(0x40));
        assertTrue(e.getMessage().startsWith("cuStreamCreate failed: CUDA_ERROR_"), e.getMessage());
        if (which.equals("host")) {
            assertEquals("cuStreamCreate failed: CUDA_ERROR_INVALID_VALUE (1).", e.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void eventsTimeTheWorkBetweenThem(String which) throws InterruptedException {
        CudaLibrary cuda = CudaTargets.driver(which);
        try (CudaLibrary.Stream stream = cuda.createStream();
             CudaLibrary.Event start = cuda.createEvent();
             CudaLibrary.Event end = cuda.createEvent(CudaLibrary.EVENT_BLOCKING_SYNC);
             CudaLibrary.DeviceBuffer buffer = cuda.allocateBuffer(1 << 20)) {
            start.record(stream);
            cuda.fillAsync(buffer.address(), (byte) 1, buffer.bytes(), stream);
            Thread.sleep(20);
            end.record(stream);
            end.synchronize();
            float millis = end.elapsedMillisSince(start);
            assertTrue(millis >= 0, "elapsed " + millis);
            if (which.equals("host")) {
                assertTrue(millis >= 15, "the host build times with a steady clock between the records: " + millis);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void timingNeedsRecordedTimingEvents(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        try (CudaLibrary.Event start = cuda.createEvent();
             CudaLibrary.Event untimed = cuda.createEvent(CudaLibrary.EVENT_DISABLE_TIMING);
             CudaLibrary.Event never = cuda.createEvent()) {
            start.record(null);
            untimed.record(null);
            untimed.synchronize();
            CudaException e = assertThrows(CudaException.class, () -> untimed.elapsedMillisSince(start));
            assertEquals("cuEventElapsedTime failed: CUDA_ERROR_INVALID_HANDLE (400).", e.getMessage());
            if (which.equals("host")) {
                assertThrows(CudaException.class, () -> never.elapsedMillisSince(start));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Modules and launches

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void aKernelLaunchedOnAStreamRunsWithoutWaitingUntilAsked(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        int n = 1000;
        float[] a = new float[n];
        float[] b = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = i * 0.5f;
            b[i] = 1f - i;
        }
        try (Arena arena = Arena.ofConfined();
             CudaLibrary.Module module = cuda.openModule(CudaTargets.addModule());
             CudaLibrary.Stream stream = cuda.createStream();
             CudaLibrary.DeviceBuffer da = cuda.allocateBuffer(4L * n);
             CudaLibrary.DeviceBuffer db = cuda.allocateBuffer(4L * n);
             CudaLibrary.DeviceBuffer out = cuda.allocateBuffer(4L * n)) {
            MemorySegment hostA = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
            MemorySegment hostB = arena.allocateFrom(ValueLayout.JAVA_FLOAT, b);
            MemorySegment back = arena.allocate(ValueLayout.JAVA_FLOAT, n);
            cuda.copyToDeviceAsync(da.address(), hostA, stream);
            cuda.copyToDeviceAsync(db.address(), hostB, stream);
            MemorySegment add = module.function("tandem_add_f32");
            cuda.launchAsync(add, (n + 127) / 128, 1, 1, 128, 1, 1, 0, stream,
                    new CudaLibrary.Args().pointer(out.address()).pointer(da.address()).pointer(db.address()).i64(n));
            cuda.copyToHostAsync(back, out.address(), stream);
            stream.synchronize();
            for (int i = 0; i < n; i++) {
                assertEquals(a[i] + b[i], back.getAtIndex(ValueLayout.JAVA_FLOAT, i), "element " + i);
            }
            CudaException tooMuchShared = assertThrows(CudaException.class, () -> cuda.launchAsync(add, 1, 1, 1, 32, 1, 1,
                    1 << 20, stream, new CudaLibrary.Args().pointer(out.address()).pointer(da.address()).pointer(db.address()).i64(n)));
            assertTrue(tooMuchShared.getMessage().startsWith("cuLaunchKernel failed: CUDA_ERROR_"), tooMuchShared.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void modulesNameMissingKernelsAndUnloadOnce(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        CudaLibrary.Module module = cuda.openModule(CudaTargets.addModule());
        CudaException missing = assertThrows(CudaException.class, () -> module.function("tandem_no_such_kernel"));
        assertEquals("cuModuleGetFunction(tandem_no_such_kernel) failed: CUDA_ERROR_NOT_FOUND (500).", missing.getMessage());
        MemorySegment handle = module.handle();
        module.close();
        assertDoesNotThrow(module::close);
        assertThrows(IllegalStateException.class, () -> module.function("tandem_add_f32"));
        if (which.equals("host")) {
            CudaException twice = assertThrows(CudaException.class, () -> cuda.unloadModule(handle));
            assertEquals("cuModuleUnload failed: CUDA_ERROR_INVALID_HANDLE (400).", twice.getMessage());
        }
    }

    // ---------------------------------------------------------------------------------------------------
    // Error names

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void errorsAreNamedByTheLibraryEvenOutsideTheTable(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        assertNull(CudaStatus.of(715), "the test needs a code CudaStatus does not name");
        assertEquals("CUDA_ERROR_ILLEGAL_INSTRUCTION", cuda.errorName(715));
        assertEquals("CUDA_ERROR_OUT_OF_MEMORY", cuda.errorName(2));
        assertEquals("out of memory", cuda.errorString(2));
        CudaException e = assertThrows(CudaException.class, () -> cuda.check(715, "cuTest"));
        assertEquals("cuTest failed: CUDA_ERROR_ILLEGAL_INSTRUCTION (715).", e.getMessage());
        assertEquals(715, e.code());
        assertNull(cuda.errorName(123456), "an unknown code has no name");
        assertEquals("CUresult 123456", cuda.describe(123456));
    }

    @Test
    void theHostBuildNamesEveryCodeOfItsTable() {
        CudaLibrary cuda = CudaTargets.driver("host");
        for (CudaStatus s : CudaStatus.values()) {
            assertEquals(s.cudaName(), cuda.errorName(s.code()), "code " + s.code());
        }
        assertEquals("invalid resource handle", cuda.errorString(400));
        assertEquals("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", cuda.errorString(900), "undescribed codes are named");
    }

    // ---------------------------------------------------------------------------------------------------
    // Optional and required symbols

    @Test
    void aDriverWithoutStreamOrderedAllocationStaysAvailable() {
        CudaLibrary old = CudaLibrary.open(CudaTargets.hostLibrary(), Set.of("cuMemAllocAsync", "cuMemFreeAsync"));
        assertTrue(old.available(), old.reason());
        assertFalse(old.supportsAsyncAllocation());
        old.usePrimaryContext(0);
        try (CudaLibrary.Stream stream = old.createStream()) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> old.allocateAsync(64, stream));
            assertEquals(old.library() + " has no cuMemAllocAsync (stream-ordered allocation needs a CUDA 11.2 or newer driver);"
                    + " use allocateBuffer instead.", e.getMessage());
            assertThrows(UnsupportedOperationException.class, () -> old.freeAsync(0, stream));
        }
        try (CudaLibrary.DeviceBuffer b = old.allocateBuffer(64)) {
            assertTrue(b.address() != 0, "the rest still works");
        }
        assertTrue(CudaLibrary.open(CudaTargets.hostLibrary()).supportsAsyncAllocation());
    }

    @Test
    void withoutCuGetErrorNameTheTableAndTheNumberName() {
        CudaLibrary cuda = CudaLibrary.open(CudaTargets.hostLibrary(), Set.of("cuGetErrorName", "cuGetErrorString"));
        assertTrue(cuda.available(), cuda.reason());
        assertEquals("CUDA_ERROR_OUT_OF_MEMORY", cuda.errorName(2));
        assertNull(cuda.errorName(715));
        assertNull(cuda.errorString(2));
        assertEquals("cuTest failed: CUresult 715.", assertThrows(CudaException.class, () -> cuda.check(715, "cuTest")).getMessage());
        assertEquals("cuTest failed: CUDA_ERROR_NOT_FOUND (500).", assertThrows(CudaException.class, () -> cuda.check(500, "cuTest")).getMessage());
    }

    @Test
    void aMissingRequiredSymbolMakesTheLibraryUnavailable() {
        String path = CudaTargets.hostLibrary();
        CudaLibrary cuda = CudaLibrary.open(path, Set.of("cuStreamCreate"));
        assertFalse(cuda.available());
        assertEquals(path + " was loaded but has no symbol cuStreamCreate (driver too old or not NVIDIA's).", cuda.reason());
        assertEquals(cuda.reason(), assertThrows(IllegalStateException.class, cuda::createStream).getMessage());
    }

    @Test
    void anUnavailableLibraryThrowsItsReasonFromEveryCall() {
        CudaLibrary cuda = CudaLibrary.open("/no/such/dir/libcuda.so.1");
        assertFalse(cuda.available());
        assertFalse(cuda.supportsAsyncAllocation());
        String reason = cuda.reason();
        assertEquals("/no/such/dir/libcuda.so.1 was not found on the library path (no NVIDIA driver).", reason);
        for (Runnable call : new Runnable[] {cuda::createStream, cuda::createEvent, () -> cuda.allocateBuffer(1),
                () -> cuda.allocatePinned(1), cuda::memoryInfo, () -> cuda.totalMemory(0), cuda::defaultStream,
                () -> cuda.deviceAttribute(0, CudaLibrary.ATTRIBUTE_WARP_SIZE), () -> cuda.allocateAsync(1, null)}) {
            assertEquals(reason, assertThrows(IllegalStateException.class, call::run).getMessage());
        }
        assertEquals("CUDA_ERROR_NO_DEVICE", cuda.errorName(100), "the table still names codes");
        assertNull(cuda.errorString(100));
    }
}
