package dev.tandem.transformer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Finds the repository's bundled models ({@code models/bard-*}) from a test's working directory, and reads
 * their {@code golden.json} (float32 PyTorch reference outputs).
 */
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

    /** One case of a {@code golden.json}: the prompt, its ids (no BOS), the reference greedy path. */
    public record GoldenCase(String prompt, int[] promptIds, int[] greedyIds) {
    }

    /** The cases of {@code dir/golden.json}. */
    public static List<GoldenCase> goldenCases(Path dir) {
        try {
            JsonNode cases = new ObjectMapper().readTree(dir.resolve("golden.json").toFile()).get("cases");
            List<GoldenCase> out = new ArrayList<>();
            for (JsonNode c : cases) {
                out.add(new GoldenCase(c.get("prompt").asText(), ints(c.get("prompt_ids")), ints(c.get("greedy_ids"))));
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A JSON array of ints. */
    public static int[] ints(JsonNode array) {
        int[] a = new int[array.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = array.get(i).asInt();
        }
        return a;
    }

    /** The first index of the largest value (greedy decoding's choice). */
    public static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }
}
