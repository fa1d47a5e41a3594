package dev.tandem.runtime.kv;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.HostMemory;
import dev.tandem.runtime.TandemException;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 13: a KV budget was allocated and zero-filled up front ({@code --kv-memory 2G} spent 13 s and
 * 2.4 GB on a run that needed a few MiB), and a budget above the machine's memory ran until killed.
 */
class LazyKvMemoryTest {
    private static final boolean LINUX = System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux");

    /** Resident memory of this process (VmRSS), in bytes. */
    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    @Test
    void onLinuxTheKvMemoryIsMappedLazily() {
        // The build runs tests with --enable-native-access=ALL-UNNAMED, as the launcher runs Tandem.
        assertEquals(LINUX && java.util.Set.of("amd64", "x86_64", "aarch64").contains(System.getProperty("os.arch")), HostMemory.lazy());
    }

    @Test
    void aLargeBudgetTakesMemoryOnlyAsBlocksAreWritten() throws IOException {
        if (!HostMemory.lazy()) {
            // Zero-filled up front here; the property below is about the lazy mapping.
            assertTrue(!LINUX, "lazy mapping expected on Linux");
            return;
        }
        long before = residentBytes();
        // 4 layers × 8 KV heads × 128 dims × f32 = 16 KiB per token per K or V; 16,384 blocks of 16 tokens: 4 GiB in all.
        try (HostKvStorage storage = new HostKvStorage(4, 8, 128, 16, 16_384, DType.F32)) {
            long mapped = residentBytes();
            assertTrue(mapped - before < (256L << 20), "creating a 4 GiB cache took " + (mapped - before) + " resident bytes");
            KvCache cache = new KvCache(storage);
            try (KvSequence seq = cache.newSequence()) {
                int[] slots = seq.append(32); // two blocks
                for (int slot : slots) {
                    for (int layer = 0; layer < 4; layer++) {
                        assertEquals(0f, storage.keys(layer).get(java.lang.foreign.ValueLayout.JAVA_FLOAT,
                                (long) slot * 8 * 128 * 4), "fresh KV memory reads as zero");
                    }
                }
            }
            long used = residentBytes();
            assertTrue(used - before < (256L << 20), "two blocks of a 4 GiB cache took " + (used - before) + " resident bytes");
        }
    }

    @Test
    void aBudgetAboveTheMachinesMemoryIsRefusedNamingBothNumbers() {
        long total = HostMemory.totalBytes();
        assertTrue(total > 0, "the JVM knows the machine's memory");
        // Layers of 1 GiB each (K and V): twice the machine's memory in all.
        int layers = (int) Math.max(2, total / (1L << 30) + 1);
        TandemException e = assertThrows(TandemException.class, () -> new HostKvStorage(layers, 8, 128, 16, 65_536, DType.F32));
        assertTrue(e.getMessage().startsWith("the KV cache of ") && e.getMessage().contains(HostMemory.gib(total))
                && e.getMessage().contains("--kv-memory") && e.getMessage().endsWith("."), e.getMessage());
    }
}
