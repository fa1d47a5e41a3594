package dev.tandem.runtime;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** A file written through {@link AtomicFiles} is whole or as it was, and no partial file outlives the write. */
class AtomicFilesTest {

    @Test
    void aWriteReplacesTheTargetWhole(@TempDir Path dir) throws IOException {
        Path target = Files.writeString(dir.resolve("out.bin"), "old");
        AtomicFiles.write(target, ch -> ch.write(ByteBuffer.wrap("new".getBytes(StandardCharsets.UTF_8))));
        assertEquals("new", Files.readString(target));
        assertEquals(1, count(dir));
    }

    @Test
    void aFailedWriteLeavesTheTargetAsItWasAndNothingElse(@TempDir Path dir) throws IOException {
        Path target = Files.writeString(dir.resolve("out.bin"), "old");
        IOException e = assertThrows(IOException.class, () -> AtomicFiles.write(target, ch -> {
            ch.write(ByteBuffer.wrap("half".getBytes(StandardCharsets.UTF_8)));
            throw new IOException("disk full");
        }));
        assertEquals("disk full", e.getMessage());
        assertEquals("old", Files.readString(target));
        assertEquals(1, count(dir));
        Path absent = dir.resolve("new.bin");
        assertThrows(IllegalStateException.class, () -> AtomicFiles.write(absent, ch -> {
            throw new IllegalStateException("a bug in the writer");
        }));
        assertEquals(1, count(dir));
    }

    private static long count(Path dir) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.count();
        }
    }
}
