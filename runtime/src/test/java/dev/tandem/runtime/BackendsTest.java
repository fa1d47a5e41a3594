package dev.tandem.runtime;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BackendsTest {

    @Test
    void theCpuProviderIsFoundByNameAndOpensWithTheThreadsAsked() {
        assertTrue(Backends.names().contains("cpu"), Backends.names().toString());
        assertNull(Backends.provider("cpu").unavailableReason());
        try (Backend b = Backends.open(Backends.DEFAULT, 1)) {
            assertEquals(1, b.parallelism());
            assertEquals(Placement.HOST, b.placement());
        }
        try (Backend b = Backends.open("cpu", 0)) {
            assertEquals(Runtime.getRuntime().availableProcessors(), b.parallelism());
        }
    }

    /** Threads beyond the processors only take turns on them (decoding 100–500× slower): capped. */
    @Test
    void moreThreadsThanProcessorsAreCappedToTheProcessors() {
        int processors = Runtime.getRuntime().availableProcessors();
        try (Backend b = Backends.open("cpu", processors + 1)) {
            assertEquals(processors, b.parallelism());
        }
        try (Backend b = Backends.open("cpu", 10_000)) {
            assertEquals(processors, b.parallelism());
        }
    }

    @Test
    void anUnknownNameIsOneSentenceListingTheKnownOnes() {
        TandemException e = assertThrows(TandemException.class, () -> Backends.open("tpu", 1));
        assertEquals("unknown device \"tpu\"; this build has: " + String.join(", ", Backends.names()) + " (or auto).", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Backends.open("cpu", -1));
    }
}
