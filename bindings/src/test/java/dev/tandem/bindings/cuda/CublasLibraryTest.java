package dev.tandem.bindings.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link CublasLibrary}: loading and discovery, and its GEMMs against a plain Java reference, on the host shim
 * ({@code "host"}: bit for bit, since the shim sums in a fixed order that the reference repeats) and, where
 * there is a GPU and cuBLAS, on them ({@code "gpu"}: within f32 rounding; skipped with the reason elsewhere).
 */
class CublasLibraryTest {
    private static final int[] TYPES = {CublasLibrary.R_32F, CublasLibrary.R_16BF, CublasLibrary.R_16F};

    /** A driver and a cuBLAS handle on it. */
    private record Target(String which, CudaLibrary cuda, CublasLibrary cublas) {
    }

    private static Target target(String which) {
        CudaLibrary cuda = CudaTargets.driver(which);
        CublasLibrary cublas;
        if (which.equals("host")) {
            cublas = CublasLibrary.open(CudaTargets.hostCublas());
        } else {
            cublas = CublasLibrary.find();
            assumeTrue(cublas.available(), () -> "no cuBLAS here: " + cublas.reason());
        }
        assertTrue(cublas.available(), cublas.reason());
        return new Target(which, cuda, cublas);
    }

    // ---------------------------------------------------------------------------------------------------
    // Loading and discovery

    @Test
    void aMissingLibraryIsReportedNotThrown() {
        CublasLibrary l = CublasLibrary.open("/no/such/dir/libcublas.so.13");
        assertFalse(l.available());
        assertEquals("/no/such/dir/libcublas.so.13 could not be loaded (not found, or a library it needs, such as"
                + " libcublasLt, is missing).", l.reason());
        assertEquals(l.reason(), assertThrows(IllegalStateException.class, l::create).getMessage());
        assertEquals("CUBLAS_STATUS_NOT_SUPPORTED", l.statusName(15), "the table still names statuses");
    }

    @Test
    void aLibraryWithoutCublasIsNotCublas() {
        String driver = CudaTargets.hostLibrary();
        CublasLibrary l = CublasLibrary.open(driver);
        assertFalse(l.available());
        assertEquals(driver + " was loaded but has no symbol cublasCreate_v2 (not cuBLAS, or older than cuBLAS 11).", l.reason());
    }

    @Test
    void theSearchNamesEveryPlaceItLooked(@TempDir Path dir) throws IOException {
        Path venv = dir.resolve("venv");
        Path site = Files.createDirectories(venv.resolve("lib/python3.12/site-packages"));
        Path cuda = dir.resolve("cuda");
        List<String> names = List.of("libtandem-test-cublas.so.13", "libtandem-test-cublas.so");
        CublasLibrary l = CublasLibrary.find("", Map.of("VIRTUAL_ENV", venv.toString(), "CUDA_HOME", cuda.toString()),
                dir.resolve("home").toString(), names);
        assertFalse(l.available());
        String reason = l.reason();
        assertTrue(reason.startsWith("cuBLAS was not found: looked for libtandem-test-cublas.so.13 and libtandem-test-cublas.so"
                + " through the dynamic linker, in " + cuda.resolve("lib64") + " and /usr/local/cuda/lib64, "), reason);
        assertTrue(reason.contains("nvidia/cublas/lib and nvidia/cu13/lib of " + site), reason);
        assertTrue(reason.endsWith(".") && !reason.substring(0, reason.length() - 1).contains(". "), "one sentence: " + reason);
    }

    @Test
    void theSearchFindsAPythonWheel(@TempDir Path dir) throws IOException {
        Path venv = dir.resolve("venv");
        Path lib = Files.createDirectories(venv.resolve("lib/python3.12/site-packages/nvidia/cublas/lib"));
        Path copy = Files.copy(Path.of(CudaTargets.hostCublas()), lib.resolve("libtandem-test-wheel-cublas.so.13"));
        CublasLibrary l = CublasLibrary.find("", Map.of("VIRTUAL_ENV", venv.toString()), "",
                List.of("libtandem-test-wheel-cublas.so.13"));
        assertTrue(l.available(), l.reason());
        assertEquals(copy.toString(), l.library());
    }

    @Test
    void theSearchFindsTheToolkit(@TempDir Path dir) throws IOException {
        Path lib = Files.createDirectories(dir.resolve("cuda/lib64"));
        Files.copy(Path.of(CudaTargets.hostCublas()), lib.resolve("libtandem-test-toolkit-cublas.so.12"));
        CublasLibrary l = CublasLibrary.find("", Map.of("CUDA_PATH", dir.resolve("cuda").toString()), "",
                List.of("libtandem-test-toolkit-cublas.so.13", "libtandem-test-toolkit-cublas.so.12"));
        assertTrue(l.available(), l.reason());
        assertEquals(lib.resolve("libtandem-test-toolkit-cublas.so.12").toString(), l.library());
    }

    @Test
    void thePropertyForcesALibrary() {
        String shim = CudaTargets.hostCublas();
        String before = System.getProperty(CublasLibrary.LIBRARY_PROPERTY);
        try {
            System.setProperty(CublasLibrary.LIBRARY_PROPERTY, shim);
            CublasLibrary forced = CublasLibrary.find();
            assertTrue(forced.available(), forced.reason());
            assertEquals(shim, forced.library());
            System.setProperty(CublasLibrary.LIBRARY_PROPERTY, "/no/such/libcublas.so");
            CublasLibrary missing = CublasLibrary.find();
            assertFalse(missing.available());
            assertEquals("/no/such/libcublas.so could not be loaded (not found, or a library it needs, such as libcublasLt,"
                    + " is missing) (named by -Dtandem.cublas.library).", missing.reason());
        } finally {
            if (before == null) {
                System.clearProperty(CublasLibrary.LIBRARY_PROPERTY);
            } else {
                System.setProperty(CublasLibrary.LIBRARY_PROPERTY, before);
            }
        }
    }

    @Test
    void withoutCublasTheNoticeComesOnce() {
        assumeFalse(CublasLibrary.system().available(), "cuBLAS is installed here; the notice does not apply");
        List<String> notices = new ArrayList<>();
        boolean first = CublasLibrary.noticeOnce(notices::add);
        boolean second = CublasLibrary.noticeOnce(notices::add);
        assertFalse(second);
        if (first) {
            assertEquals(1, notices.size());
            assertTrue(notices.getFirst().startsWith("notice: cuBLAS was not found: "), notices.getFirst());
            assertTrue(notices.getFirst().endsWith("; using Tandem's own GEMM kernels instead."), notices.getFirst());
        }
    }

    @Test
    void statusesAreNamed() {
        CublasLibrary l = CublasLibrary.open(CudaTargets.hostCublas());
        assertEquals("CUBLAS_STATUS_NOT_SUPPORTED", l.statusName(15));
        assertEquals("CUBLAS_STATUS_INVALID_VALUE", l.statusName(7));
        assertNull(l.statusName(4242));
        assertEquals("cublasStatus_t 4242", l.describe(4242));
    }

    // ---------------------------------------------------------------------------------------------------
    // GEMMs

    /** A matrix of {@code count} random values, rounded to {@code type}, and their f32 values. */
    private record Matrix(float[] values, MemorySegment stored) {
    }

    private static Matrix matrix(Arena arena, SplittableRandom random, int type, int count) {
        float[] values = new float[count];
        MemorySegment stored = arena.allocate(type == CublasLibrary.R_32F ? 4L * count : 2L * count, 16);
        for (int i = 0; i < count; i++) {
            float v = (float) (random.nextDouble() * 2 - 1);
            switch (type) {
                case CublasLibrary.R_32F -> {
                    values[i] = v;
                    stored.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
                }
                case CublasLibrary.R_16BF -> {
                    short bits = (short) (Float.floatToRawIntBits(v) >>> 16); // truncation: any bf16 will do
                    values[i] = Float.intBitsToFloat(bits << 16);
                    stored.setAtIndex(ValueLayout.JAVA_SHORT, i, bits);
                }
                default -> {
                    short bits = Float.floatToFloat16(v);
                    values[i] = Float.float16ToFloat(bits);
                    stored.setAtIndex(ValueLayout.JAVA_SHORT, i, bits);
                }
            }
        }
        return new Matrix(values, stored);
    }

    /** Column-major {@code alpha · op(A) · op(B) + beta · C}, each sum in p order, as the host shim does. */
    private static float[] reference(int transA, int transB, int m, int n, int k, float alpha, float[] a, int offsetA, int lda,
                                     float[] b, int offsetB, int ldb, float beta, float[] c, int offsetC, int ldc) {
        float[] out = new float[m * n];
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                float sum = 0f;
                for (int p = 0; p < k; p++) {
                    float av = transA == CublasLibrary.OP_N ? a[offsetA + i + p * lda] : a[offsetA + p + i * lda];
                    float bv = transB == CublasLibrary.OP_N ? b[offsetB + p + j * ldb] : b[offsetB + j + p * ldb];
                    sum = sum + av * bv;
                }
                float scaled = alpha * sum;
                out[i + j * m] = beta == 0f ? scaled : scaled + beta * c[offsetC + i + j * ldc];
            }
        }
        return out;
    }

    /** Bit for bit on the host shim; within f32 rounding of a k-term sum on a GPU. */
    private static void assertClose(String which, float[] want, MemorySegment got, int offset, int m, int n, int ldc, int k, String what) {
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                float w = want[i + j * m];
                float g = got.getAtIndex(ValueLayout.JAVA_FLOAT, offset + i + (long) j * ldc);
                if (which.equals("host")) {
                    assertEquals(Float.floatToIntBits(w), Float.floatToIntBits(g), what + " at (" + i + ", " + j + "): " + g + " vs " + w);
                } else {
                    assertEquals(w, g, 1e-5f * (k + 1) * Math.max(1f, Math.abs(w)), what + " at (" + i + ", " + j + ")");
                }
            }
        }
    }

    private static long upload(CudaLibrary cuda, List<CudaLibrary.DeviceBuffer> buffers, MemorySegment host) {
        CudaLibrary.DeviceBuffer b = cuda.allocateBuffer(host.byteSize());
        buffers.add(b);
        cuda.copyToDevice(b.address(), host);
        return b.address();
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void gemmExMatchesTheReferenceForEveryTypeAndTranspose(String which) {
        Target t = target(which);
        SplittableRandom random = new SplittableRandom(20250101);
        int m = 7;
        int n = 5;
        int k = 33;
        for (int type : TYPES) {
            for (int transA : new int[] {CublasLibrary.OP_N, CublasLibrary.OP_T}) {
                for (int transB : new int[] {CublasLibrary.OP_N, CublasLibrary.OP_T}) {
                    int lda = (transA == CublasLibrary.OP_N ? m : k) + 2; // padded leading dimensions
                    int ldb = (transB == CublasLibrary.OP_N ? k : n) + 1;
                    int ldc = m + 3;
                    List<CudaLibrary.DeviceBuffer> buffers = new ArrayList<>();
                    try (Arena arena = Arena.ofConfined(); CublasLibrary.Handle handle = t.cublas().create()) {
                        Matrix a = matrix(arena, random, type, lda * (transA == CublasLibrary.OP_N ? k : m));
                        Matrix b = matrix(arena, random, type, ldb * (transB == CublasLibrary.OP_N ? n : k));
                        Matrix c = matrix(arena, random, CublasLibrary.R_32F, ldc * n);
                        long da = upload(t.cuda(), buffers, a.stored());
                        long db = upload(t.cuda(), buffers, b.stored());
                        long dc = upload(t.cuda(), buffers, c.stored());
                        float alpha = 1.25f;
                        float beta = 0.5f;
                        handle.gemmEx(transA, transB, m, n, k, alpha, da, type, lda, db, type, ldb, beta, dc, CublasLibrary.R_32F, ldc);
                        t.cuda().synchronize();
                        MemorySegment back = arena.allocate(c.stored().byteSize());
                        t.cuda().copyToHost(back, dc);
                        String what = "type " + type + " op(A) " + transA + " op(B) " + transB;
                        assertClose(which, reference(transA, transB, m, n, k, alpha, a.values(), 0, lda, b.values(), 0, ldb, beta,
                                c.values(), 0, ldc), back, 0, m, n, ldc, k, what);
                        for (int j = 0; j < n; j++) {
                            for (int i = m; i < ldc; i++) {
                                assertEquals(c.values()[i + j * ldc], back.getAtIndex(ValueLayout.JAVA_FLOAT, i + (long) j * ldc),
                                        what + ": padding of C is left alone");
                            }
                        }
                    } finally {
                        buffers.forEach(CudaLibrary.DeviceBuffer::close);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void stridedBatchedGemmMatchesTheReference(String which) {
        Target t = target(which);
        SplittableRandom random = new SplittableRandom(7);
        int m = 6;
        int n = 9;
        int k = 17;
        int batch = 3;
        for (int type : new int[] {CublasLibrary.R_32F, CublasLibrary.R_16BF}) {
            for (int transA : new int[] {CublasLibrary.OP_N, CublasLibrary.OP_T}) {
                for (int transB : new int[] {CublasLibrary.OP_N, CublasLibrary.OP_T}) {
                    int lda = transA == CublasLibrary.OP_N ? m : k;
                    int ldb = transB == CublasLibrary.OP_N ? k : n;
                    int ldc = m;
                    long strideA = (long) lda * (transA == CublasLibrary.OP_N ? k : m) + 5; // gaps between the matrices
                    long strideB = (long) ldb * (transB == CublasLibrary.OP_N ? n : k);
                    long strideC = (long) ldc * n + 4;
                    List<CudaLibrary.DeviceBuffer> buffers = new ArrayList<>();
                    try (Arena arena = Arena.ofConfined(); CublasLibrary.Handle handle = t.cublas().create();
                         CudaLibrary.Stream stream = t.cuda().createStream()) {
                        handle.setStream(stream);
                        Matrix a = matrix(arena, random, type, (int) (strideA * batch));
                        Matrix b = matrix(arena, random, type, (int) (strideB * batch));
                        Matrix c = matrix(arena, random, CublasLibrary.R_32F, (int) (strideC * batch));
                        long da = upload(t.cuda(), buffers, a.stored());
                        long db = upload(t.cuda(), buffers, b.stored());
                        long dc = upload(t.cuda(), buffers, c.stored());
                        handle.gemmStridedBatchedEx(transA, transB, m, n, k, 1f, da, type, lda, strideA, db, type, ldb, strideB,
                                0f, dc, CublasLibrary.R_32F, ldc, strideC, batch);
                        MemorySegment back = arena.allocate(c.stored().byteSize());
                        t.cuda().copyToHostAsync(back, dc, stream);
                        stream.synchronize();
                        for (int i = 0; i < batch; i++) {
                            float[] want = reference(transA, transB, m, n, k, 1f, a.values(), (int) (i * strideA), lda,
                                    b.values(), (int) (i * strideB), ldb, 0f, c.values(), (int) (i * strideC), ldc);
                            assertClose(which, want, back, (int) (i * strideC), m, n, ldc, k,
                                    "type " + type + " op(A) " + transA + " op(B) " + transB + " batch " + i);
                            for (long gap = i * strideC + (long) ldc * n; gap < (i + 1) * strideC; gap++) {
                                assertEquals(c.values()[(int) gap], back.getAtIndex(ValueLayout.JAVA_FLOAT, gap), "gap after batch " + i);
                            }
                        }
                    } finally {
                        buffers.forEach(CudaLibrary.DeviceBuffer::close);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void betaZeroDoesNotReadC(String which) {
        Target t = target(which);
        try (Arena arena = Arena.ofConfined(); CublasLibrary.Handle handle = t.cublas().create();
             CudaLibrary.DeviceBuffer a = t.cuda().allocateBuffer(16);
             CudaLibrary.DeviceBuffer b = t.cuda().allocateBuffer(16);
             CudaLibrary.DeviceBuffer c = t.cuda().allocateBuffer(16)) {
            t.cuda().copyToDevice(a.address(), arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1f, 2f, 3f, 4f));
            t.cuda().copyToDevice(b.address(), arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1f, 0f, 0f, 1f));
            t.cuda().copyToDevice(c.address(), arena.allocateFrom(ValueLayout.JAVA_FLOAT, Float.NaN, Float.NaN, Float.NaN, Float.NaN));
            handle.gemmEx(CublasLibrary.OP_N, CublasLibrary.OP_N, 2, 2, 2, 1f, a.address(), CublasLibrary.R_32F, 2,
                    b.address(), CublasLibrary.R_32F, 2, 0f, c.address(), CublasLibrary.R_32F, 2);
            t.cuda().synchronize();
            MemorySegment back = arena.allocate(16);
            t.cuda().copyToHost(back, c.address());
            assertEquals(List.of(1f, 2f, 3f, 4f), List.of(back.getAtIndex(ValueLayout.JAVA_FLOAT, 0), back.getAtIndex(ValueLayout.JAVA_FLOAT, 1),
                    back.getAtIndex(ValueLayout.JAVA_FLOAT, 2), back.getAtIndex(ValueLayout.JAVA_FLOAT, 3)));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void badCallsAreNamedByTheirStatus(String which) {
        Target t = target(which);
        try (CublasLibrary.Handle handle = t.cublas().create(); CudaLibrary.DeviceBuffer buffer = t.cuda().allocateBuffer(4096)) {
            long p = buffer.address();
            CublasException mixed = assertThrows(CublasException.class, () -> handle.gemmEx(CublasLibrary.OP_N, CublasLibrary.OP_N,
                    4, 4, 4, 1f, p, CublasLibrary.R_32F, 4, p, CublasLibrary.R_16BF, 4, 0f, p, CublasLibrary.R_32F, 4));
            assertEquals("cublasGemmEx failed: CUBLAS_STATUS_NOT_SUPPORTED (15).", mixed.getMessage());
            assertTrue(mixed.notSupported());
            CublasException lda = assertThrows(CublasException.class, () -> handle.gemmEx(CublasLibrary.OP_N, CublasLibrary.OP_N,
                    4, 4, 4, 1f, p, CublasLibrary.R_32F, 3, p, CublasLibrary.R_32F, 4, 0f, p, CublasLibrary.R_32F, 4));
            assertEquals("cublasGemmEx failed: CUBLAS_STATUS_INVALID_VALUE (7).", lda.getMessage());
            assertEquals(7, lda.status());
            CublasException batched = assertThrows(CublasException.class, () -> handle.gemmStridedBatchedEx(CublasLibrary.OP_T,
                    CublasLibrary.OP_N, 4, 4, 4, 1f, p, CublasLibrary.R_32F, 4, 16, p, CublasLibrary.R_32F, 4, 16, 0f, p,
                    CublasLibrary.R_32F, 2, 16, 2));
            assertEquals("cublasGemmStridedBatchedEx failed: CUBLAS_STATUS_INVALID_VALUE (7).", batched.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void onlyStrictF32MathModesAreAccepted(String which) {
        Target t = target(which);
        try (CublasLibrary.Handle handle = t.cublas().create()) {
            assertEquals(CublasLibrary.COMPUTE_32F, handle.computeType());
            assertThrows(IllegalArgumentException.class, () -> handle.setMathMode(3)); // CUBLAS_TF32_TENSOR_OP_MATH
            handle.setMathMode(CublasLibrary.PEDANTIC_MATH);
            assertEquals(CublasLibrary.COMPUTE_32F_PEDANTIC, handle.computeType());
            try (CudaLibrary.DeviceBuffer a = t.cuda().allocateBuffer(64)) {
                t.cuda().fill(a.address(), (byte) 0, 64);
                handle.gemmEx(CublasLibrary.OP_N, CublasLibrary.OP_T, 2, 2, 2, 1f, a.address(), CublasLibrary.R_16BF, 2,
                        a.address(), CublasLibrary.R_16BF, 2, 0f, a.address() + 32, CublasLibrary.R_32F, 2);
                t.cuda().synchronize();
            }
            handle.setMathMode(CublasLibrary.DEFAULT_MATH);
            assertEquals(CublasLibrary.COMPUTE_32F, handle.computeType());
            handle.setStream(null);
        }
    }

    @Test
    void handlesCloseOnce() {
        Target t = target("host");
        CublasLibrary.Handle handle = t.cublas().create();
        assertEquals(t.cublas(), handle.library());
        handle.close();
        assertDoesNotThrow(handle::close);
        assertThrows(IllegalStateException.class, () -> handle.setStream(null));
    }
}
