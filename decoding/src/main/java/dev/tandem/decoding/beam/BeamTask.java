package dev.tandem.decoding.beam;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.Hypothesis;
import dev.tandem.decoding.RequestState;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.LogProbs;
import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.TokenLogprob;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.tokenizer.StreamingDecoder;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One request of {@link BeamSearch} (whose comment gives the rules) as a {@link DecodingTask}: the prompt in
 * chunks of the prefill budget into one sequence (the last chunk with the logits of its last row), then one pass
 * per step with an entry per live beam (its last token), after which {@link #endStep} chooses the next beams.
 *
 * <h2>KV blocks</h2>
 * Each live beam has a sequence of its own holding the prompt and its tokens but the last. After a step, a beam
 * that several next beams continue is forked for them ({@link KvSequence#fork}: they share every block, and one
 * copies the last, partly filled block when it first appends), and a beam that none continues is closed at once.
 * The prompt's full blocks are never written again, so every beam shares them; everything else a beam holds
 * is at most ⌈(prompt + max tokens − 1) / block⌉ − ⌊prompt / block⌋ blocks (a beam never feeds its last token),
 * the copy of a shared partial block included. {@link #blocksNeeded} is ⌊prompt / block⌋ + B × that.
 */
final class BeamTask implements DecodingTask {

    /** A live hypothesis; its sequence holds the prompt and its tokens but the last. */
    private static final class Beam {
        Beam parent;                      // the beam it continues, until it has its sequence
        final int[] ids;                  // its generated tokens
        final float[] logprobs;           // each token's raw log-probability
        final List<List<TokenLogprob>> tops; // the most likely tokens at each position, when asked for (else null)
        final double score;               // the sum of its processed token scores: its running score
        final double logprob;             // the sum of its raw log-probabilities
        KvSequence kv;
        float[] logits;                   // the logits after its tokens, once this step's pass has run
        double logNormalizer;             // of those logits
        double[] scores;                  // its processed token scores this step, shared by the groups
        List<TokenLogprob> top;           // the most likely tokens after it, when asked for

        Beam(Beam parent, int[] ids, float[] logprobs, List<List<TokenLogprob>> tops, double score, double logprob) {
            this.parent = parent;
            this.ids = ids;
            this.logprobs = logprobs;
            this.tops = tops;
            this.score = score;
            this.logprob = logprob;
        }

        int lastToken() {
            return ids[ids.length - 1];
        }
    }

    /** A finished hypothesis of group {@code group}. */
    private record Finished(int[] ids, float[] logprobs, List<List<TokenLogprob>> tops, double score, double logprob,
                            int group) {
        static Finished of(Beam b, double score, int group) {
            return new Finished(b.ids, b.logprobs, b.tops, score, b.logprob, group);
        }
    }

    private final LanguageModel model;
    private final BeamParams params;
    private final GenerationRequest request;
    private final GenerationRequest textOnly; // the request as the text bookkeeping replays it (logprobs come from here)
    private final int[] promptIds;
    private final int[] eos;
    private final int maxGenerated;   // a hypothesis's most tokens: max tokens, capped as plain decoding caps them
    private final int groupSize;
    private final int candidates;     // K of a group
    private final DecodeStats.Recorder stats;

    private KvSource kvSource;
    private RequestState state;       // the result's text bookkeeping; its own sequence stays empty
    private Beam prompt;
    private int prefilled;
    private List<List<Beam>> running; // per group, best first; empty once the group is done
    private List<List<Finished>> finished; // per group, best first
    private int generated;            // tokens of every live beam
    private boolean ended;
    private List<TokenEvent> events = List.of();
    private List<Hypothesis> hypotheses = List.of();
    private double[] scratch;

    // This step.
    private boolean passed;
    private int planned;              // prompt rows in its pass (0: a decode pass)
    private List<Beam> inPass = List.of();
    private boolean choose;           // the pass ended with logits to choose from

    BeamTask(LanguageModel model, BeamParams params, GenerationRequest request) {
        this.model = model;
        this.params = params;
        this.request = request;
        this.textOnly = request.withLogprobs(0);
        this.promptIds = new Generator(model).promptIds(request);
        this.eos = Generator.eosTokenIds(model, request);
        int room = Math.max(1, model.config().maxContext() - promptIds.length);
        this.maxGenerated = Math.min(request.maxTokens(), room);
        this.groupSize = params.groupSize();
        this.candidates = Math.max(2, 1 + eos.length) * groupSize;
        this.stats = new DecodeStats.Recorder(params.method());
    }

    @Override
    public String method() {
        return params.method();
    }

    @Override
    public List<LanguageModel> models() {
        return List.of(model);
    }

    @Override
    public int blocksNeeded(LanguageModel m) {
        KvCache cache = m.kvCache();
        if (maxGenerated == 1) {
            return cache.blocksNeeded(promptIds.length); // the prompt's pass alone: no beam is ever fed
        }
        int shared = promptIds.length / cache.blockSize();
        int own = cache.blocksNeeded(promptIds.length + maxGenerated - 1) - shared;
        return shared + params.beams() * own;
    }

    @Override
    public void start(KvSource kv) {
        if (state != null) {
            throw new IllegalStateException("the task has started already");
        }
        kvSource = kv;
        state = new RequestState(model, textOnly, promptIds, eos, kv.newSequence(model));
        prompt = new Beam(null, new int[0], new float[0], request.logprobs() > 0 ? List.of() : null, 0, 0);
        try {
            prompt.kv = kv.newSequence(model);
        } catch (RuntimeException | Error e) {
            state.abandon();
            throw e;
        }
        running = new ArrayList<>(params.groups());
        finished = new ArrayList<>(params.groups());
        for (int g = 0; g < params.groups(); g++) {
            running.add(List.of(prompt));
            finished.add(new ArrayList<>());
        }
        scratch = new double[model.config().vocabSize()];
    }

    @Override
    public void beginStep() {
        passed = false;
        choose = false;
    }

    @Override
    public List<Batch.Entry> next(LanguageModel m, PrefillBudget prefill) {
        if (passed || ended) {
            return List.of();
        }
        if (prefilled < promptIds.length) {
            int n = prefill.take(promptIds.length - prefilled);
            if (n == 0) {
                return List.of();
            }
            passed = true;
            planned = n;
            Batch.Entry entry = Batch.Entry.continuation(prompt.kv, Arrays.copyOfRange(promptIds, prefilled, prefilled + n));
            // Only the prompt's last chunk needs logits (of its last row); earlier chunks skip the LM head.
            return List.of(prefilled + n < promptIds.length ? entry.withLogitRows() : entry);
        }
        passed = true;
        planned = 0;
        inPass = new ArrayList<>();
        List<Batch.Entry> entries = new ArrayList<>();
        for (List<Beam> group : running) {
            for (Beam b : group) {
                inPass.add(b);
                entries.add(Batch.Entry.continuation(b.kv, b.lastToken()));
            }
        }
        return entries;
    }

    @Override
    public void advance(LanguageModel m, ForwardResult result, long nanos) {
        stats.targetPass();
        if (planned > 0) {
            prefilled += planned;
            state.addPrefillNanos(nanos);
            if (prefilled == promptIds.length) {
                prompt.logits = result.lastLogits(0);
                choose = true;
            }
        } else {
            state.addDecodeStep(nanos);
            for (int i = 0; i < inPass.size(); i++) {
                inPass.get(i).logits = result.lastLogits(i);
            }
            inPass = List.of();
            choose = true;
        }
    }

    @Override
    public List<TokenEvent> endStep() {
        if (!choose) {
            return List.of();
        }
        choose = false;
        chooseBeams();
        return ended ? events : List.of();
    }

    /** One step of the search over this step's logits: each group's next beams and finished hypotheses. */
    private void chooseBeams() {
        int length = generated + 1;
        double norm = Math.pow(length, params.lengthPenalty());
        List<Integer> chosen = new ArrayList<>(); // the tokens earlier groups' beams took at this step
        List<List<Beam>> next = new ArrayList<>(params.groups());
        for (int g = 0; g < params.groups(); g++) {
            List<Beam> beams = running.get(g);
            List<Beam> kept = new ArrayList<>(groupSize);
            if (!beams.isEmpty()) {
                List<Finished> done = finished.get(g);
                Candidates c = topCandidates(beams, chosen);
                for (int r = 0; r < c.count && (kept.size() < groupSize || r < groupSize); r++) {
                    Beam child = child(beams.get(c.beam[r]), c.token[r], c.score[r]);
                    if (stops(child.ids)) {
                        if (r < groupSize) {
                            addFinished(done, Finished.of(child, c.score[r] / norm, g));
                        }
                    } else if (kept.size() < groupSize) {
                        kept.add(child);
                    }
                }
                for (Beam b : kept) {
                    chosen.add(b.lastToken());
                }
                if (done.size() == groupSize && !kept.isEmpty() && kept.getFirst().score / norm <= done.getLast().score()) {
                    kept.clear(); // early_stopping=False: its best beam, scored at the present length, beats no finished hypothesis
                }
            }
            next.add(kept);
        }
        handOver(next);
        running = next;
        generated = length;
        if (next.stream().allMatch(List::isEmpty)) {
            finish();
        }
    }

    /** The K best (beam, token) continuations of one group's beams, best first. */
    private record Candidates(double[] score, int[] beam, int[] token, int count) {
    }

    private Candidates topCandidates(List<Beam> beams, List<Integer> penalised) {
        int k = candidates;
        double[] score = new double[k];
        int[] beam = new int[k];
        int[] token = new int[k];
        int n = 0;
        double lambda = params.diversity();
        for (int i = 0; i < beams.size(); i++) {
            Beam b = beams.get(i);
            double[] row = processedScores(b);
            if (!penalised.isEmpty() && lambda != 0) {
                System.arraycopy(row, 0, scratch, 0, row.length);
                for (int t : penalised) {
                    scratch[t] -= lambda;
                }
                row = scratch;
            }
            for (int t = 0; t < row.length; t++) {
                double v = b.score + row[t];
                if (v == Double.NEGATIVE_INFINITY || (n == k && v <= score[k - 1])) {
                    continue;
                }
                // After every candidate at least as good: an equal score keeps the earlier (beam, token).
                int at = n < k ? n : k - 1;
                while (at > 0 && score[at - 1] < v) {
                    score[at] = score[at - 1];
                    beam[at] = beam[at - 1];
                    token[at] = token[at - 1];
                    at--;
                }
                score[at] = v;
                beam[at] = i;
                token[at] = t;
                n = Math.min(n + 1, k);
            }
        }
        return new Candidates(score, beam, token, n);
    }

    /** log_softmax of the beam's logits, then the repetition penalty over its context: once a step per beam. */
    private double[] processedScores(Beam b) {
        if (b.scores == null) {
            float[] logits = b.logits;
            double logNormalizer = LogProbs.logNormalizer(logits);
            double[] s = new double[logits.length];
            for (int t = 0; t < s.length; t++) {
                s[t] = logits[t] - logNormalizer;
            }
            float penalty = request.sampling().repetitionPenalty();
            if (penalty != 1f) {
                int[] context = Arrays.copyOf(promptIds, promptIds.length + b.ids.length);
                System.arraycopy(b.ids, 0, context, promptIds.length, b.ids.length);
                LogitsProcessors.repetitionPenalty(s, context, context.length, penalty);
            }
            b.logNormalizer = logNormalizer;
            b.scores = s;
            if (request.logprobs() > 0) {
                b.top = LogProbs.top(logits, request.logprobs());
            }
        }
        return b.scores;
    }

    /** {@code parent} continued by {@code token} with running score {@code score}; it has no sequence yet. */
    private Beam child(Beam parent, int token, double score) {
        int n = parent.ids.length;
        int[] ids = Arrays.copyOf(parent.ids, n + 1);
        ids[n] = token;
        // The raw log-probability as LogProbs.logSoftmax rounds it, so token events match plain decoding's bit for bit.
        float logprob = (float) (parent.logits[token] - parent.logNormalizer);
        float[] logprobs = Arrays.copyOf(parent.logprobs, n + 1);
        logprobs[n] = logprob;
        List<List<TokenLogprob>> tops = null;
        if (parent.tops != null) {
            tops = new ArrayList<>(parent.tops);
            tops.add(parent.top);
        }
        return new Beam(parent, ids, logprobs, tops, score, parent.logprob + logprob);
    }

    /** Whether a hypothesis ends with its last token: an EOS id, a stop string reached, or its most tokens. */
    private boolean stops(int[] ids) {
        int token = ids[ids.length - 1];
        for (int e : eos) {
            if (e == token) {
                return true;
            }
        }
        return ids.length >= maxGenerated || reachesStop(ids);
    }

    /**
     * Whether the streamed text of {@code ids} holds a stop string: where plain decoding stops. Its beam's text
     * held none (it would have stopped), so the string appeared with the last token.
     */
    private boolean reachesStop(int[] ids) {
        if (request.stop().isEmpty()) {
            return false;
        }
        StreamingDecoder decoder = model.tokenizer().streamingDecoder();
        StringBuilder text = new StringBuilder();
        for (int id : ids) {
            text.append(decoder.push(id));
        }
        for (String s : request.stop()) {
            if (text.indexOf(s) >= 0) {
                return true;
            }
        }
        return false;
    }

    /** Adds {@code f} to a group's finished list (best first, at most B/G, an equal score after the earlier ones). */
    private void addFinished(List<Finished> done, Finished f) {
        int at = done.size();
        while (at > 0 && done.get(at - 1).score() < f.score()) {
            at--;
        }
        if (at < groupSize) {
            done.add(at, f);
            if (done.size() > groupSize) {
                done.removeLast();
            }
        }
    }

    /**
     * Gives each next beam its sequence: the first beam continuing a parent takes the parent's, the others fork
     * it; a parent that no beam continues is closed, so its blocks (those it alone held) go back at once.
     */
    private void handOver(List<List<Beam>> next) {
        Set<Beam> continued = Collections.newSetFromMap(new IdentityHashMap<>());
        for (List<Beam> group : next) {
            for (Beam b : group) {
                Beam p = b.parent;
                b.kv = continued.add(p) ? p.kv : p.kv.fork();
                b.parent = null;
            }
        }
        Map<Beam, Boolean> parents = new IdentityHashMap<>();
        for (List<Beam> group : running) {
            for (Beam p : group) {
                parents.put(p, Boolean.TRUE);
            }
        }
        for (Beam p : parents.keySet()) {
            if (!continued.contains(p)) {
                p.kv.close();
            }
            p.kv = null;
            p.logits = null;
            p.scores = null;
        }
    }

    /** The search is over: the N best hypotheses of all groups; the result is the first. */
    private void finish() {
        List<Finished> all = new ArrayList<>();
        finished.forEach(all::addAll);
        all.sort(Comparator.comparingDouble(Finished::score).reversed()); // stable: an equal score keeps the earlier group first
        if (all.isEmpty()) {
            throw new IllegalStateException("beam search ended without a finished hypothesis");
        }
        List<Hypothesis> best = new ArrayList<>();
        for (int i = 0; i < Math.min(params.nBest(), all.size()); i++) {
            Finished f = all.get(i);
            RequestState s = i == 0 ? state : new RequestState(model, textOnly, promptIds, eos, kvSource.newSequence(model));
            List<TokenEvent> replayed = replay(s, f);
            if (!s.finished()) {
                throw new IllegalStateException("a finished hypothesis of " + f.ids().length + " tokens did not end plain decoding's "
                        + "bookkeeping (EOS, stop strings, limits) where the search ended it");
            }
            GenerationResult r = s.result();
            if (i == 0) {
                events = replayed;
            }
            best.add(new Hypothesis(f.ids(), r.text(), f.score(), f.logprob(), r.finishReason(), f.group()));
        }
        hypotheses = List.copyOf(best);
        ended = true;
    }

    /**
     * {@code f}'s tokens through {@code s}, plain decoding's text bookkeeping (EOS, stop strings, limits), which
     * ends a finished hypothesis where the search ended it; the events carry the log-probabilities the search
     * kept, when asked for.
     */
    private List<TokenEvent> replay(RequestState s, Finished f) {
        List<TokenEvent> out = new ArrayList<>(f.ids().length);
        for (int i = 0; i < f.ids().length && !s.finished(); i++) {
            TokenEvent e = s.acceptToken(f.ids()[i], null);
            out.add(request.logprobs() == 0 ? e : new TokenEvent(e.index(), e.token(), e.textDelta(), f.logprobs()[i], f.tops().get(i)));
        }
        return List.copyOf(out);
    }

    @Override
    public boolean finished() {
        return ended;
    }

    @Override
    public GenerationResult result() {
        GenerationResult r = state.result();
        return new GenerationResult(r.promptIds(), r.generatedIds(), r.text(), r.finishReason(), r.usage(), r.stats(), events,
                stats.build(r.generatedIds().length), hypotheses);
    }

    /** Ends the search early: the result is its best live beam so far (no n-best list). */
    @Override
    public void end(FinishReason reason) {
        if (ended || state == null) {
            return;
        }
        Beam best = null;
        int group = 0;
        for (int g = 0; g < running.size(); g++) {
            List<Beam> beams = running.get(g);
            if (!beams.isEmpty() && (best == null || beams.getFirst().score > best.score)) {
                best = beams.getFirst();
                group = g;
            }
        }
        closeBeams();
        if (best != null) {
            events = replay(state, Finished.of(best, best.score, group)); // a live beam has not stopped: this leaves it open
        }
        state.end(reason);
        ended = true;
    }

    @Override
    public void abandon() {
        if (state == null) {
            return;
        }
        closeBeams();
        if (!state.finished()) {
            state.abandon();
        }
        ended = true;
    }

    private void closeBeams() {
        if (prompt.kv != null) {
            prompt.kv.close();
        }
        for (List<Beam> group : running) {
            for (Beam b : group) {
                if (b.kv != null) {
                    b.kv.close();
                }
            }
        }
    }
}
