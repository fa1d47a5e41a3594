package dev.tandem.bindings.cuda;

import java.util.HashMap;
import java.util.Map;

/**
 * The {@code CUresult} codes of the CUDA driver API that Tandem names in messages (values from
 * {@code cuda.h}); any other code is reported by its number. {@link #check} turns a failed call into
 * one sentence: {@code "cuInit failed: CUDA_ERROR_NO_DEVICE (100)."}.
 */
enum CudaStatus {
    SUCCESS(0),
    INVALID_VALUE(1),
    OUT_OF_MEMORY(2),
    NOT_INITIALIZED(3),
    DEINITIALIZED(4),
    STUB_LIBRARY(34),
    DEVICE_UNAVAILABLE(46),
    NO_DEVICE(100),
    INVALID_DEVICE(101),
    INVALID_IMAGE(200),
    INVALID_CONTEXT(201),
    NO_BINARY_FOR_GPU(209),
    INVALID_PTX(218),
    UNSUPPORTED_PTX_VERSION(222),
    INVALID_SOURCE(300),
    FILE_NOT_FOUND(301),
    INVALID_HANDLE(400),
    NOT_FOUND(500),
    NOT_READY(600),
    ILLEGAL_ADDRESS(700),
    LAUNCH_OUT_OF_RESOURCES(701),
    LAUNCH_TIMEOUT(702),
    LAUNCH_FAILED(719),
    NOT_PERMITTED(800),
    NOT_SUPPORTED(801),
    SYSTEM_NOT_READY(802),
    SYSTEM_DRIVER_MISMATCH(803),
    COMPAT_NOT_SUPPORTED_ON_DEVICE(804),
    UNKNOWN(999);

    private static final Map<Integer, CudaStatus> BY_CODE = new HashMap<>();

    static {
        for (CudaStatus s : values()) {
            BY_CODE.put(s.code, s);
        }
    }

    private final int code;

    CudaStatus(int code) {
        this.code = code;
    }

    int code() {
        return code;
    }

    /** The name {@code cuda.h} gives this code: {@code CUDA_SUCCESS}, {@code CUDA_ERROR_NO_DEVICE}, ... */
    String cudaName() {
        return this == SUCCESS ? "CUDA_SUCCESS" : "CUDA_ERROR_" + name();
    }

    /** The status for {@code code}, or null when the code is not in the table. */
    static CudaStatus of(int code) {
        return BY_CODE.get(code);
    }

    /** {@code "CUDA_ERROR_NO_DEVICE (100)"}, or {@code "CUresult 12345"} for a code not in the table. */
    static String describe(int code) {
        CudaStatus s = of(code);
        return s == null ? "CUresult " + code : s.cudaName() + " (" + code + ")";
    }

    /** Throws {@link CudaException}{@code ("<call> failed: <describe(result)>.")} unless result is CUDA_SUCCESS. */
    static void check(int result, String call) {
        if (result != SUCCESS.code) {
            throw new CudaException(call + " failed: " + describe(result) + ".", result);
        }
    }
}
