package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.RequestState;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.LanguageModel;

/**
 * ADED, adaptive draft-verification ({@code METHODS.md}, "ADED"): no second model; drafts come from a
 * {@link TrigramTable} P(c | a, b) of a corpus tokenized with the target's tokenizer. Each generation
 * starts from a copy of that table (the corpus counts are shared, the online counts are the
 * generation's own), observes the prompt, and after every round observes the tokens it accepted, so a
 * context the generation repeats drifts toward what it does there. Per round {@link AdedDrafter} grows a
 * tree below the context by a Monte-Carlo tree search over the table (PUCT selection, value = a path's
 * probability under the table, {@link #DEFAULT_ITERATIONS} iterations, at most {@link #DEFAULT_MAX_DEPTH}
 * levels) and keeps the most visited nodes, at most {@link #DEFAULT_NODE_CAP}.
 *
 * <p>Verification is that of {@link TreeDecoding}: the target scores [the context's last token as the
 * root, every node] in ONE forward pass with a tree attention mask, {@link TreeVerifier} picks a path
 * (greedy: the target's argmax; sampling: {@link TreeVerifier#sampleIid} with {@code q == null}), and the
 * target's cache keeps only that path ({@link KvSequence#compact}). Why it is exact: the tree is a fixed
 * set of children chosen without looking at the target, so greedy verification emits exactly the
 * target's argmax at every position (output bit-identical to plain greedy decoding) and the one-hot
 * verification of {@link TreeVerifier} keeps the target's distribution for any such tree. Tokens go
 * through the same {@link RequestState} as plain decoding, so EOS, stop strings, max tokens and logprobs
 * behave identically; a tree is never deeper than the remaining context or token budget, nor larger than
 * the target's KV cache has free rows for. An empty table gives empty trees: every round is a plain step.
 *
 * <p>Runs as a {@link TreeTask} in the step protocol: the search runs as a round's step begins, so once
 * the prompt is prefilled every step is a whole round, its tree verified in the step's one target pass.
 */
public final class AdedDecoding implements DecodingStrategy {
    /** Search iterations per round. */
    public static final int DEFAULT_ITERATIONS = 150;
    /** Deepest level of a draft tree. */
    public static final int DEFAULT_MAX_DEPTH = 4;
    /** Most nodes kept in a draft tree. */
    public static final int DEFAULT_NODE_CAP = 64;

    private final LanguageModel target;
    private final TrigramTable corpus;
    private final int iterations;
    private final int maxDepth;
    private final int nodeCap;
    private final TreeDecoding.RoundObserver observer;

    /**
     * {@code iterations} (≥ 1) search iterations per round, trees of at most {@code maxDepth} (≥ 1) levels
     * and {@code nodeCap} (≥ 1) nodes. {@code corpus} is only read: each generation works on its own copy.
     */
    public AdedDecoding(LanguageModel target, TrigramTable corpus, int iterations, int maxDepth, int nodeCap) {
        this(target, corpus, iterations, maxDepth, nodeCap, null);
    }

    /** {@value #DEFAULT_ITERATIONS} iterations, depth {@value #DEFAULT_MAX_DEPTH}, at most {@value #DEFAULT_NODE_CAP} nodes. */
    public AdedDecoding(LanguageModel target, TrigramTable corpus) {
        this(target, corpus, DEFAULT_ITERATIONS, DEFAULT_MAX_DEPTH, DEFAULT_NODE_CAP);
    }

    private AdedDecoding(LanguageModel target, TrigramTable corpus, int iterations, int maxDepth, int nodeCap,
                         TreeDecoding.RoundObserver observer) {
        if (iterations < 1) {
            throw new IllegalArgumentException("the search needs at least 1 iteration per round, but got " + iterations + ".");
        }
        if (maxDepth < 1) {
            throw new IllegalArgumentException("the tree's depth must be at least 1, but was " + maxDepth + ".");
        }
        if (nodeCap < 1) {
            throw new IllegalArgumentException("the tree's node cap must be at least 1, but was " + nodeCap + ".");
        }
        this.target = target;
        this.corpus = corpus;
        this.iterations = iterations;
        this.maxDepth = maxDepth;
        this.nodeCap = nodeCap;
        this.observer = observer;
    }

    AdedDecoding withObserver(TreeDecoding.RoundObserver observer) {
        return new AdedDecoding(target, corpus, iterations, maxDepth, nodeCap, observer);
    }

    /**
     * A {@link TreeTask} with an {@link AdedDrafter} over this generation's copy of the table: the table
     * observes the prompt and then each round's accepted tokens before the round's search.
     */
    @Override
    public DecodingTask task(GenerationRequest request) {
        return new TreeTask(name(), target, new AdedDrafter(corpus.copy(), iterations), maxDepth, nodeCap, observer,
                request);
    }

    @Override
    public String name() {
        return "aded";
    }

    public int iterations() {
        return iterations;
    }

    public int maxDepth() {
        return maxDepth;
    }

    public int nodeCap() {
        return nodeCap;
    }
}
