package dev.tandem.transformer.bert;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import dev.tandem.transformer.weights.WeightStore;

import java.nio.file.Files;
import java.nio.file.Path;

/** Opens BERT-family encoders: a Hugging Face directory ({@code config.json} + safetensors + {@code tokenizer.json}). */
public final class Encoders {
    /** Tokens one pass of an encoder holds by default: 16 inputs of 512 positions. */
    public static final int DEFAULT_PASS_TOKENS = 8192;

    private Encoders() {
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
