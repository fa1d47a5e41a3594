package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * PEARL's rounds ({@link PearlDecoding}) as a {@link DecodingTask}. Invariant between rounds, as in
 * {@link ChainTask}: the target's KV sequence holds the context without its last token; the pending
 * tokens (drafted ahead in the previous round, not yet verified) follow the context.
 *
 * <p>A round's steps:
 * <ul>
 *   <li>Pre-verify (no pending tokens): draft passes only, until the draft has written one token, the
 *   pending one. The first round's pass feeds the prompt (in chunks of the prefill budget) in the steps of
 *   the target's prefill.</li>
 *   <li>The round step: one target pass scores {@code [last context token, pending tokens]} while the
 *   draft model writes k tokens after the pending ones, one pass each (at the same time when it has a
 *   backend of its own); {@link #endStep} verifies the pending tokens and the first token drafted
 *   meanwhile, then keeps the rest of that draft as the next round's pending tokens, or rolls back.</li>
 * </ul>
 * The target's and the draft's passes of a step may run on two threads: the target side writes only the
 * verification's logits and timing, the draft side only the drafter (over its own copy of the context)
 * and its timings; endStep merges them.
 *
 * <p>The adaptive γ is the one plan that does not follow from logits alone: endStep feeds the pass times
 * that {@link #advance} receives to {@link PearlDecoding.CostRatio}, so a sampled request's round
 * boundaries, and its sample, depend on timing (greedy output does not). A fixed γ is reproducible.
 */
final class PearlTask implements DecodingTask {
    private enum Phase {
        /** The last round is over: the next step opens one. */
        BETWEEN,
        /** The draft writes the one token a pre-verifying round checks. */
        PRE_VERIFY,
        /** The pending tokens are known: the round step comes once the target's prefill is done. */
        READY,
        /** This step verifies the pending tokens while the draft writes k more. */
        ROUND
    }

    private final String method;
    private final LanguageModel target;
    private final LanguageModel draftModel;
    private final DrafterModel drafter;
    private final int draftLength;
    private final boolean adaptive;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private final DecodeStats.Recorder stats;
    private final PearlDecoding.CostRatio cost;
    private final int targetContext;
    private RequestState state;

    // Target prefill: the prompt without its last token.
    private int prefilled;
    private int prefillPlanned;

    // The round in progress.
    private Phase phase = Phase.BETWEEN;
    private long roundStart;
    private int length;          // context length at the round's start
    private int emittable;       // tokens the round may still emit (budget and target context)
    private Drafter.Draft pending = Drafter.Draft.EMPTY;
    private int k;               // tokens the round step drafts ahead
    private int[] context;       // the context, the pending tokens, then room for the first token drafted ahead

    // Target side of a round step.
    private boolean verifyPlanned;
    private VerificationRows logits;
    private long verifyStart;
    private long verifyEnd;

    // Draft side: the passes of the proposal in progress.
    private boolean draftPlanned;
    private long draftNanos;
    private final List<long[]> draftSpans = new ArrayList<>(); // {start, end} of each pass of the round step

    PearlTask(String method, LanguageModel target, LanguageModel draft, int draftLength, boolean adaptive,
              GenerationRequest request) {
        this.method = method;
        this.target = target;
        this.draftModel = draft;
        this.drafter = new DrafterModel(draft, 0);
        this.draftLength = draftLength;
        this.adaptive = adaptive;
        this.request = request;
        this.promptIds = new Generator(target).promptIds(request);
        this.eos = Generator.eosTokenIds(target, request);
        this.stats = new DecodeStats.Recorder(method);
        this.cost = new PearlDecoding.CostRatio(draftLength);
        this.targetContext = target.config().maxContext();
    }

    @Override
    public String method() {
        return method;
    }

    @Override
    public List<LanguageModel> models() {
        return draftModel == target ? List.of(target) : List.of(target, draftModel);
    }

    @Override
    public int blocksNeeded(LanguageModel model) {
        // The target appends up to γ pending tokens past the context; the draft those and up to γ after them.
        int gamma = adaptive ? Math.max(draftLength, PearlDecoding.MAX_ADAPTIVE_LENGTH) : draftLength;
        int blocks = Tasks.blocks(model, promptIds.length, request.maxTokens(), 2 * gamma);
        return draftModel == target ? 2 * blocks : blocks; // two sequences in one cache
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        state = new RequestState(target, request, promptIds, eos, kv.newSequence(target));
        drafter.start(kv);
        prefilled = promptIds.length <= 1 ? promptIds.length - 1 : 0;
    }

    private boolean prefillDone() {
        return prefilled >= promptIds.length - 1;
    }

    @Override
    public void beginStep() {
        verifyPlanned = false;
        logits = null;
        draftSpans.clear();
        if (state.finished()) {
            return;
        }
        if (phase == Phase.BETWEEN) {
            openRound();
        }
        if (phase == Phase.READY && prefillDone()) {
            planRoundStep();
        }
    }

    /** Decides whether the round pre-verifies: no pending tokens, and room for one besides the target's own. */
    private void openRound() {
        roundStart = System.nanoTime();
        length = state.contextLength();
        // At most min(remaining, room) tokens may still be emitted, one of them the target's own.
        emittable = Math.min(request.maxTokens() - state.generated(), targetContext - length);
        pending = prefix(pending, Math.max(0, emittable - 1));
        if (pending.tokens().length == 0 && emittable > 1 && drafter.room(length) > 0) {
            drafter.begin(state.context(1), length, 1, request, stats);
            draftNanos = 0;
            phase = Phase.PRE_VERIFY;
        } else {
            phase = Phase.READY;
        }
    }

    /** γ (fixed, or from the cost ratio measured so far) and the k tokens the draft writes during the verification. */
    private void planRoundStep() {
        int m = pending.tokens().length;
        int gamma = adaptive ? cost.gamma() : draftLength;
        k = Math.max(0, Math.min(Math.min(gamma, emittable - m - 1), drafter.room(length + m)));
        context = state.context(m + 1 + k);
        System.arraycopy(pending.tokens(), 0, context, length, m);
        if (k > 0) {
            // The drafter writes its tokens into its own copy: the target side reads this one meanwhile.
            drafter.begin(context.clone(), length + m, k, request, stats);
            draftNanos = 0;
        }
        phase = Phase.ROUND;
    }

    private boolean drafting() {
        return phase == Phase.PRE_VERIFY || phase == Phase.ROUND && k > 0;
    }

    @Override
    public List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill) {
        List<Batch.Entry> out = new ArrayList<>(2);
        if (model == target) {
            if (!prefillDone()) {
                if (prefillPlanned == 0) {
                    int n = prefill.take(promptIds.length - 1 - prefilled);
                    if (n > 0) {
                        prefillPlanned = n;
                        // Nobody reads this pass's logits (the verification feeds the last token and reads after it).
                        out.add(Batch.Entry.continuation(state.kv(), Arrays.copyOfRange(promptIds, prefilled, prefilled + n))
                                .withLogitRows());
                    }
                }
            } else if (phase == Phase.ROUND && !verifyPlanned) {
                verifyPlanned = true;
                int[] tokens = pending.tokens();
                int[] rows = new int[tokens.length + 1];
                rows[0] = context[length - 1];
                System.arraycopy(tokens, 0, rows, 1, tokens.length);
                out.add(VerificationRows.ask(Batch.Entry.continuation(state.kv(), rows), state.needsOnlyGreedyToken()));
            }
        }
        if (model == draftModel && drafting() && !drafter.complete()) {
            Batch.Entry e = drafter.next(prefill);
            if (e != null) {
                draftPlanned = true;
                out.add(e);
            }
        }
        return out;
    }

    @Override
    public void advance(LanguageModel model, ForwardResult result, long nanos) {
        int entry = 0;
        if (model == target) {
            if (prefillPlanned > 0) {
                prefilled += prefillPlanned;
                prefillPlanned = 0;
                stats.targetPass();
                state.addPrefillNanos(nanos);
                entry++;
            } else if (verifyPlanned && logits == null) {
                verifyStart = System.nanoTime() - nanos;
                stats.targetPass();
                logits = VerificationRows.of(result);
                verifyEnd = System.nanoTime();
                entry++;
            }
        }
        if (model == draftModel && draftPlanned) {
            draftPlanned = false;
            long t0 = System.nanoTime();
            drafter.advance(result.slice(entry, 1));
            long end = System.nanoTime();
            draftNanos += nanos + end - t0;
            if (phase == Phase.ROUND) {
                draftSpans.add(new long[] {t0 - nanos, end});
            }
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        if (phase == Phase.PRE_VERIFY) {
            if (drafter.complete()) {
                pending = drafter.draft();
                stats.addDraftNanos(draftNanos);
                cost.draft(draftNanos, 1);
                phase = Phase.READY;
            }
            return List.of();
        }
        if (phase != Phase.ROUND) {
            return List.of();
        }
        if (logits == null || k > 0 && !drafter.complete()) {
            throw new IllegalStateException("a PEARL round step ended without its verification or its draft");
        }
        long v0 = System.nanoTime();
        Drafter.Draft ahead = k > 0 ? drafter.draft() : Drafter.Draft.EMPTY;
        long verifyNanos = verifyEnd - verifyStart;
        cost.target(verifyNanos);
        if (k > 0) {
            cost.draft(draftNanos, k);
            stats.addDraftNanos(unhidden(draftSpans, verifyStart, verifyEnd));
        }
        SamplingParams sp = request.sampling();
        int m = pending.tokens().length;
        // The chain checked now: the pending tokens, then (post-verify) the first token drafted meanwhile.
        boolean openEnded = ahead.tokens().length > 0;
        int n = m + (openEnded ? 1 : 0);
        int[] chain = Arrays.copyOf(pending.tokens(), n);
        double[][] q = sp.isGreedy() ? null : new double[n][];
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
                request.streamId(), ChainVerifier.SampledRule.EXACT);
        int accepted = verdict == null ? n : verdict.accepted();
        stats.verification(n, accepted);

        // The target holds length + m positions; keep the context through the last accepted pending token.
        state.kv().truncate(length + Math.min(accepted, m));
        List<TokenEvent> events = new ArrayList<>(accepted + 1);
        for (int i = 0; i < accepted && !state.finished(); i++) {
            events.add(state.acceptToken(chain[i], logits.logits(i)));
        }
        if (verdict != null && !state.finished()) {
            events.add(state.acceptToken(verdict.next(), logits.logits(accepted)));
        }
        // Post-verify goes on with the rest of what the draft wrote; after a rejection, pre-verify.
        pending = verdict == null ? suffix(ahead, 1) : Drafter.Draft.EMPTY;
        stats.addVerifyNanos(verifyNanos + System.nanoTime() - v0);
        state.addDecodeStep(System.nanoTime() - roundStart);
        logits = null;
        phase = Phase.BETWEEN;
        if (state.finished()) {
            drafter.close();
        }
        return events;
    }

    /** The draft time of a round step that the verification pass did not hide: each pass's time outside it. */
    private static long unhidden(List<long[]> spans, long verifyStart, long verifyEnd) {
        long total = 0;
        for (long[] s : spans) {
            long hidden = Math.max(0, Math.min(s[1], verifyEnd) - Math.max(s[0], verifyStart));
            total += s[1] - s[0] - hidden;
        }
        return total;
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

    @Override
    public boolean finished() {
        return state != null && state.finished();
    }

    @Override
    public GenerationResult result() {
        GenerationResult r = state.result();
        return r.withDecodeStats(stats.build(r.generatedIds().length));
    }

    @Override
    public void end(FinishReason reason) {
        state.end(reason);
        drafter.close();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        drafter.close();
    }
}
