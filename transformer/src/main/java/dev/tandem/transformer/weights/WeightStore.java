package dev.tandem.transformer.weights;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Utf8Text;
import dev.tandem.runtime.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * All weights of a model: in a directory, {@code model.safetensors} or the shards a
 * {@code model.safetensors.index.json} lists in its {@code weight_map} (tensor name → shard file), every shard
 * memory-mapped ({@link SafetensorsFile}); or a GGUF file ({@link GgufCheckpoint}), its tensors under the Hugging
 * Face names. Tensors are views, valid until {@link #close()}.
 *
 * <p>Reads are thread-safe (the tables are immutable after {@link #open}).
 */
public final class WeightStore implements AutoCloseable {

    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";
    private static final String CONFIG_FILE = "config.json";

    private static final ObjectMapper MAPPER = JsonMapper.builder().build();

    private final Path directory;
    private final List<? extends WeightFile> files;
    private final Map<String, WeightFile> byName;
    /** What implies the shapes the model asks for, for messages: {@code config.json} or the GGUF metadata. */
    private final String shapeSource;
    private final DType dominant;
    private final AtomicBoolean closed = new AtomicBoolean();

    private WeightStore(Path directory, List<? extends WeightFile> files, Map<String, WeightFile> byName, String shapeSource) {
        this.directory = directory;
        this.files = files;
        this.byName = byName;
        this.shapeSource = shapeSource;
        this.dominant = computeDominant(byName);
    }

    /** The tensors of a GGUF checkpoint, under the Hugging Face names; closing the store closes the checkpoint. */
    public static WeightStore of(GgufCheckpoint checkpoint) {
        Map<String, WeightFile> byName = new LinkedHashMap<>();
        for (String n : checkpoint.names()) {
            byName.put(n, checkpoint);
        }
        return new WeightStore(checkpoint.path(), List.of(checkpoint), Collections.unmodifiableMap(byName),
                "its metadata");
    }

    /**
     * Opens the checkpoint in {@code modelDir}, preferring {@code model.safetensors} over the sharded
     * index (as transformers does).
     *
     * @throws TandemException when the directory, the weights, a listed shard or a listed tensor is
     *                         missing, or any file is malformed
     */
    public static WeightStore open(Path modelDir) {
        return open(modelDir, false);
    }

    /**
     * As {@link #open(Path)}; with {@code resident}, every file's tensor data is copied into memory of
     * its own at open ({@link SafetensorsFile#open(Path, boolean)}) instead of read through the mapping.
     */
    public static WeightStore open(Path modelDir, boolean resident) {
        if (!Files.exists(modelDir)) {
            throw new TandemException("model directory not found: " + modelDir + ".");
        }
        if (!Files.isDirectory(modelDir)) {
            throw new TandemException("model directory " + modelDir + " is a file, not a directory.");
        }
        Path single = modelDir.resolve(SINGLE_FILE);
        Path index = modelDir.resolve(INDEX_FILE);
        if (Files.isRegularFile(single)) {
            SafetensorsFile f = SafetensorsFile.open(single, resident);
            Map<String, WeightFile> byName = new LinkedHashMap<>();
            for (String n : f.names()) {
                byName.put(n, f);
            }
            return new WeightStore(modelDir, List.of(f), Collections.unmodifiableMap(byName), CONFIG_FILE);
        }
        if (Files.isRegularFile(index)) {
            return openSharded(modelDir, index, resident);
        }
        throw new TandemException("model directory " + modelDir + " has neither " + SINGLE_FILE + " nor "
                + INDEX_FILE + ".");
    }

    private static WeightStore openSharded(Path dir, Path index, boolean resident) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(index);
        } catch (IOException e) {
            throw new TandemException(INDEX_FILE + " in " + dir + " could not be read (" + IoErrors.reason(e) + ").", e);
        }
        Utf8Text.requireValid(bytes, INDEX_FILE);
        JsonNode root;
        try {
            root = MAPPER.readTree(bytes);
        } catch (JsonProcessingException e) {
            JsonLocation loc = e.getLocation();
            String where = loc != null && loc.getLineNr() > 0
                    ? " (line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ")" : "";
            throw new TandemException(INDEX_FILE + " is not valid JSON" + where + ".", e);
        } catch (IOException e) {
            throw new TandemException(INDEX_FILE + " is not valid JSON.", e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new TandemException(INDEX_FILE + ": weight_map is missing or not a JSON object.");
        }
        // shard name → tensors it should hold, in index order
        Map<String, List<String>> shards = new LinkedHashMap<>();
        Path normDir = dir.toAbsolutePath().normalize();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            JsonNode v = e.getValue();
            if (!v.isTextual()) {
                throw new TandemException(INDEX_FILE + ": weight_map entry \"" + e.getKey() + "\" is not a file name.");
            }
            String shard = v.textValue();
            Path p;
            try {
                p = normDir.resolve(shard).normalize();
            } catch (InvalidPathException bad) {
                p = normDir; // a name no file can have (a NUL character): refused below
            }
            if (shard.isEmpty() || !p.startsWith(normDir) || p.equals(normDir)) {
                throw new TandemException(INDEX_FILE + ": weight_map entry \"" + e.getKey() + "\" names \"" + shard
                        + "\", which is not a file inside the model directory.");
            }
            shards.computeIfAbsent(shard, k -> new ArrayList<>()).add(e.getKey());
        }

        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            Map<String, WeightFile> byName = new LinkedHashMap<>();
            for (Map.Entry<String, List<String>> s : shards.entrySet()) {
                Path p = dir.resolve(s.getKey());
                if (!Files.isRegularFile(p)) {
                    throw new TandemException(INDEX_FILE + " lists shard \"" + s.getKey() + "\" (for tensor \""
                            + s.getValue().getFirst() + "\"), but " + dir + " has no such file.");
                }
                SafetensorsFile f = SafetensorsFile.open(p, resident);
                opened.add(f);
                for (String t : s.getValue()) {
                    if (!f.contains(t)) {
                        throw new TandemException(INDEX_FILE + " places tensor \"" + t + "\" in shard \"" + s.getKey()
                                + "\", but that shard has no such tensor.");
                    }
                    byName.put(t, f);
                }
            }
            // Tensors a shard holds but the index forgot: transformers loads them too.
            for (SafetensorsFile f : opened) {
                for (String t : f.names()) {
                    byName.putIfAbsent(t, f);
                }
            }
            return new WeightStore(dir, List.copyOf(opened), Collections.unmodifiableMap(byName), CONFIG_FILE);
        } catch (RuntimeException e) {
            for (SafetensorsFile f : opened) {
                f.close();
            }
            throw e;
        }
    }

    private static DType computeDominant(Map<String, WeightFile> byName) {
        Map<DType, Long> bytes = new EnumMap<>(DType.class);
        for (Map.Entry<String, WeightFile> e : byName.entrySet()) {
            DType d = e.getValue().storedType(e.getKey());
            if (d != null) {
                bytes.merge(d, e.getValue().storedBytes(e.getKey()), Long::sum);
            }
        }
        DType best = DType.F32;
        long most = -1;
        for (DType d : DType.values()) {
            long b = bytes.getOrDefault(d, -1L);
            if (b > most) {
                most = b;
                best = d;
            }
        }
        return best;
    }

    /** The model directory, or the GGUF file. */
    public Path directory() {
        return directory;
    }

    /** Every tensor name in the checkpoint. */
    public Set<String> names() {
        return byName.keySet();
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    /** The file holding {@code name} (empty when absent). */
    public Optional<Path> fileOf(String name) {
        WeightFile f = byName.get(name);
        return f == null ? Optional.empty() : Optional.of(f.path());
    }

    /**
     * Tensor {@code name}, checked against {@code expectedShape} when one is given (no dimensions: no
     * check).
     *
     * @throws TandemException       when the checkpoint has no such tensor, its shape differs, or its
     *                               dtype is not F32, BF16 or F16
     * @throws IllegalStateException after {@link #close()}
     */
    public Tensor get(String name, long... expectedShape) {
        return get(name, "", expectedShape);
    }

    /**
     * As {@link #get(String, long...)}, with {@code shapeNote} added to the sentence when the shape differs
     * (e.g. which config keys were left out and defaulted).
     */
    public Tensor get(String name, String shapeNote, long... expectedShape) {
        return find(name, shapeNote, expectedShape).orElseThrow(() -> new TandemException("tensor \"" + name
                + "\" is missing from the weights in " + directory + " (" + describeFiles() + ")."));
    }

    /**
     * Tensor {@code name} if the checkpoint has it (for optional weights such as biases), checked
     * against {@code expectedShape} like {@link #get}.
     */
    public Optional<Tensor> find(String name, long... expectedShape) {
        return find(name, "", expectedShape);
    }

    private Optional<Tensor> find(String name, String shapeNote, long... expectedShape) {
        if (closed.get()) {
            throw new IllegalStateException("weight store for " + directory + " is closed");
        }
        WeightFile f = byName.get(name);
        if (f == null) {
            return Optional.empty();
        }
        Tensor t = f.tensor(name);
        if (expectedShape != null && expectedShape.length > 0 && !Arrays.equals(t.shape(), expectedShape)) {
            throw new TandemException(f.path().getFileName() + ": tensor \"" + name + "\" has shape "
                    + Arrays.toString(t.shape()) + " but " + shapeSource + " implies " + Arrays.toString(expectedShape) + shapeNote + ".");
        }
        return Optional.of(t);
    }

    /** The dtype holding the most weight bytes (F32 for an empty checkpoint). */
    public DType dominantDType() {
        return dominant;
    }

    private String describeFiles() {
        if (files.size() == 1) {
            return files.getFirst().path().getFileName().toString();
        }
        return files.size() + " shards listed in " + INDEX_FILE;
    }

    /** Unmaps every shard; idempotent. */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            for (WeightFile f : files) {
                f.close();
            }
        }
    }

    @Override
    public String toString() {
        return "WeightStore[" + directory + ", " + byName.size() + " tensors in " + files.size() + " file(s)]";
    }
}
