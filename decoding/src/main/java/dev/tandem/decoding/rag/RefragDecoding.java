package dev.tandem.decoding.rag;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.Generator;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.config.ModelConfig;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * REFRAG (Lin et al. 2025, "REFRAG: Rethinking RAG based Decoding"; {@code --method refrag}): compress, sense, expand.
 * Each retrieved passage is cut into chunks of k tokens; an encoder turns a chunk's text into a vector e, and a
 * linear {@link ChunkProjection} maps it into the decoder's input-embedding space, where it takes one position:
 *
 * <pre>  row(chunk) = W · encoder(decode(chunk)) + b</pre>
 *
 * An {@link ExpansionPolicy} picks the chunks that go back as their k tokens instead. The decoder's prefill is the
 * system prefix (the tokenizer's own tokens, such as BOS, then {@link #withSystemPrefix} ids), each chunk's tokens or
 * vector, then the question, at consecutive positions, causally, in one sequence ({@link RefragPrompt}); then plain
 * greedy or sampled decoding. Chunk vectors are kept in a {@link ChunkEmbeddingCache}, so a chunk is encoded once.
 *
 * <p>This is the mechanism only. The paper trains the encoder, the projection and the decoder together (reconstruction,
 * then continual pre-training) and the policy with reinforcement learning; Tandem ships no trained projection, so with
 * a random or untrained one the compressed rows mean nothing to the decoder and the output is not meaningful. With
 * {@link ExpansionPolicy#all()} it is plain decoding of the prefix, the passages and the question, token for token.
 */
public final class RefragDecoding implements DecodingStrategy {
    /** Tokens per chunk unless told otherwise: the paper's k = 16. */
    public static final int DEFAULT_CHUNK_TOKENS = 16;

    private final LanguageModel model;
    private final Embedder encoder;
    private final ChunkProjection projection;
    private final ChunkEmbeddingCache cache;
    private final Retriever retriever;
    private final int chunkTokens;
    private final ExpansionPolicy policy;
    private final int[] systemPrefix;

    /**
     * Passages from {@code retriever}, chunks of {@link #DEFAULT_CHUNK_TOKENS} encoded by {@code encoder} (vectors kept
     * in {@code cache}) and projected by {@code projection} into {@code model}'s embedding space, the
     * {@link ExpansionPolicy#similarity()} policy.
     *
     * @throws TandemException if the projection does not fit the encoder's vectors or the model's hidden size, or
     *                         the model is not a causal decoder
     */
    public RefragDecoding(LanguageModel model, Embedder encoder, ChunkProjection projection, ChunkEmbeddingCache cache,
                          Retriever retriever) {
        this(model, encoder, projection, cache, retriever, DEFAULT_CHUNK_TOKENS, ExpansionPolicy.similarity(), new int[0]);
    }

    private RefragDecoding(LanguageModel model, Embedder encoder, ChunkProjection projection, ChunkEmbeddingCache cache,
                           Retriever retriever, int chunkTokens, ExpansionPolicy policy, int[] systemPrefix) {
        this.model = Objects.requireNonNull(model, "model");
        this.encoder = Objects.requireNonNull(encoder, "encoder");
        this.projection = Objects.requireNonNull(projection, "projection");
        this.cache = Objects.requireNonNull(cache, "cache");
        this.retriever = Objects.requireNonNull(retriever, "retriever");
        this.policy = Objects.requireNonNull(policy, "policy");
        this.systemPrefix = systemPrefix.clone();
        if (chunkTokens < 1) {
            throw new TandemException("a REFRAG chunk holds at least 1 token, not " + chunkTokens + " (--chunk-tokens).");
        }
        this.chunkTokens = chunkTokens;
        ModelConfig config = model.config();
        if (!config.isCausal()) {
            throw new TandemException("--method refrag needs a causal decoder; " + config.modelType()
                    + " attends both ways (config.json is_causal false).");
        }
        if (projection.encoderDimension() != encoder.dimension()) {
            throw new TandemException("the projection " + projection.source() + " takes vectors of " + projection.encoderDimension()
                    + " values, but the encoder gives " + encoder.dimension() + "; it was trained for another encoder.");
        }
        if (projection.decoderHidden() != config.hiddenSize()) {
            throw new TandemException("the projection " + projection.source() + " makes rows of " + projection.decoderHidden()
                    + " values, but the decoder's hidden size is " + config.hiddenSize()
                    + " (config.json hidden_size); it was trained for another decoder.");
        }
    }

    /** This strategy with chunks of {@code k} tokens (≥ 1). */
    public RefragDecoding withChunkTokens(int k) {
        return new RefragDecoding(model, encoder, projection, cache, retriever, k, policy, systemPrefix);
    }

    /** This strategy choosing the chunks to expand by {@code policy}. */
    public RefragDecoding withPolicy(ExpansionPolicy policy) {
        return new RefragDecoding(model, encoder, projection, cache, retriever, chunkTokens, policy, systemPrefix);
    }

    /** This strategy with {@code ids} (an instruction, say) after the tokenizer's own prefix and before the passages. */
    public RefragDecoding withSystemPrefix(int[] ids) {
        return new RefragDecoding(model, encoder, projection, cache, retriever, chunkTokens, policy, ids);
    }

    @Override
    public String name() {
        return "refrag";
    }

    public int chunkTokens() {
        return chunkTokens;
    }

    public ExpansionPolicy policy() {
        return policy;
    }

    public ChunkEmbeddingCache cache() {
        return cache;
    }

    /** The question is the request's prompt (text, or ids decoded to text for the retriever and the encoder). */
    @Override
    public DecodingTask task(GenerationRequest request) {
        return task(request, retriever.passages(RagPrompt.questionText(model, request)));
    }

    /**
     * {@code request} over the given passages (token ids of the model's vocabulary, without special tokens), in the
     * order given: {@link #prompt}, then plain decoding after it. Chunks are encoded here, on the caller's thread.
     *
     * @throws TandemException if a passage is empty or outside the vocabulary, or the prompt does not fit the context
     */
    public DecodingTask task(GenerationRequest request, List<int[]> passages) {
        RefragPrompt prompt = prompt(request, passages);
        return new RefragTask(new Generator(model).task(request, prompt.ids(), prompt.vectors()), prompt.text());
    }

    /**
     * The rows {@link #task} feeds the decoder for {@code request} over {@code passages}: chunked, the chunks to expand
     * chosen by the policy, the others' vectors (from the cache, or encoded now) projected.
     *
     * @throws TandemException if a passage is empty or outside the vocabulary, or the prompt does not fit the context
     */
    public RefragPrompt prompt(GenerationRequest request, List<int[]> passages) {
        RagPrompt split = RagPrompt.of(model, request, systemPrefix, name());
        int[] prefix = split.prefix();
        int[] question = split.question();
        ModelConfig config = model.config();
        List<int[]> chunks = new ArrayList<>();
        int textLength = prefix.length + question.length;
        for (int i = 0; i < passages.size(); i++) {
            int[] p = passages.get(i);
            RagPrompt.checkPassage(config, i, p);
            for (int from = 0; from < p.length; from += chunkTokens) {
                chunks.add(Arrays.copyOfRange(p, from, Math.min(p.length, from + chunkTokens)));
            }
            textLength += p.length;
        }
        boolean[] allCompressed = new boolean[chunks.size()];
        checkFits(prefix, question, chunks, allCompressed, passages.size()); // before anything is encoded
        List<float[]> vectors = null;
        boolean[] expanded;
        if (policy.readsVectors()) {
            vectors = cache.vectors(encoder, model.tokenizer(), chunks);
            float[] q = encoder.embed(RagPrompt.questionText(model, request));
            expanded = policy.expand(q, vectors, chunks);
        } else {
            expanded = policy.expand(null, null, chunks);
        }
        if (expanded == null || expanded.length != chunks.size()) {
            throw new IllegalStateException("the expansion policy " + policy + " answered for "
                    + (expanded == null ? "no" : expanded.length) + " chunks of " + chunks.size());
        }
        expanded = expanded.clone();
        checkFits(prefix, question, chunks, expanded, passages.size());
        if (vectors == null) {
            List<int[]> compressed = new ArrayList<>();
            for (int c = 0; c < chunks.size(); c++) {
                if (!expanded[c]) {
                    compressed.add(chunks.get(c));
                }
            }
            List<float[]> some = compressed.isEmpty() ? List.of() : cache.vectors(encoder, model.tokenizer(), compressed);
            vectors = new ArrayList<>(chunks.size());
            for (int c = 0, k = 0; c < chunks.size(); c++) {
                vectors.add(expanded[c] ? null : some.get(k++));
            }
        }

        int rows = rows(prefix, question, chunks, expanded);
        int[] ids = new int[rows];
        float[][] rowVectors = new float[rows][];
        int[] text = new int[textLength];
        int at = 0;
        int t = 0;
        for (int id : prefix) {
            text[t++] = id;
            ids[at++] = id;
        }
        for (int c = 0; c < chunks.size(); c++) {
            int[] chunk = chunks.get(c);
            System.arraycopy(chunk, 0, text, t, chunk.length);
            t += chunk.length;
            if (expanded[c]) {
                System.arraycopy(chunk, 0, ids, at, chunk.length);
                at += chunk.length;
            } else {
                ids[at] = -1;
                rowVectors[at++] = projection.project(vectors.get(c));
            }
        }
        for (int id : question) {
            text[t++] = id;
            ids[at++] = id;
        }
        return new RefragPrompt(ids, rowVectors, List.copyOf(chunks), expanded, text);
    }

    private static int rows(int[] prefix, int[] question, List<int[]> chunks, boolean[] expanded) {
        long rows = prefix.length + question.length;
        for (int c = 0; c < chunks.size(); c++) {
            rows += expanded[c] ? chunks.get(c).length : 1;
        }
        return (int) Math.min(Integer.MAX_VALUE, rows);
    }

    /** Refuses a prompt that leaves no room for an answer in the context. */
    private void checkFits(int[] prefix, int[] question, List<int[]> chunks, boolean[] expanded, int passages) {
        ModelConfig config = model.config();
        int rows = rows(prefix, question, chunks, expanded);
        if (rows >= config.maxContext()) {
            int compressed = 0;
            for (boolean e : expanded) {
                compressed += e ? 0 : 1;
            }
            throw new TandemException(passages + " passages in " + chunks.size() + " chunks of up to " + chunkTokens + " tokens ("
                    + compressed + " compressed to one row each) with the " + prefix.length + "-token prefix and the "
                    + question.length + "-token question take " + rows + " decoder rows, more than fit the model's context of "
                    + config.maxContext() + " tokens (" + config.maxContextSource() + ") with room for an answer; expand fewer "
                    + "chunks (--expand), use longer ones (--chunk-tokens) or retrieve fewer passages (--passages-k).");
        }
    }
}
