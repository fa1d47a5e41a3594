package dev.tandem.transformer.llama;

import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.RopeLayout;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.weights.WeightStore;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.stream.Stream;

/**
 * The Llama family (Llama 2/3, Mistral, Qwen2, Qwen3) as Hugging Face defines it:
 * <pre>
 *   x = embed(tokens)
 *   per layer:  h = x + o(attn(rope(norm_q(q(rms(x)))), rope(norm_k(k(rms(x)))), v(rms(x))))
 *               x = h + down(silu(gate(rms(h))) ⊙ up(rms(h)))
 *   logits = lm_head(rms(x))
 * </pre>
 * with grouped-query attention, optional q/k/v (and o) biases, Qwen3's per-head q/k RMSNorm, and rotary
 * embeddings in the "rotate half" layout. Weights stay memory-mapped; activations live in
 * buffers reused from call to call (so one forward pass runs at a time: {@code forward} is synchronized).
 */
public final class LlamaModel implements LanguageModel {
    private final Path dir;
    private final ModelConfig config;
    private final GenerationConfig generation;
    private final Tokenizer tokenizer;
    private final WeightStore weights;
    private final Backend backend;
    private final boolean ownsBackend;
    private final KvCache cache;
    private final float[] invFreq;
    private final Tensor embed;
    private final Tensor finalNorm;
    private final Tensor lmHead;
    private final Layer[] layers;
    private final Tensor[] scratchBuffers = new Tensor[11];
    private boolean closed;

    private record Layer(Tensor attnNorm, Tensor wq, Tensor wk, Tensor wv, Tensor wo,
                         Tensor bq, Tensor bk, Tensor bv, Tensor bo, Tensor qNorm, Tensor kNorm,
                         Tensor mlpNorm, Tensor wGate, Tensor wUp, Tensor wDown,
                         Tensor bGate, Tensor bUp, Tensor bDown) {
        /** Every tensor this layer has (absent biases and norms left out). */
        List<Tensor> tensors() {
            return Stream.of(attnNorm, wq, wk, wv, wo, bq, bk, bv, bo, qNorm, kNorm, mlpNorm, wGate, wUp, wDown,
                    bGate, bUp, bDown).filter(Objects::nonNull).toList();
        }
    }

    public LlamaModel(Path dir, ModelConfig config, GenerationConfig generation, Tokenizer tokenizer,
                      WeightStore weights, Backend backend, boolean ownsBackend, ModelLoader.Options options) {
        this.ownsBackend = ownsBackend;
        this.dir = dir;
        this.config = config;
        this.generation = generation;
        this.tokenizer = tokenizer;
        this.weights = weights;
        this.backend = backend;
        if (tokenizer.vocabSize() > config.vocabSize()) {
            throw new TandemException("tokenizer.json in " + dir + " has " + tokenizer.vocabSize()
                    + " tokens but config.json vocab_size is " + config.vocabSize() + ".");
        }
        long d = config.hiddenSize();
        long qWidth = (long) config.numHeads() * config.headDim();
        long kvWidth = (long) config.numKvHeads() * config.headDim();
        long ff = config.intermediateSize();
        long vocab = config.vocabSize();
        this.invFreq = config.ropeInverseFrequencies();
        this.embed = weights.get("model.embed_tokens.weight", vocab, d);
        this.finalNorm = weights.get("model.norm.weight", d);
        if (config.tieWordEmbeddings()) {
            this.lmHead = embed;
        } else {
            this.lmHead = weights.get("lm_head.weight", vocab, d);
        }
        this.layers = new Layer[config.numLayers()];
        for (int l = 0; l < layers.length; l++) {
            String p = "model.layers." + l + ".";
            long hd = config.headDim();
            layers[l] = new Layer(
                    weights.get(p + "input_layernorm.weight", d),
                    weights.get(p + "self_attn.q_proj.weight", qWidth, d),
                    weights.get(p + "self_attn.k_proj.weight", kvWidth, d),
                    weights.get(p + "self_attn.v_proj.weight", kvWidth, d),
                    weights.get(p + "self_attn.o_proj.weight", d, qWidth),
                    config.qkvBias() ? weights.get(p + "self_attn.q_proj.bias", qWidth) : null,
                    config.qkvBias() ? weights.get(p + "self_attn.k_proj.bias", kvWidth) : null,
                    config.qkvBias() ? weights.get(p + "self_attn.v_proj.bias", kvWidth) : null,
                    config.outputBias() ? weights.get(p + "self_attn.o_proj.bias", d) : null,
                    config.qkNorm() ? weights.get(p + "self_attn.q_norm.weight", hd) : null,
                    config.qkNorm() ? weights.get(p + "self_attn.k_norm.weight", hd) : null,
                    weights.get(p + "post_attention_layernorm.weight", d),
                    weights.get(p + "mlp.gate_proj.weight", ff, d),
                    weights.get(p + "mlp.up_proj.weight", ff, d),
                    weights.get(p + "mlp.down_proj.weight", d, ff),
                    config.mlpBias() ? weights.get(p + "mlp.gate_proj.bias", ff) : null,
                    config.mlpBias() ? weights.get(p + "mlp.up_proj.bias", ff) : null,
                    config.mlpBias() ? weights.get(p + "mlp.down_proj.bias", d) : null);
        }
        int blockSize = 16;
        long bytesPerToken = 2L * config.numLayers() * kvWidth * Float.BYTES;
        int tokens = options.kvTokens() > 0
                ? options.kvTokens()
                : (int) Math.max(blockSize, Math.min(config.maxContext(), options.kvMaxBytes() / bytesPerToken));
        this.cache = KvCache.forTokens(config.numLayers(), config.numKvHeads(), config.headDim(), blockSize, tokens);
    }

    @Override
    public Path directory() {
        return dir;
    }

    @Override
    public ModelConfig config() {
        return config;
    }

    @Override
    public GenerationConfig generationConfig() {
        return generation;
    }

    @Override
    public Tokenizer tokenizer() {
        return tokenizer;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public KvCache kvCache() {
        return cache;
    }

    @Override
    public long parameterCount() {
        long n = embed.numel() + finalNorm.numel() + (lmHead == embed ? 0 : lmHead.numel());
        for (Layer layer : layers) {
            for (Tensor t : layer.tensors()) {
                n += t.numel();
            }
        }
        return n;
    }

    @Override
    public DType weightDType() {
        return weights.dominantDType();
    }

    @Override
    public long weightBytesPerToken() {
        long bytes = finalNorm.byteSize() + lmHead.byteSize();
        if (embed != lmHead) {
            bytes += embed.byteSize() / embed.dim(0);
        }
        for (Layer layer : layers) {
            for (Tensor t : layer.tensors()) {
                bytes += t.byteSize();
            }
        }
        return bytes;
    }

    @Override
    public synchronized ForwardResult forward(Batch batch) {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        int n = batch.totalRows();
        int entries = batch.entries().size();
        int[] tokens = new int[n];
        int[] positions = new int[n];
        int[][] tables = new int[n][];
        int[] visible = new int[n];
        int[] slots = new int[n];
        int[] before = new int[entries];
        // Validate everything before touching a cache, so a bad entry leaves no sequence half-extended.
        int row = 0;
        for (int e = 0; e < entries; e++) {
            Batch.Entry entry = batch.entries().get(e);
            if (entry.kv().cache() != cache) {
                throw new IllegalArgumentException("batch entry " + e + " belongs to another model's KV cache");
            }
            if (!(entry.shape() instanceof AttentionShape.Causal)) {
                throw new IllegalArgumentException("attention shape " + entry.shape() + " is not supported yet");
            }
            int len = entry.kv().length();
            for (int i = 0; i < entry.tokens().length; i++) {
                int pos = entry.positions()[i];
                if (pos != len + i) {
                    throw new IllegalArgumentException("causal rows must continue the cache: row " + i
                            + " has position " + pos + ", expected " + (len + i));
                }
                if (pos >= config.maxContext()) {
                    throw new TandemException("position " + pos + " is past the model's context of "
                            + config.maxContext() + " tokens (" + config.maxContextSource() + ").");
                }
                int t = entry.tokens()[i];
                if (t < 0 || t >= config.vocabSize()) {
                    throw new TandemException("token id " + t + " is outside the vocabulary of "
                            + config.vocabSize() + " (config.json vocab_size).");
                }
            }
        }
        int e0 = 0;
        try {
            for (; e0 < entries; e0++) {
                Batch.Entry entry = batch.entries().get(e0);
                KvSequence kv = entry.kv();
                before[e0] = kv.length();
                int[] s = kv.append(entry.tokens().length);
                for (int i = 0; i < s.length; i++, row++) {
                    tokens[row] = entry.tokens()[i];
                    positions[row] = entry.positions()[i];
                    slots[row] = s[i];
                    visible[row] = entry.positions()[i] + 1;
                }
            }
        } catch (RuntimeException ex) {
            for (int e = 0; e < e0; e++) {
                batch.entries().get(e).kv().truncate(before[e]);
            }
            throw ex;
        }
        row = 0;
        for (Batch.Entry entry : batch.entries()) {
            for (int i = 0; i < entry.tokens().length; i++, row++) {
                tables[row] = entry.kv().blockTable();
            }
        }
        try {
            return run(batch, n, tokens, positions, slots, new AttentionRows(tables, visible));
        } catch (RuntimeException ex) {
            for (int e = 0; e < entries; e++) {
                batch.entries().get(e).kv().truncate(before[e]);
            }
            throw ex;
        }
    }

    private ForwardResult run(Batch batch, int n, int[] tokens, int[] positions, int[] slots,
                              AttentionRows rows) {
        int d = config.hiddenSize();
        int heads = config.numHeads();
        int kvHeads = config.numKvHeads();
        int hd = config.headDim();
        int ff = config.intermediateSize();
        float eps = (float) config.rmsNormEps();
        float scale = (float) (1.0 / Math.sqrt(hd));

        Tensor x = scratch(0, n, d);
        Tensor h = scratch(1, n, d);
        Tensor q = scratch(2, n, (long) heads * hd);
        Tensor k = scratch(3, n, (long) kvHeads * hd);
        Tensor v = scratch(4, n, (long) kvHeads * hd);
        Tensor attn = scratch(5, n, (long) heads * hd);
        Tensor gate = scratch(6, n, ff);
        Tensor up = scratch(7, n, ff);

        backend.embed(embed, tokens, x);
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            backend.rmsnorm(x, layer.attnNorm, eps, h);
            project(h, layer.wq, layer.bq, q);
            project(h, layer.wk, layer.bk, k);
            project(h, layer.wv, layer.bv, v);
            if (layer.qNorm != null) {
                backend.rmsnorm(q, layer.qNorm, eps, q);
                backend.rmsnorm(k, layer.kNorm, eps, k);
            }
            backend.rope(q, heads, hd, positions, invFreq, RopeLayout.ROTATE_HALF);
            backend.rope(k, kvHeads, hd, positions, invFreq, RopeLayout.ROTATE_HALF);
            backend.writeKv(cache, l, k, v, slots);
            backend.attention(q, cache, l, rows, heads, scale, attn);
            project(attn, layer.wo, layer.bo, h);
            backend.add(x, h, x);
            backend.rmsnorm(x, layer.mlpNorm, eps, h);
            project(h, layer.wGate, layer.bGate, gate);
            project(h, layer.wUp, layer.bUp, up);
            backend.siluMul(gate, up, gate);
            project(gate, layer.wDown, layer.bDown, h);
            backend.add(x, h, x);
        }

        // Only the requested rows go through the final norm and the LM head.
        int wanted = batch.totalLogitRows();
        float[][][] out = new float[batch.entries().size()][][];
        if (wanted == 0) {
            for (int e = 0; e < out.length; e++) {
                out[e] = new float[0][];
            }
            return new ForwardResult(out);
        }
        Tensor picked = scratch(8, wanted, d);
        int base = 0, j = 0;
        for (Batch.Entry entry : batch.entries()) {
            for (int r : entry.logitRows()) {
                java.lang.foreign.MemorySegment.copy(x.segment(), 4L * (base + r) * d, picked.segment(), 4L * j * d, 4L * d);
                j++;
            }
            base += entry.tokens().length;
        }
        Tensor normed = scratch(9, wanted, d);
        backend.rmsnorm(picked, finalNorm, eps, normed);
        int vocab = config.vocabSize();
        Tensor logits = scratch(10, wanted, vocab);
        backend.matmul(normed, lmHead, logits);
        j = 0;
        for (int e = 0; e < out.length; e++) {
            int[] want = batch.entries().get(e).logitRows();
            out[e] = new float[want.length][];
            for (int i = 0; i < want.length; i++, j++) {
                out[e][i] = logits.rows(j, 1).toFloatArray();
            }
        }
        return new ForwardResult(out);
    }

    /**
     * Activation buffer {@code slot} viewed as [rows, width], grown (doubling) when too small. Buffers
     * live in automatic arenas: any pool thread may touch them and the GC frees outgrown ones.
     */
    private Tensor scratch(int slot, int rows, long width) {
        Tensor t = scratchBuffers[slot];
        long need = rows * width;
        if (t == null || t.numel() < need) {
            long cap = Math.max(need, t == null ? 0 : 2 * t.numel());
            t = backend.allocate(Arena.ofAuto(), cap);
            scratchBuffers[slot] = t;
        }
        return t.head(rows, width);
    }

    private void project(Tensor in, Tensor w, Tensor bias, Tensor out) {
        backend.matmul(in, w, out);
        if (bias != null) {
            backend.addBias(out, bias);
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            cache.close();
            if (ownsBackend) {
                backend.close();
            }
            weights.close();
        }
    }
}
