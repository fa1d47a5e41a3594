package dev.tandem.runtime.cuda;

import dev.tandem.runtime.TandemException;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The build embeds Tandem's CUDA kernels wherever nvcc is found, with real code for every architecture
 * we support and PTX for newer ones; and the fatbin reader refuses what is not one.
 */
class FatbinTest {
    /** nvcc as native/cuda/build-fatbin.sh finds it: $TANDEM_NVCC (none: no nvcc), the PATH, /usr/local/cuda/bin. */
    static Optional<Path> nvcc() {
        String given = System.getenv("TANDEM_NVCC");
        if (given != null && !given.isEmpty()) {
            return given.equals("none") ? Optional.empty() : Optional.of(Path.of(given));
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, "nvcc"))) {
                return Optional.of(Path.of(dir, "nvcc"));
            }
        }
        Path usual = Path.of("/usr/local/cuda/bin/nvcc");
        return Files.isExecutable(usual) ? Optional.of(usual) : Optional.empty();
    }

    @Test
    void theBuildEmbedsEveryTargetWhereNvccIsFound() {
        Optional<Path> nvcc = nvcc();
        Assumptions.assumeTrue(nvcc.isPresent(),
                "nvcc not found (TANDEM_NVCC, PATH, /usr/local/cuda/bin): this build has no CUDA kernels to check");
        Fatbin fatbin = Fatbin.embedded().orElseThrow(() -> new AssertionError("nvcc is at " + nvcc.get()
                + " but the build embedded no fatbin at " + Fatbin.RESOURCE));
        List<String> targets = fatbin.targets();
        for (String wanted : List.of("sm_80", "sm_90", "sm_100", "compute_90")) {
            assertTrue(targets.contains(wanted), "the fatbin has " + targets + ", not " + wanted);
        }
        for (Fatbin.Entry e : fatbin.entries()) {
            assertTrue(e.size() > 0, e + " is empty");
        }
    }

    @Test
    void entriesAreReadFromTheirHeaders() {
        byte[] bytes = fatbin(entry(2, 80, 100), entry(1, 90, 37));
        Fatbin f = Fatbin.parse(bytes, "test");
        assertEquals(List.of("sm_80", "compute_90"), f.targets());
        assertEquals(16 + 64, f.entries().get(0).offset());
        assertEquals(37, f.entries().get(1).size());
    }

    @Test
    void whatIsNotAFatbinIsRefusedInOneSentence() {
        TandemException e = assertThrows(TandemException.class, () -> Fatbin.parse(new byte[] {1, 2, 3}, "x.bin"));
        assertEquals("x.bin is not a CUDA fatbin (no 0xBA55ED50 magic at the start).", e.getMessage());
        byte[] whole = fatbin(entry(2, 90, 100));
        assertThrows(TandemException.class, () -> Fatbin.parse(Arrays.copyOf(whole, whole.length - 1), "cut"));
        byte[] lying = fatbin(entry(2, 90, 100));
        ByteBuffer.wrap(lying).order(ByteOrder.LITTLE_ENDIAN).putLong(16 + 8, 1L << 40); // an entry past the end
        e = assertThrows(TandemException.class, () -> Fatbin.parse(lying, "lying"));
        assertTrue(e.getMessage().startsWith("lying: the fatbin entry at byte 16 "), e.getMessage());
    }

    /** An entry: a 64-byte header (kind, header size, payload size, architecture) and {@code payload} bytes. */
    private static byte[] entry(int kind, int arch, int payload) {
        ByteBuffer b = ByteBuffer.allocate(64 + payload).order(ByteOrder.LITTLE_ENDIAN);
        b.putShort(0, (short) kind).putInt(4, 64).putLong(8, payload).putInt(28, arch);
        return b.array();
    }

    private static byte[] fatbin(byte[]... entries) {
        int size = Arrays.stream(entries).mapToInt(e -> e.length).sum();
        ByteBuffer b = ByteBuffer.allocate(16 + size).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(Fatbin.MAGIC).putShort((short) 1).putShort((short) 16).putLong(size);
        for (byte[] e : entries) {
            b.put(e);
        }
        return b.array();
    }
}
