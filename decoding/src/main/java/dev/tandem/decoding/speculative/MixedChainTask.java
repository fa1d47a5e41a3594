package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.mix.LogitMixDecoding;
import dev.tandem.runtime.LogitMix;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Speculative decoding whose target is a logit mix of views ({@link SpeculativeMixDecoding}). Invariant between
 * rounds: each view's KV sequence holds its sequence without its last token. A round: the {@link Drafter} proposes
 * up to γ tokens after the first view's context; in the first step that begins with the proposal complete, every view
 * scores {@code [its last token, d1..dγ]} in a pass of its model (the views of one model in one pass) with logits at
 * every row; row j of the views is mixed on the host with {@link LogitMix#apply} (what {@code Backend.mixLogits}
 * equals bit for bit), {@link ChainVerifier} verifies the chain against the mixed rows exactly as it verifies a
 * single target's, every view's cache rolls back to the accepted length, and the accepted tokens (plus the correction
 * or bonus token) go through the first view's {@link RequestState}. {@link DecodeStats}: {@code targetForwardPasses}
 * counts the first view's model's passes, {@code draftForwardPasses} the draft's and the other views' models' (a pass
 * once, however many of them it serves).
 */
final class MixedChainTask implements DecodingTask {
    private final String method;
    private final List<LogitMixDecoding.View> views;
    private final LogitMix mix;
    private final Drafter drafter;
    private final int draftLength;
    private final GenerationRequest request;
    private final int[][] prompts;
    private final List<LanguageModel> models;
    private final DecodeStats.Recorder stats;
    private RequestState state;
    private final dev.tandem.runtime.kv.KvSequence[] kvs;

    // Each view's prefill: its prompt without its last token.
    private final int[] prefilled;
    private final int[] prefillPlanned;

    // The round in progress.
    private boolean inRound;
    private long roundStart;
    private int length;                // the first view's context length at the round's start
    private int[] context;             // the first view's context, with room for the draft after it
    private boolean draftReady;
    private final boolean[] verifyPlanned;
    private Drafter.Draft draft;
    private final float[][][] rows;    // per view, its verification rows' logits
    private long verifyNanos;

    MixedChainTask(LogitMixDecoding target, Drafter drafter, int draftLength, GenerationRequest request) {
        this.method = target.name();
        this.views = target.views();
        this.mix = target.mix();
        this.drafter = drafter;
        this.draftLength = draftLength;
        this.request = request;
        int n = views.size();
        this.prompts = new int[n][];
        try {
            for (int i = 0; i < n; i++) {
                prompts[i] = LogitMixDecoding.checkedPrompt(views.get(i), request);
            }
        } catch (RuntimeException | Error e) {
            drafter.close();
            throw e;
        }
        List<LanguageModel> ms = new ArrayList<>(LogitMixDecoding.distinctModels(views));
        if (drafter.model() != null && !ms.contains(drafter.model())) {
            ms.add(drafter.model());
        }
        this.models = List.copyOf(ms);
        this.stats = new DecodeStats.Recorder(method);
        this.kvs = new dev.tandem.runtime.kv.KvSequence[n];
        this.prefilled = new int[n];
        this.prefillPlanned = new int[n];
        this.verifyPlanned = new boolean[n];
        this.rows = new float[n][][];
    }

    @Override
    public String method() {
        return method;
    }

    @Override
    public List<LanguageModel> models() {
        return models;
    }

    @Override
    public int blocksNeeded(LanguageModel model) {
        // A verification appends the draft (γ rows) past each view's context; a draft model feeds up to γ − 1 past it.
        int blocks = 0;
        for (int i = 0; i < views.size(); i++) {
            if (views.get(i).model() == model) {
                blocks += Tasks.blocks(model, prompts[i].length, request.maxTokens(), draftLength + 1);
            }
        }
        if (drafter.model() == model) {
            blocks += Tasks.blocks(model, prompts[0].length, request.maxTokens(), draftLength + 1);
        }
        return blocks;
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        GenerationRequest first = new GenerationRequest(null, prompts[0], request.maxTokens(), request.sampling(), request.stop(),
                request.eosTokenIds(), request.logprobs(), request.streamId());
        try {
            state = RequestState.start(views.getFirst().model(), first, kv.newSequence(views.getFirst().model()));
            kvs[0] = state.kv();
            for (int i = 1; i < kvs.length; i++) {
                kvs[i] = kv.newSequence(views.get(i).model());
            }
            drafter.start(kv);
        } catch (RuntimeException | Error e) {
            abandon();
            throw e;
        }
    }

    private boolean prefillDone(int view) {
        return prefilled[view] >= prompts[view].length - 1;
    }

    @Override
    public void beginStep() {
        Arrays.fill(verifyPlanned, false);
        if (!inRound && !state.finished()) {
            startRound();
        }
        draftReady = inRound && drafter.complete();
    }

    private void startRound() {
        inRound = true;
        roundStart = System.nanoTime();
        length = state.contextLength();
        int generated = state.generated();
        int viewRoom = Integer.MAX_VALUE;
        for (int i = 0; i < views.size(); i++) {
            viewRoom = Math.min(viewRoom, views.get(i).model().config().maxContext() - (prompts[i].length + generated) - 1);
        }
        int gamma = SpeculativeDecoding.roundLength(draftLength, request.maxTokens() - generated, viewRoom, drafter.room(length));
        context = state.context(gamma + 1);
        Arrays.fill(rows, null);
        draft = null;
        if (gamma > 0) {
            drafter.begin(context, length, gamma, request, stats);
        } else {
            draft = Drafter.Draft.EMPTY;
        }
    }

    @Override
    public List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill) {
        List<Batch.Entry> out = new ArrayList<>();
        if (state.finished()) {
            return out;
        }
        for (int i = 0; i < views.size(); i++) {
            if (views.get(i).model() != model) {
                continue;
            }
            int[] prompt = prompts[i];
            if (!prefillDone(i)) {
                if (prefillPlanned[i] == 0) {
                    int n = prefill.take(prompt.length - 1 - prefilled[i]);
                    if (n > 0) {
                        prefillPlanned[i] = n;
                        // Nobody reads this pass's logits (the verification feeds the last token and reads after it).
                        out.add(Batch.Entry.continuation(kvs[i], Arrays.copyOfRange(prompt, prefilled[i], prefilled[i] + n))
                                .withLogitRows());
                    }
                }
            } else if (inRound && !verifyPlanned[i] && rows[i] == null && (draftReady || draft != null) && allPrefilled()) {
                verifyPlanned[i] = true;
                if (draft == null) {
                    draft = drafter.draft();
                }
                int[] tokens = draft.tokens();
                System.arraycopy(tokens, 0, context, length, tokens.length);
                int[] feed = new int[tokens.length + 1];
                // The view's last token: its prompt's last before any token is generated, then the last generated one.
                feed[0] = state.generated() == 0 ? prompt[prompt.length - 1] : state.lastToken();
                System.arraycopy(tokens, 0, feed, 1, tokens.length);
                out.add(Batch.Entry.continuationAllLogits(kvs[i], feed));
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

    private boolean allPrefilled() {
        for (int i = 0; i < views.size(); i++) {
            if (!prefillDone(i)) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void advance(LanguageModel model, ForwardResult result, long nanos) {
        int entry = 0;
        boolean passed = false;
        for (int i = 0; i < views.size(); i++) {
            if (views.get(i).model() != model) {
                continue;
            }
            if (prefillPlanned[i] > 0) {
                prefilled[i] += prefillPlanned[i];
                prefillPlanned[i] = 0;
                passed = true;
                if (i == 0) {
                    state.addPrefillNanos(nanos);
                }
                entry++;
            } else if (verifyPlanned[i] && rows[i] == null) {
                float[][] r = new float[result.rows(entry)][];
                for (int k = 0; k < r.length; k++) {
                    r[k] = result.logits(entry, k);
                }
                rows[i] = r;
                passed = true;
                verifyNanos = Math.max(verifyNanos, nanos);
                entry++;
            }
        }
        boolean drafted = model == drafter.model() && entry < result.entries();
        if (passed && model == views.getFirst().model()) {
            stats.targetPass();
        } else if (passed && !drafted) {
            stats.draftPass(); // another view's model (the drafter counts a pass it shares)
        }
        if (drafted) {
            long t0 = System.nanoTime();
            drafter.advance(result.slice(entry, 1));
            stats.addDraftNanos(nanos + System.nanoTime() - t0);
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        for (float[][] r : rows) {
            if (r == null) {
                return List.of();
            }
        }
        long t0 = System.nanoTime();
        int[] tokens = draft.tokens();
        int n = tokens.length;
        float[][] mixed = new float[n + 1][];
        float[][] at = new float[views.size()][];
        for (int j = 0; j <= n; j++) {
            for (int i = 0; i < views.size(); i++) {
                at[i] = rows[i][j];
            }
            mixed[j] = mix.apply(at);
        }
        Verdict verdict = SpeculativeDecoding.verifyChain(tokens, draft.q(), mixed, false, request.sampling(), context, length,
                request.streamId(), ChainVerifier.SampledRule.EXACT);
        int accepted = verdict.accepted();
        stats.verification(n, accepted);
        int generated = state.generated();
        for (int i = 0; i < views.size(); i++) {
            // The view held its sequence without its last token plus n + 1 rows; keep through the last accepted draft token.
            kvs[i].truncate(prompts[i].length + generated + accepted);
        }
        List<TokenEvent> events = new ArrayList<>(accepted + 1);
        for (int i = 0; i < accepted && !state.finished(); i++) {
            events.add(state.acceptToken(tokens[i], mixed[i]));
        }
        if (!state.finished()) {
            events.add(state.acceptToken(verdict.next(), mixed[accepted]));
        }
        if (!state.finished() && LogitMixDecoding.anotherViewIsFull(views, prompts, state.generated())) {
            state.end(FinishReason.CONTEXT_FULL);
        }
        stats.addVerifyNanos(verifyNanos + System.nanoTime() - t0);
        verifyNanos = 0;
        state.addDecodeStep(System.nanoTime() - roundStart);
        Arrays.fill(rows, null);
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

    /** Frees the drafter's and the other views' sequences (the first view's closes with the state); idempotent. */
    private void release() {
        drafter.close();
        for (int i = 1; i < kvs.length; i++) {
            if (kvs[i] != null) {
                kvs[i].close();
            }
        }
    }
}
