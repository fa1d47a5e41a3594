package dev.tandem.transformer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/** Finds the repository's bundled models ({@code models/bard-*}) from a test's working directory. */
public final class TestModels {
    private TestModels() {}

    /**
     * The repository's {@code models} folder: the first one found walking up from the working directory
     * (tests run in the module directory) that holds {@code bard-l/config.json}.
     */
    public static Path modelsDir() {
        Path start = Path.of("").toAbsolutePath();
        for (Path dir = start; dir != null; dir = dir.getParent()) {
            Path models = dir.resolve("models");
            if (Files.isRegularFile(models.resolve("bard-l").resolve("config.json"))) {
                return models;
            }
        }
        throw new IllegalStateException("no models/bard-l/config.json in " + start + " or any folder above it");
    }

    /** The folder of one bundled model, e.g. {@code model("bard-s")}. */
    public static Path model(String name) {
        Path dir = modelsDir().resolve(name);
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("no model folder " + dir);
        }
        return dir;
    }

    /** Copies the files of bundled model {@code name} into a new folder {@code target} (for tests that break them). */
    public static Path copyOf(String name, Path target) {
        try {
            Files.createDirectories(target);
            try (Stream<Path> files = Files.list(model(name))) {
                for (Path f : files.toList()) {
                    Files.copy(f, target.resolve(f.getFileName()));
                }
            }
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
