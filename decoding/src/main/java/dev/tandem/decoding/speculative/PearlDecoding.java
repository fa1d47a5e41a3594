package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Consumer;

/**
 * PEARL (Liu et al. 2024, "Parallel speculative decoding with adaptive draft length"): the draft model
 * keeps drafting while the target verifies, on another thread, so neither waits for the other.
 *
 * <p>Each round the target scores [last context token, pending draft tokens] in one pass while the draft
 * model, at the same time, drafts γ more tokens after the pending ones (assuming they will be accepted).
 * <ul>
 *   <li><b>Pre-verify</b> (no pending tokens, after a rejection or at the start): the draft first writes
 *   one token alone; the target then checks that one token while the draft writes the next γ.</li>
 *   <li><b>Post-verify</b> (pending tokens): the target checks them while the draft writes the next γ.</li>
 * </ul>
 * The target's last row checks the first token the draft wrote meanwhile, instead of drawing a bonus
 * token: if the pending tokens and that one are all accepted, the draft's other new tokens become the next
 * round's pending tokens (stay in post-verify); otherwise the target's correction is emitted, both caches
 * roll back, and the next round pre-verifies. When the draft wrote nothing meanwhile (the end of the
 * budget), the round ends with the target's bonus token as in {@link SpeculativeDecoding}.
 *
 * <p>Exactness: the emitted tokens are a chain verified token by token with {@link ChainVerifier}'s rules
 * (greedy: accept while the target's argmax agrees; sampling: ratio test, residual on rejection), split
 * across passes. Every draft token was drawn from the draft's q given exactly the prefix it is verified
 * after, and the random numbers are keyed by (seed, stream, position, purpose), never by thread or call
 * order, so greedy output is bit-identical to plain greedy decoding of the target and sampled output
 * follows the target's distribution. Sampled output is reproducible for a fixed γ; with the adaptive γ
 * (measured from timings) the round boundaries, and so the realised sample, can differ between runs.
 *
 * <p>Parallelism needs two thread groups: load the draft with its own backend
 * ({@code ModelLoader.Options.withThreads}). If both models share one backend, their passes take turns
 * on its thread pool: still exact, only not parallel.
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

    /** Not yet a step machine: runs only alone, through {@link #generate}. */
    @Override
    public DecodingTask task(GenerationRequest request) {
        throw new UnsupportedOperationException(name() + " does not run as steps yet");
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

    /** Invariant between rounds, as in {@link SpeculativeDecoding}: the target's cache holds the context but its last token. */
    @Override
    public GenerationResult generate(GenerationRequest request, Consumer<TokenEvent> listener) {
        DecodeStats.Recorder stats = new DecodeStats.Recorder(name());
        RequestState state = RequestState.start(target, request);
        SamplingParams sp = request.sampling();
        boolean greedy = sp.isGreedy();
        int targetContext = target.config().maxContext();
        CostRatio cost = new CostRatio(draftLength);
        ExecutorService draftThread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "tandem-pearl-draft");
            t.setDaemon(true);
            return t;
        });
        // While the target runs, the draft thread touches only the drafter, the cost ratio (synchronized)
        // and the recorder's draft-pass count, which this thread does not touch until the result is back.
        DrafterModel drafter = new DrafterModel(draft, 0);
        Future<Drafter.Draft> running = null;
        try {
            SpeculativeDecoding.prefillAllButLast(target, state, stats);
            Drafter.Draft pending = Drafter.Draft.EMPTY;
            while (!state.finished()) {
                long roundStart = System.nanoTime();
                int length = state.contextLength();
                int remaining = request.maxTokens() - state.generated();
                // At most min(remaining, room) tokens may still be emitted, one of them the target's own.
                int emittable = Math.min(remaining, targetContext - length);
                pending = prefix(pending, Math.max(0, emittable - 1));
                if (pending.tokens().length == 0 && emittable > 1 && drafter.room(length) > 0) {
                    long t0 = System.nanoTime();
                    pending = drafter.propose(state.context(1), length, 1, request, stats);
                    long spent = System.nanoTime() - t0;
                    stats.addDraftNanos(spent);
                    cost.draft(spent, 1);
                }
                int m = pending.tokens().length;
                int gamma = adaptive ? cost.gamma() : draftLength;
                int k = Math.max(0, Math.min(Math.min(gamma, emittable - m - 1), drafter.room(length + m)));

                int[] context = state.context(m + 1 + k);
                System.arraycopy(pending.tokens(), 0, context, length, m);
                if (k > 0) {
                    int[] draftContext = context.clone();
                    running = draftThread.submit(() -> {
                        long t0 = System.nanoTime();
                        Drafter.Draft d = drafter.propose(draftContext, length + m, k, request, stats);
                        cost.draft(System.nanoTime() - t0, k);
                        return d;
                    });
                }

                long t0 = System.nanoTime();
                int[] rows = new int[m + 1];
                rows[0] = context[length - 1];
                System.arraycopy(pending.tokens(), 0, rows, 1, m);
                ForwardResult fr = target.forward(Batch.of(Batch.Entry.continuationAllLogits(state.kv(), rows)));
                stats.targetPass();
                float[][] logits = new float[m + 1][];
                for (int i = 0; i <= m; i++) {
                    logits[i] = fr.logits(0, i);
                }
                long targetNanos = System.nanoTime() - t0;
                cost.target(targetNanos);
                stats.addVerifyNanos(targetNanos);

                long w0 = System.nanoTime();
                Drafter.Draft ahead = running == null ? Drafter.Draft.EMPTY : await(running);
                running = null;
                stats.addDraftNanos(System.nanoTime() - w0);

                long v0 = System.nanoTime();
                // The chain checked now: the pending tokens, then (post-verify) the first token drafted meanwhile.
                boolean openEnded = ahead.tokens().length > 0;
                int n = m + (openEnded ? 1 : 0);
                int[] chain = Arrays.copyOf(pending.tokens(), n);
                double[][] q = greedy ? null : new double[n][];
                if (q != null && m > 0) {
                    System.arraycopy(pending.q(), 0, q, 0, m);
                }
                if (openEnded) {
                    chain[m] = ahead.tokens()[0];
                    context[length + m] = chain[m];
                    if (q != null) {
                        q[m] = ahead.q()[0];
                    }
                }
                Verdict verdict = SpeculativeDecoding.verifyChain(chain, q, logits, openEnded, sp, context, length,
                        request.streamId());
                int accepted = verdict == null ? n : verdict.accepted();
                stats.verification(n, accepted);

                // The target holds length + m positions; keep the context through the last accepted pending token.
                state.kv().truncate(length + Math.min(accepted, m));
                for (int i = 0; i < accepted && !state.finished(); i++) {
                    listener.accept(state.acceptToken(chain[i], logits[i]));
                }
                if (verdict != null && !state.finished()) {
                    listener.accept(state.acceptToken(verdict.next(), logits[accepted]));
                }
                // Post-verify goes on with the rest of what the draft wrote; after a rejection, pre-verify.
                pending = verdict == null ? suffix(ahead, 1) : Drafter.Draft.EMPTY;
                stats.addVerifyNanos(System.nanoTime() - v0);
                state.addDecodeStep(System.nanoTime() - roundStart);
            }
            return state.result().withDecodeStats(stats.build(state.result().generatedIds().length));
        } catch (RuntimeException | Error e) {
            state.abandon();
            throw e;
        } finally {
            if (running != null) {
                // Wait for the draft thread (at most γ draft passes) before its cache is closed under it.
                try {
                    running.get();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } catch (ExecutionException ignored) {
                    // the generation already failed; the drafter's own failure adds nothing
                }
            }
            draftThread.shutdownNow();
            drafter.close();
        }
    }

    /** The draft thread's result, its failure rethrown as it was thrown. */
    private static Drafter.Draft await(Future<Drafter.Draft> future) {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new TandemException("PEARL decoding was interrupted while waiting for the draft model.");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new TandemException("the draft model failed: " + e.getCause() + ".");
        }
    }

    private static Drafter.Draft prefix(Drafter.Draft d, int n) {
        if (d.tokens().length <= n) {
            return d;
        }
        return new Drafter.Draft(Arrays.copyOf(d.tokens(), n), d.q() == null ? null : Arrays.copyOf(d.q(), n));
    }

    private static Drafter.Draft suffix(Drafter.Draft d, int from) {
        int n = d.tokens().length;
        return new Drafter.Draft(Arrays.copyOfRange(d.tokens(), from, n),
                d.q() == null ? null : Arrays.copyOfRange(d.q(), from, n));
    }

    /**
     * PEARL's γ: target pass time over draft pass time, from exponential moving averages (weight 1/4 on
     * the newest sample). Written by both threads, hence synchronized.
     */
    static final class CostRatio {
        private final int initial;
        private double targetNanos = Double.NaN;
        private double draftNanosPerPass = Double.NaN;

        CostRatio(int initial) {
            this.initial = initial;
        }

        synchronized void target(long nanos) {
            targetNanos = Double.isNaN(targetNanos) ? nanos : 0.75 * targetNanos + 0.25 * nanos;
        }

        synchronized void draft(long nanos, int passes) {
            double perPass = (double) nanos / passes;
            draftNanosPerPass = Double.isNaN(draftNanosPerPass) ? perPass : 0.75 * draftNanosPerPass + 0.25 * perPass;
        }

        synchronized int gamma() {
            if (Double.isNaN(targetNanos) || Double.isNaN(draftNanosPerPass) || draftNanosPerPass <= 0) {
                return initial;
            }
            long g = Math.round(targetNanos / draftNanosPerPass);
            return (int) Math.max(1, Math.min(MAX_ADAPTIVE_LENGTH, g));
        }
    }
}
