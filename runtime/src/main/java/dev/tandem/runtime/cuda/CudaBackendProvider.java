package dev.tandem.runtime.cuda;

import dev.tandem.bindings.cuda.CudaDriver;
import dev.tandem.bindings.cuda.CudaLibrary;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.BackendProvider;
import dev.tandem.runtime.TandemException;

/**
 * {@code cuda}: {@link CudaBackend} on device 0 of NVIDIA's driver ({@code libcuda.so.1}) with the
 * kernels embedded in this build. The system property {@code tandem.cuda.library} (or the environment
 * variable {@code TANDEM_CUDA_LIBRARY}) names another driver library instead: the tests point it at the
 * host build of the kernels ({@code native/cuda/host}), which needs no fatbin. Loading this class never
 * fails, GPU or not.
 */
public final class CudaBackendProvider implements BackendProvider {

    @Override
    public String name() {
        return "cuda";
    }

    /** The library named by {@code tandem.cuda.library} / {@code TANDEM_CUDA_LIBRARY}, or null for NVIDIA's driver. */
    static String libraryOverride() {
        String property = System.getProperty("tandem.cuda.library", "");
        if (!property.isEmpty()) {
            return property;
        }
        String env = System.getenv("TANDEM_CUDA_LIBRARY");
        return env == null || env.isEmpty() ? null : env;
    }

    /** Libraries opened through the override, by path: each is opened (and cuInit) once. */
    private static final java.util.concurrent.ConcurrentHashMap<String, CudaLibrary> OPENED = new java.util.concurrent.ConcurrentHashMap<>();

    private static CudaLibrary library() {
        String override = libraryOverride();
        return override == null ? CudaDriver.library() : OPENED.computeIfAbsent(override, CudaLibrary::open);
    }

    @Override
    public String unavailableReason() {
        CudaLibrary cuda = library();
        if (!cuda.available()) {
            return cuda.reason();
        }
        try {
            if (cuda.deviceCount() < 1) {
                return cuda.library() + " sees no CUDA device.";
            }
        } catch (RuntimeException e) {
            return cuda.library() + " could not count its devices: " + e.getMessage();
        }
        if (libraryOverride() == null && Fatbin.embedded().isEmpty()) {
            return "this build has no CUDA kernels (nvcc was not found when it was built).";
        }
        return null;
    }

    /** A backend on device 0; {@code threads} is not used (the device has its own parallelism). */
    @Override
    public Backend open(int threads) {
        String why = unavailableReason();
        if (why != null) {
            throw new TandemException("device \"cuda\" is not available: " + why);
        }
        byte[] image = Fatbin.embedded().map(Fatbin::bytes).orElse(new byte[] {0});
        return new CudaBackend(library(), image);
    }
}
