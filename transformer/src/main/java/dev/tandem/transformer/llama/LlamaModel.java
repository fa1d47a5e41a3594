package dev.tandem.transformer.llama;

import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.RopeLayout;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.HostMemory;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.ScratchTensors;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.weights.WeightStore;

import java.nio.file.Path;
import java.util.Arrays;
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
 * embeddings in the "rotate half" layout. Weights, activations and KV live where the backend computes
 * (it takes the weights at load and allocates the rest); the host copies in only token ids, embedding
 * rows and masks, and copies out only the rows asked for. Activation buffers are reused from call to call (so one forward pass runs at a time: {@code forward} and
 * {@code logitsOfNormed} are synchronized).
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
    private final ScratchTensors scratch;
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
        this.scratch = new ScratchTensors(backend, 12);
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
        this.embed = weight("model.embed_tokens.weight", vocab, d);
        this.finalNorm = weight("model.norm.weight", d);
        if (config.tieWordEmbeddings()) {
            this.lmHead = embed;
        } else {
            this.lmHead = weight("lm_head.weight", vocab, d);
        }
        this.layers = new Layer[config.numLayers()];
        for (int l = 0; l < layers.length; l++) {
            String p = "model.layers." + l + ".";
            long hd = config.headDim();
            layers[l] = new Layer(
                    weight(p + "input_layernorm.weight", d),
                    weight(p + "self_attn.q_proj.weight", qWidth, d),
                    weight(p + "self_attn.k_proj.weight", kvWidth, d),
                    weight(p + "self_attn.v_proj.weight", kvWidth, d),
                    weight(p + "self_attn.o_proj.weight", d, qWidth),
                    config.qkvBias() ? weight(p + "self_attn.q_proj.bias", qWidth) : null,
                    config.qkvBias() ? weight(p + "self_attn.k_proj.bias", kvWidth) : null,
                    config.qkvBias() ? weight(p + "self_attn.v_proj.bias", kvWidth) : null,
                    config.outputBias() ? weight(p + "self_attn.o_proj.bias", d) : null,
                    config.qkNorm() ? weight(p + "self_attn.q_norm.weight", hd) : null,
                    config.qkNorm() ? weight(p + "self_attn.k_norm.weight", hd) : null,
                    weight(p + "post_attention_layernorm.weight", d),
                    weight(p + "mlp.gate_proj.weight", ff, d),
                    weight(p + "mlp.up_proj.weight", ff, d),
                    weight(p + "mlp.down_proj.weight", d, ff),
                    config.mlpBias() ? weight(p + "mlp.gate_proj.bias", ff) : null,
                    config.mlpBias() ? weight(p + "mlp.up_proj.bias", ff) : null,
                    config.mlpBias() ? weight(p + "mlp.down_proj.bias", d) : null);
        }
        this.cache = newCache(config, options, backend);
    }

    /** Weight {@code name}, checked against {@code shape}, as the backend computes from it. */
    private Tensor weight(String name, long... shape) {
        return backend.loadWeight(weights.get(name, config.defaultsNote(), shape));
    }

    /**
     * The model's KV cache: {@code kvTokens} positions when given, else as many blocks as
     * {@code kvMemory} bytes hold, else the model's context capped by {@code kvMaxBytes}; K and V stored
     * as {@code kvDtype}.
     */
    private static KvCache newCache(ModelConfig config, ModelLoader.Options options, Backend backend) {
        int blockSize = 16;
        DType dtype = options.kvDtype();
        long kvWidth = (long) config.numKvHeads() * config.headDim();
        long bytesPerToken = 2L * config.numLayers() * kvWidth * dtype.byteSize();
        long bytesPerBlock = bytesPerToken * blockSize;
        long blocks;
        if (options.kvTokens() > 0) {
            blocks = Math.max(1, ((long) options.kvTokens() + blockSize - 1) / blockSize);
        } else if (options.kvMemory() > 0) {
            if (options.kvMemory() < bytesPerBlock) {
                throw new TandemException("KV memory budget of " + options.kvMemory() + " bytes is less than one block of "
                        + bytesPerBlock + " bytes (" + blockSize + " tokens of " + bytesPerToken + " bytes in "
                        + dtype.lowerName() + ").");
            }
            if (backend.placement() == Placement.HOST) {
                HostMemory.checkFits(options.kvMemory(), "the KV cache", "--kv-memory, or withKvMemory in the Java API");
            }
            blocks = options.kvMemory() / bytesPerBlock;
        } else {
            long tokens = Math.max(blockSize, Math.min(config.maxContext(), options.kvMaxBytes() / bytesPerToken));
            blocks = Math.max(1, (tokens + blockSize - 1) / blockSize);
        }
        blocks = Math.min(blocks, Integer.MAX_VALUE / blockSize);
        return new KvCache(backend.allocateKv(config.numLayers(), config.numKvHeads(), config.headDim(), blockSize, (int) blocks, dtype));
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
    public long multiplyAddsPerRow() {
        long macs = lmHead.numel();
        for (Layer layer : layers) {
            for (Tensor t : layer.tensors()) {
                if (t.rank() == 2) {
                    macs += t.numel();
                }
            }
        }
        return macs;
    }

    @Override
    public synchronized ForwardResult forward(Batch batch) {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        int n = batch.totalRows();
        int entries = batch.entries().size();
        int[] positions = new int[n];
        int[] slots = new int[n];
        int[] before = new int[entries];
        // Validate everything before touching a cache, so a bad entry leaves no sequence half-extended.
        for (int e = 0; e < entries; e++) {
            validate(e, batch.entries().get(e));
        }
        int row = 0;
        int e0 = 0;
        try {
            for (; e0 < entries; e0++) {
                Batch.Entry entry = batch.entries().get(e0);
                KvSequence kv = entry.kv();
                before[e0] = kv.length();
                int[] s = kv.append(entry.rows());
                for (int i = 0; i < s.length; i++, row++) {
                    positions[row] = entry.positions()[i];
                    slots[row] = s[i];
                }
            }
        } catch (RuntimeException ex) {
            for (int e = 0; e < e0; e++) {
                batch.entries().get(e).kv().truncate(before[e]);
            }
            throw ex;
        }
        try {
            return run(batch, n, positions, slots, mask(batch, n, before));
        } catch (RuntimeException ex) {
            for (int e = 0; e < entries; e++) {
                batch.entries().get(e).kv().truncate(before[e]);
            }
            throw ex;
        }
    }

    private void validate(int e, Batch.Entry entry) {
        if (entry.kv().cache() != cache) {
            throw new IllegalArgumentException("batch entry " + e + " belongs to another model's KV cache");
        }
        entry.shape().validate(entry.rows());
        if (entry.shape() instanceof AttentionShape.SparsePrefix sparse && sparse.extent() > entry.kv().length()) {
            throw new IllegalArgumentException("batch entry " + e + " sees cached position " + (sparse.extent() - 1)
                    + " of a sequence of " + entry.kv().length());
        }
        for (int i = 0; i < entry.rows(); i++) {
            int pos = entry.positions()[i];
            if (pos < 0) {
                throw new IllegalArgumentException("batch entry " + e + " row " + i + " has negative position " + pos);
            }
            if (pos >= config.maxContext()) {
                throw new TandemException("position " + pos + " is past the model's context of "
                        + config.maxContext() + " tokens (" + config.maxContextSource() + ").");
            }
        }
        for (int i = 0; i < entry.rows(); i++) {
            if (entry.isVectorRow(i)) {
                if (entry.embeddings()[i].length != config.hiddenSize()) {
                    throw new IllegalArgumentException("batch entry " + e + " has embedding rows of width "
                            + entry.embeddings()[i].length + " but the model's hidden size is " + config.hiddenSize());
                }
            } else {
                int t = entry.tokens()[i];
                if (t < 0 || t >= config.vocabSize()) {
                    throw new TandemException("token id " + t + " is outside the vocabulary of "
                            + config.vocabSize() + " (config.json vocab_size).");
                }
            }
        }
        Batch.LogitsInto into = entry.logitsInto();
        if (into != null && (into.into().dtype() != DType.F32 || into.into().rank() != 2 || into.into().dim(1) != config.vocabSize()
                || into.into().placement() != backend.placement())) {
            throw new IllegalArgumentException("batch entry " + e + " keeps its logits in a tensor that is not f32 [rows, "
                    + config.vocabSize() + "] in the memory of the model's backend (" + backend.name() + ")");
        }
        for (int l : entry.hiddenLayers()) {
            if (l > layers.length) {
                throw new IllegalArgumentException("hidden-state layer " + l + " is past the model's "
                        + layers.length + " layers (0 = embeddings, " + layers.length + " = last block)");
            }
        }
        Batch.LayerLogits layerLogits = entry.layerLogits();
        if (layerLogits != null) {
            for (int l : layerLogits.layers()) {
                if (l >= layers.length) {
                    throw new IllegalArgumentException("decoder layer " + l + " is past the " + layers.length
                            + " decoder layers of the model in " + dir + " (they count from 0: 0 to " + (layers.length - 1) + ").");
                }
            }
            Tensor t = layerLogits.into();
            if (t != null && (t.dtype() != DType.F32 || t.rank() != 2 || t.dim(1) != config.vocabSize()
                    || t.placement() != backend.placement())) {
                throw new IllegalArgumentException("batch entry " + e + " keeps its layer logits in a tensor that is not f32 [rows, "
                        + config.vocabSize() + "] in the memory of the model's backend (" + backend.name() + ")");
            }
        }
    }

    /**
     * The mask descriptor of every row: logical positions are the sequence's cache order, the new rows
     * of an entry at {@code before[e] .. before[e] + rows − 1}.
     */
    private AttentionRows mask(Batch batch, int n, int[] before) {
        int[][] tables = new int[n][];
        int[] prefix = new int[n];
        int[][] extra = null;
        int[] extraCount = null;
        int row = 0;
        for (int e = 0; e < batch.entries().size(); e++) {
            Batch.Entry entry = batch.entries().get(e);
            int[] table = entry.kv().blockTable();
            int p = before[e];
            int rows = entry.rows();
            AttentionShape shape = config.isCausal() ? entry.shape() : AttentionShape.BIDIRECTIONAL;
            switch (shape) {
                case AttentionShape.Causal c -> {
                    for (int i = 0; i < rows; i++) {
                        prefix[row + i] = p + i + 1;
                    }
                }
                case AttentionShape.Bidirectional b -> {
                    for (int i = 0; i < rows; i++) {
                        prefix[row + i] = p + rows;
                    }
                }
                case AttentionShape.Tree tree -> {
                    if (extra == null) {
                        extra = new int[n][];
                        extraCount = new int[n];
                    }
                    int[] parents = tree.parents();
                    int[] depth = new int[rows];
                    for (int i = 0; i < rows; i++) {
                        depth[i] = parents[i] < 0 ? 1 : depth[parents[i]] + 1;
                        int[] seen = new int[depth[i]];
                        for (int a = i, k = depth[i] - 1; a >= 0; a = parents[a], k--) {
                            seen[k] = p + a;
                        }
                        prefix[row + i] = p;
                        extra[row + i] = seen;
                        extraCount[row + i] = seen.length;
                    }
                }
                case AttentionShape.SparsePrefix sparse -> {
                    if (extra == null) {
                        extra = new int[n][];
                        extraCount = new int[n];
                    }
                    // The leading run 0, 1, 2, ... of the visible positions is the prefix; the rest, then the new rows, are extra.
                    int count = sparse.count();
                    int lead = 0;
                    while (lead < count && sparse.at(lead) == lead) {
                        lead++;
                    }
                    int[] seen = new int[count - lead + rows];
                    for (int i = lead; i < count; i++) {
                        seen[i - lead] = sparse.at(i);
                    }
                    for (int i = 0; i < rows; i++) {
                        seen[count - lead + i] = p + i;
                    }
                    for (int i = 0; i < rows; i++) {
                        prefix[row + i] = lead;
                        extra[row + i] = seen;
                        extraCount[row + i] = count - lead + i + 1;
                    }
                }
                case AttentionShape.Segments segments -> {
                    if (extra == null) {
                        extra = new int[n][];
                        extraCount = new int[n];
                    }
                    int[] starts = segments.starts();
                    for (int s = 0; s < starts.length; s++) {
                        int a = starts[s], b = s + 1 < starts.length ? starts[s + 1] : rows;
                        int[] own = new int[b - a];
                        for (int i = a; i < b; i++) {
                            own[i - a] = p + i;
                        }
                        for (int i = a; i < b; i++) {
                            prefix[row + i] = segments.seePrefix() ? p : 0;
                            extra[row + i] = own;
                            extraCount[row + i] = i - a + 1;
                        }
                    }
                }
            }
            for (int i = 0; i < rows; i++) {
                tables[row + i] = table;
            }
            row += rows;
        }
        return new AttentionRows(tables, prefix, extra, extraCount);
    }

    private ForwardResult run(Batch batch, int n, int[] positions, int[] slots, AttentionRows rows) {
        int d = config.hiddenSize();
        int heads = config.numHeads();
        int kvHeads = config.numKvHeads();
        int hd = config.headDim();
        int ff = config.intermediateSize();
        float eps = (float) config.rmsNormEps();
        float scale = (float) (1.0 / Math.sqrt(hd));
        List<Batch.Entry> entries = batch.entries();
        int entryCount = entries.size();

        Tensor x = scratch(0, n, d);
        Tensor h = scratch(1, n, d);
        Tensor q = scratch(2, n, (long) heads * hd);
        Tensor k = scratch(3, n, (long) kvHeads * hd);
        Tensor v = scratch(4, n, (long) kvHeads * hd);
        Tensor attn = scratch(5, n, (long) heads * hd);
        Tensor gate = scratch(6, n, ff);
        Tensor up = scratch(7, n, ff);

        embedRows(entries, n, x);

        // Hidden states: hidden[e][i][k] for layer hiddenLayers[e][i] and the entry's k-th hidden row.
        int[][] hiddenLayers = new int[entryCount][];
        float[][][][] hidden = new float[entryCount][][][];
        boolean[] captureAt = new boolean[layers.length + 1];
        for (int e = 0; e < entryCount; e++) {
            Batch.Entry entry = entries.get(e);
            hiddenLayers[e] = entry.hiddenLayers().clone();
            hidden[e] = new float[hiddenLayers[e].length][entry.hiddenRows().length][];
            for (int l : hiddenLayers[e]) {
                if (entry.hiddenRows().length > 0) {
                    captureAt[l] = true;
                }
            }
        }
        if (captureAt[0]) {
            capture(entries, 0, x, hiddenLayers, hidden);
        }

        // The rows that go through the final norm, in `picked`: [head rows (logit, greedy, summary and kept rows) |
        // layer-logit rows | normed rows]; the first two parts go through the LM head in one product. A layer-logit row
        // is gathered right after its layer, layer by layer, since the residual stream is overwritten by the next block.
        int wanted = batch.totalLogitRows();
        int greedyWanted = 0;
        int summaryWanted = 0;
        int summaryK = 0;
        int normedWanted = 0;
        int keptWanted = 0;
        int layerWanted = 0;
        for (Batch.Entry entry : entries) {
            greedyWanted += entry.greedyRows().length;
            summaryWanted += entry.summaryRows().length;
            keptWanted += entry.logitsInto() == null ? 0 : entry.logitsInto().rows().length;
            summaryK = Math.max(summaryK, entry.summaryK());
            normedWanted += entry.normedRows().length;
            layerWanted += entry.layerLogits() == null ? 0 : entry.layerLogits().layers().length;
        }
        int ordinaryHeadRows = wanted + greedyWanted + summaryWanted + keptWanted;
        int headRows = ordinaryHeadRows + layerWanted;
        int picks = headRows + normedWanted;
        Tensor picked = picks > 0 ? scratch(8, picks, d) : null;
        // layerAt[e][i]: the row of `picked` (from ordinaryHeadRows on) where entry e's i-th layer lands. The rows are
        // layer-major, so that layer l's rows, layerSources[l] of the stream, land together from row layerStart[l].
        int[][] layerAt = new int[entryCount][];
        int[][] layerSources = new int[layers.length][];
        int[] layerStart = new int[layers.length];
        if (layerWanted > 0) {
            int[] perLayer = new int[layers.length];
            for (Batch.Entry entry : entries) {
                if (entry.layerLogits() != null) {
                    for (int l : entry.layerLogits().layers()) {
                        perLayer[l]++;
                    }
                }
            }
            for (int l = 0, at = ordinaryHeadRows; l < layers.length; at += perLayer[l], l++) {
                layerStart[l] = at;
                layerSources[l] = perLayer[l] == 0 ? null : new int[perLayer[l]];
            }
            int[] filled = new int[layers.length];
            int base = 0;
            for (int e = 0; e < entryCount; e++) {
                Batch.Entry entry = entries.get(e);
                Batch.LayerLogits ll = entry.layerLogits();
                if (ll != null) {
                    layerAt[e] = new int[ll.layers().length];
                    for (int i = 0; i < ll.layers().length; i++) {
                        int l = ll.layers()[i];
                        layerAt[e][i] = layerStart[l] + filled[l];
                        layerSources[l][filled[l]++] = base + ll.row();
                    }
                }
                base += entry.rows();
            }
        }
        for (int l = 0; l < layers.length; l++) {
            Layer layer = layers[l];
            backend.rmsnorm(x, layer.attnNorm, eps, h);
            backend.matmul(h, new Tensor[] {layer.wq, layer.wk, layer.wv}, new Tensor[] {q, k, v});
            addBias(q, layer.bq);
            addBias(k, layer.bk);
            addBias(v, layer.bv);
            if (layer.qNorm != null) {
                backend.rmsnorm(q, layer.qNorm, eps, q);
                backend.rmsnorm(k, layer.kNorm, eps, k);
            }
            backend.rope(q, heads, hd, positions, invFreq, RopeLayout.ROTATE_HALF);
            backend.rope(k, kvHeads, hd, positions, invFreq, RopeLayout.ROTATE_HALF);
            backend.writeKv(cache.storage(), l, k, v, slots);
            backend.attention(q, cache.storage(), l, rows, heads, scale, attn);
            project(attn, layer.wo, layer.bo, h);
            backend.add(x, h, x);
            backend.rmsnorm(x, layer.mlpNorm, eps, h);
            backend.matmul(h, new Tensor[] {layer.wGate, layer.wUp}, new Tensor[] {gate, up});
            addBias(gate, layer.bGate);
            addBias(up, layer.bUp);
            backend.siluMul(gate, up, gate);
            project(gate, layer.wDown, layer.bDown, h);
            backend.add(x, h, x);
            if (captureAt[l + 1]) {
                capture(entries, l + 1, x, hiddenLayers, hidden);
            }
            if (layerSources[l] != null) {
                backend.gatherRows(x, layerSources[l], picked.rows(layerStart[l], layerSources[l].length));
            }
        }

        // Only the requested rows go through the final norm (logit rows, greedy rows, summary rows, kept rows, layer-logit
        // rows, then normed rows) and only all but the last kind through the LM head; greedy rows leave the backend as ids,
        // summary rows as summaries, and kept rows not at all (they are copied into the caller's tensor).
        LogitSummary[][] summaries = summaryWanted == 0 ? null : new LogitSummary[entryCount][];
        float[][][] out = new float[entryCount][][];
        int[][] greedy = new int[entryCount][];
        float[][][] greedyLogits = new float[entryCount][][];
        float[][][] normedOut = new float[entryCount][][];
        for (int e = 0; e < entryCount; e++) {
            out[e] = new float[entries.get(e).logitRows().length][];
            greedy[e] = new int[entries.get(e).greedyRows().length];
            greedyLogits[e] = new float[greedy[e].length][];
            normedOut[e] = new float[entries.get(e).normedRows().length][];
            if (summaries != null) {
                summaries[e] = new LogitSummary[entries.get(e).summaryRows().length];
            }
        }
        float[][][] layerOut = new float[entryCount][][];
        int[][] layerOutLayers = new int[entryCount][];
        if (picks > 0) {
            int[] pick = new int[ordinaryHeadRows + normedWanted];
            int j = 0;
            for (int kind = 0; kind < 5; kind++) {
                int base = 0;
                for (Batch.Entry entry : entries) {
                    int[] chosen = switch (kind) {
                        case 0 -> entry.logitRows();
                        case 1 -> entry.greedyRows();
                        case 2 -> entry.summaryRows();
                        case 3 -> entry.logitsInto() == null ? new int[0] : entry.logitsInto().rows();
                        default -> entry.normedRows();
                    };
                    for (int r : chosen) {
                        pick[j++] = base + r;
                    }
                    base += entry.rows();
                }
            }
            if (layerWanted == 0) {
                backend.gatherRows(x, pick, picked);
            } else {
                if (ordinaryHeadRows > 0) {
                    backend.gatherRows(x, Arrays.copyOf(pick, ordinaryHeadRows), picked.rows(0, ordinaryHeadRows));
                }
                if (normedWanted > 0) {
                    backend.gatherRows(x, Arrays.copyOfRange(pick, ordinaryHeadRows, pick.length), picked.rows(headRows, normedWanted));
                }
            }
            Tensor normed = scratch(9, picks, d);
            backend.rmsnorm(picked, finalNorm, eps, normed);
            if (headRows > 0) {
                Tensor logits = headLogits(normed, headRows);
                if (wanted > 0) {
                    float[][] rowsOut = backend.readRows(logits, 0, wanted);
                    j = 0;
                    for (int e = 0; e < entryCount; e++) {
                        for (int i = 0; i < out[e].length; i++, j++) {
                            out[e][i] = rowsOut[j];
                        }
                    }
                }
                if (greedyWanted > 0) {
                    int[] ids = backend.argmax(logits.rows(wanted, greedyWanted));
                    j = 0;
                    for (int e = 0; e < entryCount; e++) {
                        for (int i = 0; i < greedy[e].length; i++, j++) {
                            greedy[e][i] = ids[j];
                            if (ids[j] < 0) { // no greedy token: the row comes back so the caller can say why
                                greedyLogits[e][i] = backend.readRows(logits, wanted + j, 1)[0];
                            }
                        }
                    }
                }
                if (summaryWanted > 0) {
                    // One launch at the largest k asked for; each entry keeps its own k's prefix of the top ids.
                    LogitSummary[] all = backend.summarize(logits.rows(wanted + greedyWanted, summaryWanted), summaryK);
                    j = 0;
                    for (int e = 0; e < entryCount; e++) {
                        int keep = entries.get(e).summaryK();
                        for (int i = 0; i < summaries[e].length; i++, j++) {
                            summaries[e][i] = all[j].topOnly(keep);
                        }
                    }
                }
                if (keptWanted > 0) {
                    // Each entry's kept rows, copied where it asked; they never leave the backend's memory.
                    int at = wanted + greedyWanted + summaryWanted;
                    for (Batch.Entry entry : entries) {
                        Batch.LogitsInto into = entry.logitsInto();
                        if (into != null) {
                            int count = into.rows().length;
                            int[] from = new int[count];
                            for (int i = 0; i < count; i++) {
                                from[i] = at + i;
                            }
                            backend.gatherRows(logits, from, into.into().rows(into.from(), count));
                            at += count;
                        }
                    }
                }
                if (layerWanted > 0) {
                    layerLogitsOut(entries, logits, ordinaryHeadRows, layerAt, layerOutLayers, layerOut);
                }
            }
            if (normedWanted > 0) {
                float[][] rowsOut = backend.readRows(normed, headRows, normedWanted);
                j = 0;
                for (int e = 0; e < entryCount; e++) {
                    for (int i = 0; i < normedOut[e].length; i++, j++) {
                        normedOut[e][i] = rowsOut[j];
                    }
                }
            }
        }
        return new ForwardResult(out, hiddenLayers, hidden, normedOut, greedy, greedyLogits, summaries, layerOutLayers, layerOut);
    }

    /**
     * The layer-logit rows of {@code logits} (rows {@code [from, …)}, where {@code layerAt} says) to where each entry
     * asked: read back in one copy for those returned, copied on the backend for those kept there.
     */
    private void layerLogitsOut(List<Batch.Entry> entries, Tensor logits, int from, int[][] layerAt, int[][] outLayers,
                                float[][][] out) {
        int returned = 0;
        for (Batch.Entry entry : entries) {
            Batch.LayerLogits ll = entry.layerLogits();
            if (ll != null && ll.into() == null) {
                returned += ll.layers().length;
            }
        }
        float[][] rows = null;
        int[] rowAt = null;
        if (returned > 0) {
            // The returned rows may sit among kept ones: gather them together, then read them in one copy.
            rowAt = new int[returned];
            int k = 0;
            for (int e = 0; e < entries.size(); e++) {
                Batch.LayerLogits ll = entries.get(e).layerLogits();
                if (ll != null && ll.into() == null) {
                    for (int at : layerAt[e]) {
                        rowAt[k++] = at;
                    }
                }
            }
            Tensor gathered = scratch(11, returned, config.vocabSize());
            backend.gatherRows(logits, rowAt, gathered);
            rows = backend.readRows(gathered, 0, returned);
        }
        int k = 0;
        for (int e = 0; e < entries.size(); e++) {
            Batch.LayerLogits ll = entries.get(e).layerLogits();
            if (ll == null) {
                continue;
            }
            if (ll.into() == null) {
                outLayers[e] = ll.layers().clone();
                out[e] = new float[ll.layers().length][];
                for (int i = 0; i < out[e].length; i++) {
                    out[e][i] = rows[k++];
                }
            } else {
                backend.gatherRows(logits, layerAt[e], ll.into().rows(ll.from(), ll.layers().length));
            }
        }
    }

    @Override
    public synchronized float[][] logitsOfNormed(float[][] normedRows) {
        if (closed) {
            throw new IllegalStateException("model is closed");
        }
        Objects.requireNonNull(normedRows, "normedRows");
        int d = config.hiddenSize();
        for (int i = 0; i < normedRows.length; i++) {
            if (normedRows[i] == null || normedRows[i].length != d) {
                throw new IllegalArgumentException("normed row " + i + (normedRows[i] == null ? " is missing"
                        : " has width " + normedRows[i].length) + " but the model's hidden size is " + d + ".");
            }
        }
        int n = normedRows.length;
        if (n == 0) {
            return new float[0][];
        }
        Tensor normed = scratch(9, n, d);
        backend.writeRows(normedRows, normed, 0);
        return head(normed, n);
    }

    /** The LM head over the first {@code rows} rows of {@code normed}, copied to the host. */
    private float[][] head(Tensor normed, int rows) {
        return backend.readRows(headLogits(normed, rows), 0, rows);
    }

    /**
     * The LM head over the first {@code rows} rows of {@code normed}: the one product every logit row and
     * greedy token comes from, left in the backend's memory.
     */
    private Tensor headLogits(Tensor normed, int rows) {
        Tensor logits = scratch(10, rows, config.vocabSize());
        backend.matmul(normed.head(rows, config.hiddenSize()), lmHead, logits);
        return logits;
    }

    /**
     * Layer-0 input: the embedding lookup for token rows, the given vectors for embedding rows; a mixed entry goes
     * run by run (each run of token rows one lookup, each run of vector rows one write), so every row gets what it
     * would get in an entry of its own kind.
     */
    private void embedRows(List<Batch.Entry> entries, int n, Tensor x) {
        boolean allTokens = entries.stream().noneMatch(Batch.Entry::hasEmbeddings);
        if (allTokens) {
            int[] tokens = new int[n];
            int row = 0;
            for (Batch.Entry entry : entries) {
                System.arraycopy(entry.tokens(), 0, tokens, row, entry.rows());
                row += entry.rows();
            }
            backend.embed(embed, tokens, x);
            return;
        }
        int row = 0;
        for (Batch.Entry entry : entries) {
            int rows = entry.rows();
            for (int from = 0; from < rows; ) {
                boolean vectors = entry.isVectorRow(from);
                int to = from + 1;
                while (to < rows && entry.isVectorRow(to) == vectors) {
                    to++;
                }
                if (vectors) {
                    backend.writeRows(Arrays.copyOfRange(entry.embeddings(), from, to), x, row + from);
                } else {
                    backend.embed(embed, Arrays.copyOfRange(entry.tokens(), from, to), x.rows(row + from, to - from));
                }
                from = to;
            }
            row += rows;
        }
    }

    /**
     * Copies the requested rows of {@code x} (the residual stream at layer {@code layer}) into
     * {@code hidden}: gathered on the backend, then read to the host in one copy.
     */
    private void capture(List<Batch.Entry> entries, int layer, Tensor x, int[][] hiddenLayers, float[][][][] hidden) {
        int count = 0;
        for (int e = 0; e < entries.size(); e++) {
            for (int l : hiddenLayers[e]) {
                if (l == layer) {
                    count += entries.get(e).hiddenRows().length;
                }
            }
        }
        int[] pick = new int[count];
        int base = 0, j = 0;
        for (int e = 0; e < entries.size(); e++) {
            Batch.Entry entry = entries.get(e);
            for (int l : hiddenLayers[e]) {
                if (l == layer) {
                    for (int r : entry.hiddenRows()) {
                        pick[j++] = base + r;
                    }
                }
            }
            base += entry.rows();
        }
        Tensor gathered = scratch(11, count, config.hiddenSize());
        backend.gatherRows(x, pick, gathered);
        float[][] rowsOut = backend.readRows(gathered, 0, count);
        j = 0;
        for (int e = 0; e < entries.size(); e++) {
            for (int i = 0; i < hiddenLayers[e].length; i++) {
                if (hiddenLayers[e][i] == layer) {
                    for (int kk = 0; kk < entries.get(e).hiddenRows().length; kk++) {
                        hidden[e][i][kk] = rowsOut[j++];
                    }
                }
            }
        }
    }

    /**
     * Activation buffer {@code slot} viewed as [rows, width], grown (doubling) when too small. Buffers
     * are the backend's memory; an outgrown one is freed at once, the rest when the model closes.
     */
    private Tensor scratch(int slot, int rows, long width) {
        return scratch.get(slot, rows, width);
    }

    private void project(Tensor in, Tensor w, Tensor bias, Tensor out) {
        backend.matmul(in, w, out);
        addBias(out, bias);
    }

    private void addBias(Tensor out, Tensor bias) {
        if (bias != null) {
            backend.addBias(out, bias);
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            cache.close();
            scratch.close();
            if (ownsBackend) {
                backend.close();
            }
            weights.close();
        }
    }
}
