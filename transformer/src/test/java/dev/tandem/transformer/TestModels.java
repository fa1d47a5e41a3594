package dev.tandem.transformer;

import java.nio.file.Files;
import java.nio.file.Path;

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
}
