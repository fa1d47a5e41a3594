package dev.tandem.runtime.cuda;

import dev.tandem.bindings.cuda.CudaDriver;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.TandemException;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The {@code cuda} provider: listed always, usable only with a driver; {@code auto} takes it when usable. */
class CudaBackendProviderTest {

    @Test
    void cudaIsListedAndAutoTakesItOnlyWhenUsable() {
        assertTrue(Backends.names().contains("cuda"), Backends.names().toString());
        String why = Backends.provider("cuda").unavailableReason();
        Backends.Choice choice = Backends.choose(Backends.AUTO);
        if (why == null) {
            assertEquals("cuda", choice.name(), choice.why());
        } else {
            assertEquals("cpu", choice.name());
            assertTrue(choice.why().contains("cuda: "), choice.why());
            TandemException e = assertThrows(TandemException.class, () -> Backends.open("cuda", 0));
            assertEquals("device \"cuda\" is not available: " + why, e.getMessage());
            try (Backend b = Backends.open(Backends.AUTO, 1)) {
                assertEquals(Placement.HOST, b.placement());
            }
        }
        assertEquals(new Backends.Choice("cpu", "asked for by name"), Backends.choose("cpu"));
    }

    @Test
    void withoutTheOverrideTheProviderLooksForNvidiasDriver() {
        assumeTrue(CudaBackendProvider.libraryOverride() == null, "tandem.cuda.library is set for this run");
        String why = new CudaBackendProvider().unavailableReason();
        if (!CudaDriver.isAvailable()) {
            assertEquals(CudaDriver.unavailableReason(), why);
        }
    }

    /** The override is how the host build (and any other driver library) is chosen; here it opens a backend. */
    @Test
    void theOverrideOpensTheHostBuild() {
        String path = System.getProperty("tandem.cuda.host.library", "");
        assumeTrue(!path.isEmpty() && Files.isRegularFile(Path.of(path)), "the host build of the CUDA kernels was not made: " + path);
        String before = System.getProperty("tandem.cuda.library");
        System.setProperty("tandem.cuda.library", path);
        try {
            CudaBackendProvider provider = new CudaBackendProvider();
            assertNull(provider.unavailableReason());
            assertEquals("cuda", Backends.choose(Backends.AUTO).name());
            try (Backend b = provider.open(0)) {
                assertEquals(Placement.DEVICE, b.placement());
                assertEquals("cuda(Tandem host build (no GPU))", b.name());
            }
        } finally {
            if (before == null) {
                System.clearProperty("tandem.cuda.library");
            } else {
                System.setProperty("tandem.cuda.library", before);
            }
        }
    }
}
