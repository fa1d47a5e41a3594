package dev.tandem.bindings.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The drivers the binding tests run on: {@code "host"}, the host build of the driver entry points
 * ({@code -Dtandem.cuda.host.library}, built by this module's generate-test-resources), and {@code "gpu"},
 * NVIDIA's {@code libcuda.so.1}. Either reports the test skipped, with the reason, when absent.
 */
final class CudaTargets {
    private CudaTargets() {
    }

    /** The host build's path, or skips the test. */
    static String hostLibrary() {
        String path = System.getProperty("tandem.cuda.host.library", "");
        assumeTrue(!path.isEmpty() && Files.isRegularFile(Path.of(path)),
                "the host build of the CUDA driver entry points was not made (no g++; see native/cuda/host/build-host.sh): " + path);
        return path;
    }

    /** The host shim of cuBLAS's path, or skips the test. */
    static String hostCublas() {
        String path = System.getProperty("tandem.cublas.host.library", "");
        assumeTrue(!path.isEmpty() && Files.isRegularFile(Path.of(path)),
                "the host shim of cuBLAS was not made (no g++; see native/cuda/host/build-host.sh): " + path);
        return path;
    }

    /** The driver {@code which} names, with device 0's primary context current on this thread. */
    static CudaLibrary driver(String which) {
        CudaLibrary cuda;
        if (which.equals("host")) {
            cuda = Host.LIBRARY == null ? CudaLibrary.open(hostLibrary()) : Host.LIBRARY;
        } else {
            assumeTrue(CudaDriver.isAvailable(), () -> "no GPU here: " + CudaDriver.unavailableReason());
            cuda = CudaDriver.library();
            assumeTrue(cuda.deviceCount() >= 1, "libcuda.so.1 sees no device");
        }
        assertTrue(cuda.available(), cuda.reason());
        cuda.usePrimaryContext(0);
        return cuda;
    }

    private static final class Host {
        static final CudaLibrary LIBRARY = open();

        private static CudaLibrary open() {
            String path = System.getProperty("tandem.cuda.host.library", "");
            return !path.isEmpty() && Files.isRegularFile(Path.of(path)) ? CudaLibrary.open(path) : null;
        }
    }

    /** A module image with {@code tandem_add_f32(float* out, const float* a, const float* b, long long n)} (PTX; the host build ignores it). */
    static byte[] addModule() {
        try (InputStream in = CudaTargets.class.getResourceAsStream("add_f32.ptx")) {
            assertTrue(in != null, "add_f32.ptx is not on the test class path");
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
