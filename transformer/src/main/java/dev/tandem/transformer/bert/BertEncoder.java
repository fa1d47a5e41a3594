package dev.tandem.transformer.bert;

import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.ScratchTensors;
import dev.tandem.transformer.config.BertConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A BERT-family encoder on a {@link Backend}: word + absolute position + token-type embeddings and a LayerNorm, then
 * post-LayerNorm blocks (bidirectional multi-head attention with biases, GELU feed-forward), and a pooled sentence
 * vector (mean over the tokens or the [CLS] row, optionally L2-normalised: sentence-transformers' recipe). Several
 * sequences go through one pass; each attends only to itself (its own KV sequence, every row seeing the whole
 * sequence), so a sequence's vector does not depend on what it is batched with. The ops are the Backend's (matmul,
 * bias, layerNorm, gelu, attention over a paged KV cache), so every backend runs it.
 *
 * <p>Thread-safe: calls are serialised (one pass at a time).
 */
public final class BertEncoder implements AutoCloseable {

    /** How a sequence's token states become one vector. */
    public enum Pooling {
        /** The mean of every token's final state (sentence-transformers' default; [CLS] and [SEP] included). */
        MEAN,
        /** The first token's ([CLS]) final state. */
        CLS
    }

    /** HF BERT weight names, without a model prefix. */
    static final String WORD = "embeddings.word_embeddings.weight", POSITION = "embeddings.position_embeddings.weight",
            TYPE = "embeddings.token_type_embeddings.weight", EMB_LN = "embeddings.LayerNorm";

    private static final int BLOCK = 16;

    private final BertConfig config;
    private final Tokenizer tokenizer;
    private final Backend backend;
    private final boolean ownsBackend;
    private final String source;
    private final Map<String, Tensor> weights = new HashMap<>();
    private final List<Tensor> copies = new ArrayList<>(); // weights the backend copied into its own memory
    private final AutoCloseable resources;
    private final int maxPassTokens;
    private KvCache cache;
    private final ScratchTensors scratch;               // the pass's working tensors, kept between passes
    private boolean closed;
    private final Supplier<EncoderIdentity> identity;

    /**
     * @param config        the encoder's shape
     * @param tokenizer     its WordPiece tokenizer (special tokens added by {@link Tokenizer#withSpecialTokens})
     * @param hostWeights   each HF BERT weight by name (without a model prefix) as a host f32/bf16/f16 tensor of HF's shape
     * @param backend       where it runs
     * @param ownsBackend   whether {@link #close} closes the backend too
     * @param source        what it was loaded from, for messages
     * @param maxPassTokens the most tokens one pass holds (longer batches are split into several passes)
     * @param resources     what holds the host weights (a mapped file), closed by {@link #close}; may be null
     * @throws TandemException if a weight is missing or has another shape
     */
    public BertEncoder(BertConfig config, Tokenizer tokenizer, Function<String, Tensor> hostWeights, Backend backend,
                       boolean ownsBackend, String source, int maxPassTokens, AutoCloseable resources) {
        this(config, tokenizer, hostWeights, backend, ownsBackend, source, maxPassTokens, resources, null);
    }

    /**
     * As above, with what {@link #identity} answers ({@link Encoders} computes it from the files it loaded; null: none,
     * as for weights made in memory).
     */
    public BertEncoder(BertConfig config, Tokenizer tokenizer, Function<String, Tensor> hostWeights, Backend backend,
                       boolean ownsBackend, String source, int maxPassTokens, AutoCloseable resources,
                       Supplier<EncoderIdentity> identity) {
        this.identity = identity;
        this.config = Objects.requireNonNull(config, "config");
        this.tokenizer = Objects.requireNonNull(tokenizer, "tokenizer");
        this.backend = Objects.requireNonNull(backend, "backend");
        this.ownsBackend = ownsBackend;
        this.source = source;
        if (maxPassTokens < config.maxPositions()) {
            throw new IllegalArgumentException("a pass must hold at least one longest input (" + config.maxPositions() + " tokens)");
        }
        this.maxPassTokens = maxPassTokens;
        this.resources = resources;
        this.scratch = new ScratchTensors(backend, 7);
        try {
            int d = config.hiddenSize(), ff = config.intermediateSize();
            load(hostWeights, WORD, config.vocabSize(), d);
            load(hostWeights, POSITION, config.maxPositions(), d);
            load(hostWeights, TYPE, config.typeVocabSize(), d);
            load(hostWeights, EMB_LN + ".weight", d);
            load(hostWeights, EMB_LN + ".bias", d);
            for (int l = 0; l < config.numLayers(); l++) {
                String p = "encoder.layer." + l + ".";
                for (String m : new String[] {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
                    load(hostWeights, p + m + ".weight", d, d);
                    load(hostWeights, p + m + ".bias", d);
                }
                load(hostWeights, p + "attention.output.LayerNorm.weight", d);
                load(hostWeights, p + "attention.output.LayerNorm.bias", d);
                load(hostWeights, p + "intermediate.dense.weight", ff, d);
                load(hostWeights, p + "intermediate.dense.bias", ff);
                load(hostWeights, p + "output.dense.weight", d, ff);
                load(hostWeights, p + "output.dense.bias", d);
                load(hostWeights, p + "output.LayerNorm.weight", d);
                load(hostWeights, p + "output.LayerNorm.bias", d);
            }
        } catch (RuntimeException | Error e) {
            close();
            throw e;
        }
    }

    private void load(Function<String, Tensor> hostWeights, String name, long... shape) {
        Tensor host = hostWeights.apply(name);
        if (host == null) {
            throw new TandemException(source + " has no weight " + name + ".");
        }
        if (!java.util.Arrays.equals(host.shape(), shape)) {
            throw new TandemException(source + ": the weight " + name + " has the shape " + java.util.Arrays.toString(host.shape())
                    + ", not " + java.util.Arrays.toString(shape) + " as the config says.");
        }
        // Matrices and tables stay in their dtype (matmul and the lookup widen them); vectors (biases, LayerNorm) go to f32.
        Tensor in = host.rank() == 1 && host.dtype() != DType.F32 ? Tensor.ofFloats(host.toFloatArray(), host.numel()) : host;
        Tensor loaded = backend.loadWeight(in);
        weights.put(name, loaded);
        if (loaded != in) {
            copies.add(loaded);
        }
    }

    public BertConfig config() {
        return config;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public Backend backend() {
        return backend;
    }

    /**
     * Which encoder this is: its name and the SHA-256 of the files it was loaded from, computed on the first call.
     *
     * @throws IllegalStateException if the encoder was built from weights in memory, which have no identity
     */
    public EncoderIdentity identity() {
        if (identity == null) {
            throw new IllegalStateException(source + " was built from weights in memory and has no identity");
        }
        return identity.get();
    }

    /** The width of the vectors {@link #embed} returns. */
    public int dimension() {
        return config.hiddenSize();
    }

    /**
     * {@code text} as the encoder reads it: encoded with the tokenizer's special tokens ([CLS] … [SEP]); with
     * {@code truncate}, cut to the encoder's positions keeping the final special token.
     *
     * @throws TandemException if it is longer than the encoder's positions and {@code truncate} is false
     */
    public int[] tokenize(String text, boolean truncate) {
        int[] ids = tokenizer.withSpecialTokens(tokenizer.encode(text));
        int max = config.maxPositions();
        if (ids.length <= max) {
            return ids;
        }
        if (!truncate) {
            throw new TandemException("the input has " + ids.length + " tokens, more than the encoder's " + max + " positions "
                    + "(max_position_embeddings); shorten it or truncate it.");
        }
        int[] cut = java.util.Arrays.copyOf(ids, max);
        cut[max - 1] = ids[ids.length - 1];
        return cut;
    }

    /** One vector per text: {@link #tokenize} then {@link #embedIds}. */
    public float[][] embed(List<String> texts, Pooling pooling, boolean normalize, boolean truncate) {
        List<int[]> ids = new ArrayList<>(texts.size());
        for (String t : texts) {
            ids.add(tokenize(t, truncate));
        }
        return embedIds(ids, pooling, normalize);
    }

    /**
     * One vector per sequence of token ids (each 1 to {@code maxPositions} long, special tokens included), pooled by
     * {@code pooling} and, with {@code normalize}, scaled to unit L2 norm. Sequences go through as few passes as hold them.
     */
    public synchronized float[][] embedIds(List<int[]> sequences, Pooling pooling, boolean normalize) {
        if (closed) {
            throw new IllegalStateException("the encoder is closed");
        }
        for (int i = 0; i < sequences.size(); i++) {
            int[] ids = sequences.get(i);
            if (ids.length == 0 || ids.length > config.maxPositions()) {
                throw new TandemException("sequence " + i + " has " + ids.length + " tokens; the encoder takes 1 to "
                        + config.maxPositions() + ".");
            }
            for (int id : ids) {
                if (id < 0 || id >= config.vocabSize()) {
                    throw new TandemException("token id " + id + " of sequence " + i + " is outside the vocabulary of "
                            + config.vocabSize() + ".");
                }
            }
        }
        float[][] out = new float[sequences.size()][];
        int from = 0;
        while (from < sequences.size()) {
            int to = from, tokens = 0;
            while (to < sequences.size() && tokens + sequences.get(to).length <= maxPassTokens) {
                tokens += sequences.get(to).length;
                to++;
            }
            float[][] states = pass(sequences.subList(from, to), tokens);
            int row = 0;
            for (int s = from; s < to; s++) {
                int n = sequences.get(s).length;
                out[s] = pool(states, row, n, pooling, normalize);
                row += n;
            }
            from = to;
        }
        return out;
    }

    private float[] pool(float[][] states, int row, int n, Pooling pooling, boolean normalize) {
        int d = config.hiddenSize();
        double[] sum = new double[d];
        if (pooling == Pooling.CLS) {
            for (int j = 0; j < d; j++) {
                sum[j] = states[row][j];
            }
        } else {
            for (int i = row; i < row + n; i++) {
                for (int j = 0; j < d; j++) {
                    sum[j] += states[i][j];
                }
            }
            for (int j = 0; j < d; j++) {
                sum[j] /= n;
            }
        }
        double norm = 1;
        if (normalize) {
            double sq = 0;
            for (double v : sum) {
                sq += v * v;
            }
            norm = Math.max(Math.sqrt(sq), 1e-12); // sentence-transformers' Normalize: x / max(‖x‖, ε)
        }
        float[] v = new float[d];
        for (int j = 0; j < d; j++) {
            v[j] = (float) (sum[j] / norm);
        }
        return v;
    }

    /** The final hidden state of every token of {@code sequences} ({@code tokens} in all), in order, read to the host. */
    private float[][] pass(List<int[]> sequences, int tokens) {
        int d = config.hiddenSize(), ff = config.intermediateSize(), heads = config.numHeads(), hd = config.headDim();
        float eps = (float) config.layerNormEps();
        if (cache == null) {
            cache = new KvCache(backend.allocateKv(config.numLayers(), heads, hd, BLOCK,
                    maxPassTokens / BLOCK + maxPassTokens / config.maxPositions() + 2, DType.F32));
        }
        int[] ids = new int[tokens], positions = new int[tokens], types = new int[tokens], slots = new int[tokens];
        int[][] tables = new int[tokens][];
        int[] prefix = new int[tokens];
        List<KvSequence> seqs = new ArrayList<>(sequences.size());
        try {
            int row = 0;
            for (int[] seq : sequences) {
                KvSequence kv = cache.newSequence();
                seqs.add(kv);
                int[] s = kv.append(seq.length);
                int[] table = kv.blockTable();
                for (int i = 0; i < seq.length; i++) {
                    ids[row + i] = seq[i];
                    positions[row + i] = i;
                    slots[row + i] = s[i];
                    tables[row + i] = table;
                    prefix[row + i] = seq.length; // bidirectional: every row sees its whole sequence
                }
                row += seq.length;
            }
            AttentionRows rows = new AttentionRows(tables, prefix, null, null);
            Tensor x = scratch.get(0, tokens, d), t = scratch.get(1, tokens, d), q = scratch.get(2, tokens, d),
                    k = scratch.get(3, tokens, d), v = scratch.get(4, tokens, d), a = scratch.get(5, tokens, d),
                    f = scratch.get(6, tokens, ff);
            backend.embed(weights.get(WORD), ids, x);
            backend.embed(weights.get(POSITION), positions, t);
            backend.add(x, t, x);
            backend.embed(weights.get(TYPE), types, t);
            backend.add(x, t, x);
            backend.layerNorm(x, weights.get(EMB_LN + ".weight"), weights.get(EMB_LN + ".bias"), eps, x);
            float scale = (float) (1 / Math.sqrt(hd));
            for (int l = 0; l < config.numLayers(); l++) {
                String p = "encoder.layer." + l + ".";
                linear(x, p + "attention.self.query", q);
                linear(x, p + "attention.self.key", k);
                linear(x, p + "attention.self.value", v);
                backend.writeKv(cache.storage(), l, k, v, slots);
                backend.attention(q, cache.storage(), l, rows, heads, scale, a);
                linear(a, p + "attention.output.dense", t);
                backend.add(t, x, t);
                backend.layerNorm(t, weights.get(p + "attention.output.LayerNorm.weight"),
                        weights.get(p + "attention.output.LayerNorm.bias"), eps, x);
                linear(x, p + "intermediate.dense", f);
                backend.gelu(f, f);
                linear(f, p + "output.dense", t);
                backend.add(t, x, t);
                backend.layerNorm(t, weights.get(p + "output.LayerNorm.weight"), weights.get(p + "output.LayerNorm.bias"), eps, x);
            }
            return backend.readRows(x, 0, tokens);
        } finally {
            for (KvSequence kv : seqs) {
                kv.close();
            }
        }
    }

    /** {@code out = in · W_nameᵀ + b_name}. */
    private void linear(Tensor in, String name, Tensor out) {
        backend.matmul(in, weights.get(name + ".weight"), out);
        backend.addBias(out, weights.get(name + ".bias"));
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (cache != null) {
            cache.close();
        }
        if (scratch != null) {
            scratch.close();
        }
        for (Tensor w : copies) {
            backend.free(w);
        }
        copies.clear();
        weights.clear();
        if (ownsBackend) {
            backend.close();
        }
        if (resources != null) {
            try {
                resources.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing the encoder's weights failed", e);
            }
        }
    }
}
