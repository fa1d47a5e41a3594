package dev.tandem.runtime.cuda;

import dev.tandem.bindings.cuda.CudaDriver;
import dev.tandem.bindings.cuda.CudaLibrary;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The two drivers every CUDA test runs on: {@code "host"}, the host build of the kernels
 * ({@code native/cuda/host}, path in the system property {@code tandem.cuda.host.library} that the build
 * sets), and {@code "gpu"}, NVIDIA's driver with the embedded fatbin. A target that is not here makes the
 * calling test report itself skipped, with the reason. Shared with the modules above through runtime's
 * test-jar.
 */
public final class CudaTestBackends {
    /** The targets, in the order tests list them. */
    public static final String HOST = "host", GPU = "gpu";

    private CudaTestBackends() {
    }

    /** The backends of one test class: each target opened on first use, all closed by {@link #close} (from {@code @AfterAll}). */
    public static final class PerClass implements AutoCloseable {
        private final java.util.Map<String, CudaBackend> open = new java.util.HashMap<>();

        /** The backend on {@code which}, opened the first time (or the test skipped with the reason). */
        public synchronized CudaBackend get(String which) {
            return open.computeIfAbsent(which, CudaTestBackends::open);
        }

        @Override
        public synchronized void close() {
            open.values().forEach(CudaBackend::close);
            open.clear();
        }
    }

    /** A new backend on {@code which} ({@link #HOST} or {@link #GPU}), or the test skipped with the reason; the caller closes it. */
    public static CudaBackend open(String which) {
        if (which.equals(HOST)) {
            String path = System.getProperty("tandem.cuda.host.library", "");
            assumeTrue(!path.isEmpty() && Files.isRegularFile(Path.of(path)),
                    "the host build of the CUDA kernels was not made (no g++; see native/cuda/host/build-host.sh): " + path);
            return new CudaBackend(CudaLibrary.open(path), new byte[] {0});
        }
        if (!which.equals(GPU)) {
            throw new IllegalArgumentException("a CUDA test target is \"host\" or \"gpu\", not \"" + which + "\"");
        }
        assumeTrue(CudaDriver.isAvailable(), () -> "no GPU here: " + CudaDriver.unavailableReason());
        Fatbin fatbin = Fatbin.embedded().orElse(null);
        assumeTrue(fatbin != null, "this build embedded no CUDA kernels (no nvcc where it was built)");
        return new CudaBackend(CudaDriver.library(), fatbin.bytes());
    }
}
