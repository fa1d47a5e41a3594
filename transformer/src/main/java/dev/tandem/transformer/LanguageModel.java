package dev.tandem.transformer;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.tokenizer.Tokenizer;

import java.nio.file.Path;

/**
 * A loaded causal language model: configuration, tokenizer, memory-mapped weights, a KV cache, and
 * {@link #forward(Batch)}. Closing it unmaps the weights and frees the cache.
 */
public interface LanguageModel extends AutoCloseable {

    Path directory();

    ModelConfig config();

    GenerationConfig generationConfig();

    Tokenizer tokenizer();

    Backend backend();

    KvCache kvCache();

    /** A new, empty sequence in this model's KV cache (close it to return its blocks). */
    default KvSequence newSequence() {
        return kvCache().newSequence();
    }

    /** Number of weights (a tied embedding counted once). */
    long parameterCount();

    /** The dtype most weight bytes are stored in. */
    DType weightDType();

    /**
     * Bytes of weights one single-token decode step reads: every projection, norm and bias once, the
     * LM head whole, and of an untied embedding table only the token's row. Tokens/s times this is the
     * weight-read bandwidth a decode achieves, the figure memory bandwidth bounds.
     */
    long weightBytesPerToken();

    /**
     * Multiply-adds one row costs in the matrix products: every projection and the LM head (attention,
     * which grows with the context, is left out). A pass over k rows with logits at each does k times
     * this; divided by the machine's multiply-add peak it is the pass's arithmetic-bound time.
     */
    long multiplyAddsPerRow();

    /**
     * Runs one forward pass: validates the whole batch (shapes, positions, ids, widths, layers) before
     * touching any cache, appends every entry's rows to its cache, and returns the requested logits,
     * hidden states, final normalised hidden states and layer logits. On failure every sequence is truncated back.
     */
    ForwardResult forward(Batch batch);

    /**
     * The LM head over final normalised hidden states (as {@link ForwardResult#normedHidden} returns them):
     * one row of logits per given row, all in one product, bit-identical to the logits the forward pass
     * returns for the row a state came from (a row's product does not depend on the other rows of a call).
     * A caller that will read the logits of only some rows, known one at a time (a tree verifier's walk),
     * asks the pass for normed rows and pays the LM head (vocab × hidden multiply-adds a row) for those alone.
     *
     * @throws IllegalArgumentException if a row is missing or its width is not the model's hidden size
     */
    float[][] logitsOfNormed(float[][] normedRows);

    @Override
    void close();
}
