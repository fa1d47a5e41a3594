package dev.tandem.bindings.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class CudaDriverTest {

    @Test
    void withoutADriverIsUnavailableAndNamesTheLibrary() {
        assumeFalse(CudaDriver.isAvailable(), "a CUDA driver is present on this host; the no-driver branch does not apply");
        String reason = CudaDriver.unavailableReason();
        assertTrue(reason != null && reason.contains("libcuda.so.1"), String.valueOf(reason));
        assertTrue(reason.endsWith("."), reason);
    }

    @Test
    void withoutADriverQueriesThrowTheReason() {
        assumeFalse(CudaDriver.isAvailable(), "a CUDA driver is present on this host; the no-driver branch does not apply");
        IllegalStateException version = assertThrows(IllegalStateException.class, CudaDriver::driverVersion);
        assertEquals(CudaDriver.unavailableReason(), version.getMessage());
        IllegalStateException count = assertThrows(IllegalStateException.class, CudaDriver::deviceCount);
        assertEquals(CudaDriver.unavailableReason(), count.getMessage());
    }

    @Test
    void withADriverReportsAVersionAndAtLeastOneDevice() {
        assumeTrue(CudaDriver.isAvailable(), () -> "no CUDA driver on this host: " + CudaDriver.unavailableReason());
        assertNull(CudaDriver.unavailableReason());
        assertTrue(CudaDriver.driverVersion() > 0, "driver version " + CudaDriver.driverVersion());
        assertTrue(CudaDriver.deviceCount() >= 1, "device count " + CudaDriver.deviceCount());
    }

    @Test
    void aMissingLibraryIsReportedNotThrown() {
        CudaLibrary b = CudaLibrary.open("libtandem-no-such-library.so.1");
        assertFalse(b.available());
        assertEquals("libtandem-no-such-library.so.1 was not found on the library path (no NVIDIA driver).", b.reason());
    }

    @Test
    void availabilityIsDecidedOnceAndStaysTheSame() {
        boolean first = CudaDriver.isAvailable();
        String reason = CudaDriver.unavailableReason();
        for (int i = 0; i < 3; i++) {
            assertEquals(first, CudaDriver.isAvailable());
            assertEquals(reason, CudaDriver.unavailableReason());
        }
    }
}
