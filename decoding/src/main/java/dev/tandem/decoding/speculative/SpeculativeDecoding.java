package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.SharedVocabulary;
import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;

/**
 * Draft-model speculative decoding (Leviathan et al.): per round the draft model proposes γ tokens, the
 * target scores [last accepted token, d1..dγ] in one forward pass, {@link ChainVerifier} keeps a prefix
 * and adds the target's correction or bonus token, and both KV caches roll back to the accepted length.
 * Greedy output is bit-identical to plain greedy decoding of the target; sampled output follows the
 * target's distribution exactly. γ is fixed, or adaptive ({@link #adaptive}): drafting stops when the
 * draft's top probability falls under a threshold. Never drafts past the remaining context of either
 * model, the remaining token budget, or an accepted EOS or stop string.
 */
public final class SpeculativeDecoding implements DecodingStrategy {
    /** Default top-probability threshold of adaptive drafting. */
    public static final double DEFAULT_THRESHOLD = 0.4;
    /** Default longest draft of adaptive drafting. */
    public static final int DEFAULT_MAX_AUTO_LENGTH = 8;

    private final LanguageModel target;
    private final LanguageModel draft;
    private final int draftLength;
    private final double threshold;

    /** Fixed draft length {@code draftLength} (≥ 1). */
    public SpeculativeDecoding(LanguageModel target, LanguageModel draft, int draftLength) {
        this(target, draft, draftLength, 0);
    }

    /**
     * Drafts up to {@code maxDraftLength} (≥ 1) tokens per round, stopping early when the draft's top
     * probability at a step is under {@code threshold} (in [0, 1]; 0 = always the full length).
     *
     * @throws TandemException if the draft's vocabulary differs from the target's
     */
    public SpeculativeDecoding(LanguageModel target, LanguageModel draft, int maxDraftLength, double threshold) {
        if (maxDraftLength < 1) {
            throw new IllegalArgumentException("the draft length must be at least 1, but was " + maxDraftLength + ".");
        }
        if (!(threshold >= 0 && threshold <= 1)) {
            throw new IllegalArgumentException("the draft threshold must be in [0, 1], but was " + threshold + ".");
        }
        requireSameVocabulary(target, draft);
        this.target = target;
        this.draft = draft;
        this.draftLength = maxDraftLength;
        this.threshold = threshold;
    }

    /** Adaptive draft length ({@code auto}): threshold {@value #DEFAULT_THRESHOLD}, at most {@value #DEFAULT_MAX_AUTO_LENGTH}. */
    public static SpeculativeDecoding adaptive(LanguageModel target, LanguageModel draft) {
        return new SpeculativeDecoding(target, draft, DEFAULT_MAX_AUTO_LENGTH, DEFAULT_THRESHOLD);
    }

    /** This strategy with another adaptive threshold (0 = fixed length). */
    public SpeculativeDecoding withThreshold(double threshold) {
        return new SpeculativeDecoding(target, draft, draftLength, threshold);
    }

    @Override
    public String name() {
        return "speculative";
    }

    public int draftLength() {
        return draftLength;
    }

    public double threshold() {
        return threshold;
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new ChainTask(name(), target, new DrafterModel(draft, threshold), draftLength, request);
    }

    /** @throws TandemException unless the draft's token ids mean what the target's do ({@link SharedVocabulary}) */
    static void requireSameVocabulary(LanguageModel target, LanguageModel draft) {
        SharedVocabulary.require(target, "target", draft, "draft", "a draft must share the target's tokenizer");
    }

    /**
     * Establishes the draft-and-verify loops' invariant: the prompt without its last token goes into the
     * target's cache, so that every round's verification pass starts by feeding the last context token.
     */
    static void prefillAllButLast(LanguageModel target, RequestState state, DecodeStats.Recorder stats) {
        int[] prompt = state.promptIds();
        if (prompt.length > 1) {
            long t0 = System.nanoTime();
            // Nobody reads this pass's logits (the next pass feeds the last token and reads after it): no LM head.
            target.forward(Batch.of(Batch.Entry.continuation(state.kv(), Arrays.copyOf(prompt, prompt.length - 1))
                    .withLogitRows()));
            stats.targetPass();
            state.addPrefillNanos(System.nanoTime() - t0);
        }
    }

    /**
     * How many tokens a round may draft (a chain's length, a tree's depth): a round emits at most that
     * many plus one, so it stays under the tokens still wanted, the target's remaining context
     * ({@code targetRoom}) and the drafter's ({@code draftRoom}).
     */
    static int roundLength(int wanted, int remaining, int targetRoom, int draftRoom) {
        return Math.max(0, Math.min(Math.min(wanted, remaining - 1), Math.min(targetRoom, draftRoom)));
    }

    /**
     * Verifies {@code chain} (drawn from {@code q}, or null when deterministic) against the target's raw
     * {@code logits} (row i predicts chain[i]; row n the token after), each row processed with
     * {@code context[0, length + i)} as its context ({@code context} holds the chain from {@code length} on):
     * greedy with {@link ChainVerifier#greedy}, sampling with {@code rule} ({@link ChainVerifier.SampledRule#EXACT}:
     * {@link ChainVerifier#sample}). {@code openEnded}: there is no row after the chain, and a fully accepted chain
     * returns null (the OpenEnded verifiers, which only the exact rule has).
     */
    static Verdict verifyChain(int[] chain, double[][] q, VerificationRows rows, boolean openEnded, SamplingParams sp,
                               int[] context, int length, long stream, ChainVerifier.SampledRule rule) {
        if (rows.greedyOnly()) {
            // Only the greedy tokens came back: the pass found them needsOnlyGreedyToken (no processor changes an argmax).
            return openEnded ? ChainVerifier.greedyOpenEndedFromArgmax(chain, rows::greedyToken)
                    : ChainVerifier.greedyFromArgmax(chain, rows::greedyToken);
        }
        return verifyChain(chain, q, rows.allLogits(), openEnded, sp, context, length, stream, rule);
    }

    static Verdict verifyChain(int[] chain, double[][] q, float[][] logits, boolean openEnded, SamplingParams sp,
                               int[] context, int length, long stream, ChainVerifier.SampledRule rule) {
        if (openEnded && rule != ChainVerifier.SampledRule.EXACT) {
            throw new IllegalArgumentException("open-ended chains are verified by exact speculative sampling only.");
        }
        int rows = openEnded ? chain.length : chain.length + 1;
        if (sp.isGreedy()) {
            float[][] processed = new float[rows][];
            for (int i = 0; i < rows; i++) {
                processed[i] = logits[i].clone();
                LogitsProcessors.apply(processed[i], sp, context, length + i);
            }
            return openEnded ? ChainVerifier.greedyOpenEnded(chain, processed) : ChainVerifier.greedy(chain, processed);
        }
        double[][] p = new double[rows][];
        for (int i = 0; i < rows; i++) {
            p[i] = Sampler.distribution(logits[i], sp, context, length + i);
        }
        return openEnded ? ChainVerifier.sampleOpenEnded(chain, p, q, sp.seed(), stream, length)
                : rule.verify(chain, p, q, sp.seed(), stream, length);
    }

}
