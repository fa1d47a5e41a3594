package dev.tandem.bindings.cuda;

/**
 * NVIDIA's CUDA driver ({@code libcuda.so.1}) as this process sees it: a {@link CudaLibrary} opened once,
 * on first use. A missing library, missing symbol or failing {@code cuInit} makes {@link #isAvailable()}
 * false and {@link #unavailableReason()} say why, and never fails loading this class.
 */
public final class CudaDriver {
    static final String LIBRARY = "libcuda.so.1";

    private CudaDriver() {
    }

    // Initialisation-on-demand holder: the JVM opens the library once, on first use, under its class-init lock.
    private static final class Holder {
        static final CudaLibrary LIBRARY = CudaLibrary.open(CudaDriver.LIBRARY);
    }

    /** The driver library, available or not. */
    public static CudaLibrary library() {
        return Holder.LIBRARY;
    }

    /** True when libcuda.so.1 loaded and {@code cuInit(0)} returned CUDA_SUCCESS (tried once, on first call). */
    public static boolean isAvailable() {
        return Holder.LIBRARY.available();
    }

    /** One sentence saying what was looked for and why it failed, or null when the driver is available. */
    public static String unavailableReason() {
        return Holder.LIBRARY.reason();
    }

    /** The driver's CUDA version as {@code 1000 × major + 10 × minor} (12040 is CUDA 12.4). */
    public static int driverVersion() {
        return Holder.LIBRARY.driverVersion();
    }

    /** The number of CUDA devices the driver sees. */
    public static int deviceCount() {
        return Holder.LIBRARY.deviceCount();
    }
}
