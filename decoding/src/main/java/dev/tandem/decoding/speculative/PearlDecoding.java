package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;

/**
 * PEARL (Liu et al. 2024, "Parallel speculative decoding with adaptive draft length"): the draft model
 * keeps drafting while the target verifies, so neither waits for the other.
 *
 * <p>Each round the target scores [last context token, pending draft tokens] in one pass while the draft
 * model, in the same step, drafts γ more tokens after the pending ones (assuming they will be accepted).
 * <ul>
 *   <li><b>Pre-verify</b> (no pending tokens, after a rejection or at the start): the draft first writes
 *   one token alone (a step of its own); the target then checks that one token while the draft writes the
 *   next γ.</li>
 *   <li><b>Post-verify</b> (pending tokens): the target checks them while the draft writes the next γ.</li>
 * </ul>
 * The target's last row checks the first token the draft wrote meanwhile, instead of drawing a bonus
 * token: if the pending tokens and that one are all accepted, the draft's other new tokens become the next
 * round's pending tokens (stay in post-verify); otherwise the target's correction is emitted, both caches
 * roll back, and the next round pre-verifies. When the draft wrote nothing meanwhile (the end of the
 * budget), the round ends with the target's bonus token as in {@link SpeculativeDecoding}. The steps are
 * {@link PearlTask}'s.
 *
 * <p>Exactness: the emitted tokens are a chain verified token by token with {@link ChainVerifier}'s rules
 * (greedy: accept while the target's argmax agrees; sampling: ratio test, residual on rejection), split
 * across passes. Every draft token was drawn from the draft's q given exactly the prefix it is verified
 * after, and the random numbers are keyed by (seed, stream, position, purpose), never by thread or call
 * order, so greedy output is bit-identical to plain greedy decoding of the target and sampled output
 * follows the target's distribution. Sampled output is reproducible for a fixed γ; with the adaptive γ
 * (measured from the pass times) the round boundaries, and so the realised sample, can differ between runs.
 *
 * <p>Parallelism needs the two models on two backends: load the draft with its own
 * ({@code ModelLoader.Options.withThreads}), and a step runs the target's pass and the draft's passes at
 * the same time. If both models share one backend, their passes take turns on its thread pool: still
 * exact, only not parallel.
 */
public final class PearlDecoding implements DecodingStrategy {
    /** Draft tokens written per target pass when none is given: the γ the adaptive mode starts from. */
    public static final int DEFAULT_DRAFT_LENGTH = 4;
    /** The longest γ the adaptive mode picks. */
    public static final int MAX_ADAPTIVE_LENGTH = 8;

    private final LanguageModel target;
    private final LanguageModel draft;
    private final int draftLength;
    private final boolean adaptive;

    /**
     * Drafts {@code draftLength} (≥ 1) tokens during each target pass.
     *
     * @throws TandemException if the draft's vocabulary differs from the target's
     */
    public PearlDecoding(LanguageModel target, LanguageModel draft, int draftLength) {
        this(target, draft, draftLength, false);
    }

    private PearlDecoding(LanguageModel target, LanguageModel draft, int draftLength, boolean adaptive) {
        if (draftLength < 1) {
            throw new IllegalArgumentException("the draft length must be at least 1, but was " + draftLength + ".");
        }
        SpeculativeDecoding.requireSameVocabulary(target, draft);
        this.target = target;
        this.draft = draft;
        this.draftLength = draftLength;
        this.adaptive = adaptive;
    }

    /**
     * γ from the measured cost ratio, as PEARL sets it: the time of a target pass over the time of a draft
     * pass (moving averages over this generation), rounded, in [1, {@value #MAX_ADAPTIVE_LENGTH}]; the first
     * round uses {@value #DEFAULT_DRAFT_LENGTH}. The draft then writes about as long as the target verifies.
     */
    public static PearlDecoding adaptive(LanguageModel target, LanguageModel draft) {
        return new PearlDecoding(target, draft, DEFAULT_DRAFT_LENGTH, true);
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new PearlTask(name(), target, draft, draftLength, adaptive, request);
    }

    @Override
    public String name() {
        return "pearl";
    }

    /** The fixed γ, or the first round's γ when {@link #isAdaptive()}. */
    public int draftLength() {
        return draftLength;
    }

    public boolean isAdaptive() {
        return adaptive;
    }

    /**
     * PEARL's γ: target pass time over draft pass time, from exponential moving averages (weight 1/4 on
     * the newest sample). Fed by the task's endStep with the pass times its steps measured.
     */
    static final class CostRatio {
        private final int initial;
        private double targetNanos = Double.NaN;
        private double draftNanosPerPass = Double.NaN;

        CostRatio(int initial) {
            this.initial = initial;
        }

        void target(long nanos) {
            targetNanos = Double.isNaN(targetNanos) ? nanos : 0.75 * targetNanos + 0.25 * nanos;
        }

        void draft(long nanos, int passes) {
            double perPass = (double) nanos / passes;
            draftNanosPerPass = Double.isNaN(draftNanosPerPass) ? perPass : 0.75 * draftNanosPerPass + 0.25 * perPass;
        }

        int gamma() {
            if (Double.isNaN(targetNanos) || Double.isNaN(draftNanosPerPass) || draftNanosPerPass <= 0) {
                return initial;
            }
            long g = Math.round(targetNanos / draftNanosPerPass);
            return (int) Math.max(1, Math.min(MAX_ADAPTIVE_LENGTH, g));
        }
    }
}
