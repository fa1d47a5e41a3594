package dev.tandem.bindings.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

class CudaStatusTest {

    @Test
    void commonCodesMapToTheirCudaHeaderNames() {
        assertEquals("CUDA_SUCCESS", CudaStatus.of(0).cudaName());
        assertEquals("CUDA_ERROR_INVALID_VALUE", CudaStatus.of(1).cudaName());
        assertEquals("CUDA_ERROR_OUT_OF_MEMORY", CudaStatus.of(2).cudaName());
        assertEquals("CUDA_ERROR_NOT_INITIALIZED", CudaStatus.of(3).cudaName());
        assertEquals("CUDA_ERROR_STUB_LIBRARY", CudaStatus.of(34).cudaName());
        assertEquals("CUDA_ERROR_NO_DEVICE", CudaStatus.of(100).cudaName());
        assertEquals("CUDA_ERROR_INVALID_DEVICE", CudaStatus.of(101).cudaName());
        assertEquals("CUDA_ERROR_LAUNCH_FAILED", CudaStatus.of(719).cudaName());
        assertEquals("CUDA_ERROR_UNKNOWN", CudaStatus.of(999).cudaName());
    }

    @Test
    void everyCodeMapsBackToItsStatus() {
        for (CudaStatus s : CudaStatus.values()) {
            assertEquals(s, CudaStatus.of(s.code()));
        }
    }

    @Test
    void codesOutsideTheTableAreDescribedByNumber() {
        assertNull(CudaStatus.of(12345));
        assertEquals("CUresult 12345", CudaStatus.describe(12345));
        assertEquals("CUDA_ERROR_NO_DEVICE (100)", CudaStatus.describe(100));
    }

    @Test
    void checkPassesSuccessAndNamesTheCallAndCodeOtherwise() {
        assertDoesNotThrow(() -> CudaStatus.check(0, "cuInit"));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> CudaStatus.check(100, "cuInit"));
        assertEquals("cuInit failed: CUDA_ERROR_NO_DEVICE (100).", e.getMessage());
        IllegalStateException unknown = assertThrows(IllegalStateException.class, () -> CudaStatus.check(4242, "cuMemAlloc"));
        assertEquals("cuMemAlloc failed: CUresult 4242.", unknown.getMessage());
    }
}
