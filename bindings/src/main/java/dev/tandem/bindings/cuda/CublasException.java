package dev.tandem.bindings.cuda;

/**
 * A cuBLAS call that returned an error: the message names the call and the status
 * ({@code "cublasGemmEx failed: CUBLAS_STATUS_NOT_SUPPORTED (15)."}), {@link #status()} is the
 * {@code cublasStatus_t}.
 */
public final class CublasException extends IllegalStateException {
    private final int status;

    CublasException(String message, int status) {
        super(message);
        this.status = status;
    }

    /** The {@code cublasStatus_t} the call returned. */
    public int status() {
        return status;
    }

    /** True for {@code CUBLAS_STATUS_NOT_SUPPORTED}: the call's combination of types, modes or sizes is not implemented. */
    public boolean notSupported() {
        return status == CublasLibrary.STATUS_NOT_SUPPORTED;
    }
}
