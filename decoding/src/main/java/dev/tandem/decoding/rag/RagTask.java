package dev.tandem.decoding.rag;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.Tasks;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.AttentionShape;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One request decoded over cached passages ({@link RagDecoding}) as a {@link DecodingTask}.
 *
 * <ol>
 *   <li>The prefix (the system prefix: the tokenizer's BOS, say) is computed into the request's sequence, and every
 *   passage missing from the {@link PassageCache} into a sequence of its own, prefix then passage, causally from
 *   position 0, so each passage sees the prefix and itself only, at positions {@code p0 = prefix.length ..}. These
 *   rows go into passes in chunks as the prefill budget allows.</li>
 *   <li>The passages, cached or just computed, are attached read-only to the request's sequence in order
 *   ({@link KvSequence#attach}); the computed ones are offered to the cache.</li>
 *   <li>The question, then each generated token, attends to the prefix, every attached passage's own rows (not the
 *   copies of the prefix inside them, nor the padding between them) and itself and the rows before it
 *   ({@link AttentionShape.SparsePrefix}); its positions start after the longest passage, at
 *   {@code p0 + max length}.</li>
 * </ol>
 * The logits equal those of one sequence holding the prefix, the passages prefilled in one pass as independent
 * segments ({@link AttentionShape.Segments} seeing the prefix) and the question after them at the same positions,
 * bit for bit: each row reads the same keys in the same order. The request's context (its prompt ids, usage and
 * context limit) counts every token attended to: prefix, passages, question.
 */
final class RagTask implements DecodingTask {
    private final LanguageModel model;
    private final PassageCache cache;
    private final GenerationRequest request;
    private final int[] prefix;
    private final int[][] passages;
    private final int[] question;
    private final int[] logicalPrompt;
    private final int[] eos;
    private final int questionPosition; // p0 + the longest passage's length
    private final int passageTokens;    // of every passage together

    private RequestState state;
    private KvSequence[] passageKv;     // per passage: a fork of the cached one, or the sequence computing it
    private boolean[] computing;        // passage i is computed by this task
    private int[] passageDone;          // rows of prefix + passage i computed so far
    private int prefixDone;
    private boolean attached;
    private int[] visiblePassages;      // the request sequence's positions of the prefix and the passages' rows
    private int questionStart;          // the request sequence's position of the question's first row
    private int questionDone;

    private final List<Runnable> onAdvance = new ArrayList<>(); // what the planned entries do once their pass ran
    private boolean inFlight;           // entries were handed out and their pass has not come back yet
    private boolean decided;            // this step's pass that decides the next token has run
    private int resultEntry = -1;       // the planned entry whose last row decides the next token
    private float[] logits;
    private int token = -1;

    RagTask(LanguageModel model, PassageCache cache, GenerationRequest request, int[] prefix, List<int[]> passages,
            int[] question, int[] eos) {
        this.model = model;
        this.cache = cache;
        this.request = request;
        this.prefix = prefix.clone();
        this.passages = passages.stream().map(int[]::clone).toArray(int[][]::new);
        this.question = question.clone();
        this.eos = eos;
        int longest = 0;
        int total = prefix.length + question.length;
        for (int[] p : this.passages) {
            longest = Math.max(longest, p.length);
            total += p.length;
        }
        this.questionPosition = prefix.length + longest;
        this.passageTokens = total - prefix.length - question.length;
        this.logicalPrompt = new int[total];
        int at = 0;
        System.arraycopy(prefix, 0, logicalPrompt, at, prefix.length);
        at += prefix.length;
        for (int[] p : this.passages) {
            System.arraycopy(p, 0, logicalPrompt, at, p.length);
            at += p.length;
        }
        System.arraycopy(question, 0, logicalPrompt, at, question.length);
    }

    @Override
    public String method() {
        return "rag";
    }

    @Override
    public List<LanguageModel> models() {
        return List.of(model);
    }

    @Override
    public int blocksNeeded(LanguageModel m) {
        // Its own sequence: the prefix, then (past the attached passages, which it only shares) the question and
        // the answer, plus a block for a copy-on-write; and every passage it may have to compute.
        int blocks = model.kvCache().blocksNeeded(prefix.length)
                + Tasks.blocks(model, question.length, request.maxTokens(), 0) + 1;
        for (int[] p : passages) {
            blocks += model.kvCache().blocksNeeded(prefix.length + p.length);
        }
        return blocks;
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        state = new RequestState(model, request, logicalPrompt, eos, kv.newSequence(model));
        int n = passages.length;
        passageKv = new KvSequence[n];
        computing = new boolean[n];
        passageDone = new int[n];
        try {
            for (int i = 0; i < n; i++) {
                passageKv[i] = cache.acquire(prefix, passages[i]);
                if (passageKv[i] == null) {
                    passageKv[i] = kv.newSequence(model);
                    computing[i] = true;
                } else {
                    passageDone[i] = prefix.length + passages[i].length;
                }
            }
        } catch (RuntimeException e) {
            abandon();
            throw e;
        }
    }

    @Override
    public void beginStep() {
        onAdvance.clear();
        inFlight = false;
        decided = false;
        resultEntry = -1;
        logits = null;
        token = -1;
    }

    @Override
    public List<Batch.Entry> next(LanguageModel m, PrefillBudget prefill) {
        if (inFlight || decided || state.finished()) {
            return List.of();
        }
        List<Batch.Entry> entries = plan(prefill);
        inFlight = !entries.isEmpty();
        return entries;
    }

    /**
     * The next pass's entries: prefix and missing passages first; once they are all computed (in an earlier pass,
     * possibly of this same step) the passages are attached and the question, then one token a step, follows.
     */
    private List<Batch.Entry> plan(PrefillBudget prefill) {
        List<Batch.Entry> entries = new ArrayList<>();
        if (!attached) {
            planPrefix(entries, prefill);
            for (int i = 0; i < passages.length; i++) {
                planPassage(i, entries, prefill);
            }
            if (!entries.isEmpty() || !everythingComputed()) {
                return entries;
            }
            attach();
        }
        if (questionDone < question.length) {
            int n = prefill.take(question.length - questionDone);
            if (n == 0) {
                return entries;
            }
            int from = questionDone;
            boolean last = from + n == question.length;
            Batch.Entry entry = Batch.Entry.of(state.kv(), Arrays.copyOfRange(question, from, from + n),
                    positions(questionPosition + from, n), sparse());
            entries.add(last ? output(entry, n - 1) : entry.withLogitRows());
            if (last) {
                resultEntry = entries.size() - 1;
            }
            onAdvance.add(() -> questionDone += n);
            return entries;
        }
        int position = questionPosition + state.contextLength() - 1 - prefix.length - passageTokens;
        entries.add(output(Batch.Entry.of(state.kv(), new int[] {state.lastToken()}, new int[] {position}, sparse()), 0));
        resultEntry = 0;
        return entries;
    }

    private void planPrefix(List<Batch.Entry> entries, PrefillBudget prefill) {
        if (prefixDone < prefix.length) {
            int n = prefill.take(prefix.length - prefixDone);
            if (n > 0) {
                int from = prefixDone;
                entries.add(Batch.Entry.of(state.kv(), Arrays.copyOfRange(prefix, from, from + n), positions(from, n),
                        AttentionShape.CAUSAL).withLogitRows());
                onAdvance.add(() -> prefixDone += n);
            }
        }
    }

    private void planPassage(int i, List<Batch.Entry> entries, PrefillBudget prefill) {
        int length = prefix.length + passages[i].length;
        if (passageDone[i] >= length) {
            return;
        }
        int n = prefill.take(length - passageDone[i]);
        if (n == 0) {
            return;
        }
        int from = passageDone[i];
        int[] rows = new int[n];
        for (int r = 0; r < n; r++) {
            int at = from + r;
            rows[r] = at < prefix.length ? prefix[at] : passages[i][at - prefix.length];
        }
        entries.add(Batch.Entry.of(passageKv[i], rows, positions(from, n), AttentionShape.CAUSAL).withLogitRows());
        onAdvance.add(() -> passageDone[i] += n);
    }

    private boolean everythingComputed() {
        if (prefixDone < prefix.length) {
            return false;
        }
        for (int i = 0; i < passages.length; i++) {
            if (passageDone[i] < prefix.length + passages[i].length) {
                return false;
            }
        }
        return true;
    }

    /** Attaches every passage after the prefix, in order, and pads to a block for the question. */
    private void attach() {
        KvSequence kv = state.kv();
        int[] visible = new int[prefix.length + passageTokens];
        int at = 0;
        for (int p = 0; p < prefix.length; p++) {
            visible[at++] = p;
        }
        for (int i = 0; i < passages.length; i++) {
            int start = kv.attach(passageKv[i]);
            for (int p = 0; p < passages[i].length; p++) {
                visible[at++] = start + prefix.length + p;
            }
            if (computing[i]) {
                cache.offer(prefix, passages[i], passageKv[i]);
            }
            passageKv[i].close();
        }
        passageKv = null;
        questionStart = kv.padToBlock();
        visiblePassages = visible;
        attached = true;
    }

    /** The prefix, the passages and every row of the question and answer so far. */
    private AttentionShape sparse() {
        int own = state.kv().length() - questionStart;
        int[] cached = Arrays.copyOf(visiblePassages, visiblePassages.length + own);
        for (int i = 0; i < own; i++) {
            cached[visiblePassages.length + i] = questionStart + i;
        }
        return new AttentionShape.SparsePrefix(cached);
    }

    private static int[] positions(int from, int n) {
        int[] p = new int[n];
        Arrays.setAll(p, i -> from + i);
        return p;
    }

    /** The greedy token alone where that decides the next token, else the row's logits. */
    private Batch.Entry output(Batch.Entry entry, int row) {
        return state.needsOnlyGreedyToken() ? entry.withLogitRows().withGreedyRows(row) : entry.withLogitRows(row);
    }

    @Override
    public void advance(LanguageModel m, ForwardResult result, long nanos) {
        boolean decoding = attached && questionDone == question.length;
        for (Runnable r : onAdvance) {
            r.run();
        }
        onAdvance.clear();
        inFlight = false;
        if (resultEntry >= 0) {
            decided = true;
            if (result.greedyRows(resultEntry) > 0) {
                token = result.greedyToken(resultEntry, 0);
                if (token < 0) {
                    logits = result.greedyRowLogits(resultEntry, 0);
                }
            } else {
                logits = result.lastLogits(resultEntry);
            }
            resultEntry = -1;
        }
        if (decoding) {
            state.addDecodeStep(nanos);
        } else {
            state.addPrefillNanos(nanos);
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        if (token >= 0) {
            int t = token;
            token = -1;
            return List.of(state.acceptToken(t, null));
        }
        if (logits == null) {
            return List.of();
        }
        float[] l = logits;
        logits = null;
        return List.of(state.accept(l));
    }

    @Override
    public boolean finished() {
        return state != null && state.finished();
    }

    /** The request's result, its stats reported as {@code rag}'s. */
    @Override
    public GenerationResult result() {
        GenerationResult r = state.result();
        DecodeStats s = r.decodeStats();
        return r.withDecodeStats(new DecodeStats(method(), s.generatedTokens(), s.targetForwardPasses(), 0, 0, 0, 0, List.of(), 0, 0,
                s.otherMillis()));
    }

    @Override
    public void end(FinishReason reason) {
        state.end(reason);
        closePassages();
    }

    @Override
    public void abandon() {
        if (state != null && !state.finished()) {
            state.abandon();
        }
        closePassages();
    }

    private void closePassages() {
        if (passageKv != null) {
            for (KvSequence s : passageKv) {
                if (s != null) {
                    s.close();
                }
            }
            passageKv = null;
        }
    }
}
