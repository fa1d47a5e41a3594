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
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The draft-and-verify loop of the chain methods (speculative, auto, ngram) as a {@link DecodingTask}.
 * Invariant between rounds: the target's KV sequence holds the context without its last token, which
 * the next verification pass feeds first.
 *
 * <p>A round: the {@link Drafter} proposes up to γ tokens (a draft model in passes of its own, one token a
 * pass, over as many steps' worth of passes as it needs; prompt lookup at once); in the first step that
 * begins with the proposal complete, the target scores {@code [last token, d1..dγ]} in one pass with
 * logits at every row, {@link ChainVerifier} decides (by exact speculative sampling, or by RAPID's nudged rule:
 * {@link ChainVerifier.SampledRule}), both caches roll back to the accepted length and the
 * accepted tokens (plus the correction or bonus token) are emitted. The first round's draft runs in the
 * same step as the target's prefill (they do not depend on each other). Where the greedy token alone decides
 * ({@link RequestState#needsOnlyGreedyToken}) the verification pass sends back each row's greedy token instead
 * of its logits ({@link VerificationRows}); where sampling takes a temperature alone on a device backend, the rows
 * stay on the device and it verifies there ({@link DeviceVerification}).
 */
final class ChainTask implements DecodingTask {
    private final String method;
    private final LanguageModel target;
    private final Drafter drafter;
    private final int draftLength;
    private final ChainVerifier.SampledRule rule;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private final DecodeStats.Recorder stats;
    private final int targetContext;
    private RequestState state;

    // Target prefill: the prompt without its last token.
    private int prefilled;
    private int prefillPlanned;

    // The round in progress.
    private boolean inRound;
    private long roundStart;
    private int length;          // context length at the round's start
    private int[] context;       // the context, with room for the draft after it
    private boolean draftReady;  // the proposal was complete when this step began: verify in this step
    private boolean verifyPlanned;
    private Drafter.Draft draft;
    private VerificationRows logits; // what the verification pass sent back for its rows
    private DeviceVerification device; // sampled verification where the logits are, or null (the host verifies)
    private long verifyNanos;

    ChainTask(String method, LanguageModel target, Drafter drafter, int draftLength, GenerationRequest request) {
        this(method, target, drafter, draftLength, request, ChainVerifier.SampledRule.EXACT);
    }

    /** A chain task whose sampled verdicts come from {@code rule} (greedy ones are always the target's argmax). */
    ChainTask(String method, LanguageModel target, Drafter drafter, int draftLength, GenerationRequest request,
              ChainVerifier.SampledRule rule) {
        this.method = method;
        this.target = target;
        this.drafter = drafter;
        this.draftLength = draftLength;
        this.rule = rule;
        this.request = request;
        try {
            this.promptIds = new Generator(target).promptIds(request);
            this.eos = Generator.eosTokenIds(target, request);
        } catch (RuntimeException | Error e) {
            drafter.close();
            throw e;
        }
        this.stats = new DecodeStats.Recorder(method);
        this.targetContext = target.config().maxContext();
    }

    @Override
    public String method() {
        return method;
    }

    @Override
    public List<LanguageModel> models() {
        return drafter.model() == null || drafter.model() == target ? List.of(target) : List.of(target, drafter.model());
    }

    @Override
    public int blocksNeeded(LanguageModel model) {
        // A verification appends the draft (γ rows) past the context; a draft model feeds up to γ − 1 past it.
        int blocks = model == target ? Tasks.blocks(target, promptIds.length, request.maxTokens(), draftLength + 1) : 0;
        // The draft's sequence, in the target's cache too when the draft is the target.
        return model == drafter.model() ? blocks + drafter.blocksNeeded(promptIds.length, request.maxTokens(), draftLength + 1)
                : blocks;
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        state = new RequestState(target, request, promptIds, eos, kv.newSequence(target));
        drafter.start(kv);
        // The device verifies by the exact rule only.
        device = rule == ChainVerifier.SampledRule.EXACT ? DeviceVerification.open(target, drafter, draftLength, request) : null;
        prefilled = promptIds.length <= 1 ? promptIds.length - 1 : 0;
    }

    private boolean prefillDone() {
        return prefilled >= promptIds.length - 1;
    }

    @Override
    public void beginStep() {
        verifyPlanned = false;
        logits = null;
        if (!inRound && !state.finished()) {
            startRound();
        }
        draftReady = inRound && drafter.complete();
    }

    private void startRound() {
        inRound = true;
        roundStart = System.nanoTime();
        length = state.contextLength();
        int remaining = request.maxTokens() - state.generated();
        int gamma = SpeculativeDecoding.roundLength(draftLength, remaining, targetContext - length - 1, drafter.room(length));
        context = state.context(gamma + 1);
        draft = null;
        if (gamma > 0) {
            drafter.begin(context, length, gamma, request, stats);
        } else {
            draft = Drafter.Draft.EMPTY;
        }
    }

    private boolean proposalComplete() {
        return draft != null || drafter.complete();
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
            } else if (inRound && !verifyPlanned && (draftReady || draft != null)) {
                verifyPlanned = true;
                if (draft == null) {
                    draft = drafter.draft();
                }
                int[] tokens = draft.tokens();
                System.arraycopy(tokens, 0, context, length, tokens.length);
                int[] rows = new int[tokens.length + 1];
                rows[0] = context[length - 1];
                System.arraycopy(tokens, 0, rows, 1, tokens.length);
                Batch.Entry pass = Batch.Entry.continuation(state.kv(), rows);
                out.add(device != null ? device.ask(pass) : VerificationRows.ask(pass, state.needsOnlyGreedyToken()));
            }
        }
        if (model == drafter.model() && inRound && draft == null && !draftReady) {
            Batch.Entry e = drafter.next(prefill);
            if (e != null) {
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
                stats.targetPass();
                logits = device != null ? VerificationRows.KEPT_ON_DEVICE : VerificationRows.of(result);
                verifyNanos = nanos;
                entry++;
            }
        }
        if (model == drafter.model() && entry < result.entries()) {
            long t0 = System.nanoTime();
            drafter.advance(result.slice(entry, 1));
            stats.addDraftNanos(nanos + System.nanoTime() - t0);
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        if (logits == null) {
            return List.of();
        }
        long t0 = System.nanoTime();
        int[] tokens = draft.tokens();
        int n = tokens.length;
        Verdict verdict = device != null ? device.verify(tokens, length, false)
                : SpeculativeDecoding.verifyChain(tokens, draft.q(), logits, false, request.sampling(), context, length,
                        request.streamId(), rule);
        int accepted = verdict.accepted();
        stats.verification(n, accepted);
        // The target now holds length + n positions; keep the context through the last accepted draft token.
        state.kv().truncate(length + accepted);
        List<TokenEvent> events = new ArrayList<>(accepted + 1);
        for (int i = 0; i < accepted && !state.finished(); i++) {
            events.add(state.acceptToken(tokens[i], logits.logits(i)));
        }
        if (!state.finished()) {
            events.add(state.acceptToken(verdict.next(), logits.logits(accepted)));
        }
        stats.addVerifyNanos(verifyNanos + System.nanoTime() - t0);
        state.addDecodeStep(System.nanoTime() - roundStart);
        logits = null;
        inRound = false;
        if (state.finished()) {
            release();
        }
        return events;
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
        release();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        release();
    }

    /** Frees what the task holds besides its target sequence: the drafter's, and the device rows of its verification. */
    private void release() {
        drafter.close();
        if (device != null) {
            device.close();
        }
    }
}
