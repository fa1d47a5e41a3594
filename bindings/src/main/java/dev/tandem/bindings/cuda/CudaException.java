package dev.tandem.bindings.cuda;

/**
 * A CUDA driver call that returned an error: the message names the call and the CUDA error
 * ({@code "cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (2)."}), {@link #code()} is the {@code CUresult}.
 */
public final class CudaException extends IllegalStateException {
    private final int code;

    CudaException(String message, int code) {
        super(message);
        this.code = code;
    }

    /** The {@code CUresult} the call returned. */
    public int code() {
        return code;
    }

    /** True for {@code CUDA_ERROR_OUT_OF_MEMORY}. */
    public boolean outOfMemory() {
        return code == CudaStatus.OUT_OF_MEMORY.code();
    }
}
