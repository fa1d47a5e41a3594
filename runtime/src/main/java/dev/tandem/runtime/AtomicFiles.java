package dev.tandem.runtime;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Files that are whole or as they were: written to a hidden sibling ({@code .NAME.partial-HEX}), forced to the disk,
 * then renamed over the target in one step. A failure at any point leaves the target untouched and removes the partial
 * file; the caller words the {@link IOException} (which file, what it was).
 */
public final class AtomicFiles {

    /** What writes the file's bytes into the channel of the partial file. */
    @FunctionalInterface
    public interface Body {
        void writeTo(FileChannel channel) throws IOException;
    }

    private AtomicFiles() {
    }

    /**
     * Writes {@code target} through a partial sibling and renames it over {@code target} (replacing a file there).
     *
     * @throws IOException when the partial file cannot be created or written, or the rename fails
     */
    public static void write(Path target, Body body) throws IOException {
        Path abs = target.toAbsolutePath();
        Path partial = abs.resolveSibling("." + abs.getFileName() + ".partial-" + Long.toHexString(System.nanoTime()));
        try {
            try (FileChannel channel = FileChannel.open(partial, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                body.writeTo(channel);
                channel.force(true);
            }
            Files.move(partial, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            try {
                Files.deleteIfExists(partial);
            } catch (IOException ignored) {
                // a stray partial file is all that is left; the target is whole or as it was
            }
        }
    }
}
