package dev.tandem.runtime;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Issue 13: no Java class names or library text in a sentence about a failed read or write. */
class IoErrorsTest {
    @TempDir
    Path dir;

    @Test
    void reasonsAreWordsWithoutClassNamesOrPaths() throws IOException {
        assertEquals("permission denied", IoErrors.reason(new AccessDeniedException("/x")));
        assertEquals("no such file or directory", IoErrors.reason(new NoSuchFileException("/x")));
        assertEquals("no space left on device", IoErrors.reason(new FileSystemException("/x", null, "No space left on device")));
        assertEquals("an I/O error", IoErrors.reason(new IOException()));
        IOException real = assertThrows(IOException.class, () -> Files.readAllBytes(dir.resolve("missing")));
        assertEquals("no such file or directory", IoErrors.reason(real));
    }
}
