package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.DeviceSampling;
import dev.tandem.runtime.LogitSummary;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;

/**
 * Drafts with a small model, autoregressively: greedy requests take the argmax of its processed logits,
 * sampled ones draw from its processed distribution q with {@link CounterRng} purpose
 * {@link RngPurpose#DRAFT} at the token's absolute position (and keep q for the verifier). Its KV
 * sequence holds a prefix of the context; each round feeds the tokens it lacks (a first round's prompt in
 * chunks, as the prefill budget allows), then one pass per further draft token. With a threshold above 0, drafting stops early when the draft's top probability
 * at a step falls under it (the first token is always drafted). Greedy drafting without a repetition penalty asks
 * each pass for its greedy token only (or, with a threshold, the row's {@link LogitSummary}), so the draft's logits
 * stay in the backend's memory.
 */
final class DrafterModel implements Drafter {
    private final LanguageModel model;
    private final double threshold;
    private KvSequence kv;
    // The proposal in progress.
    private int[] context;
    private int length;
    private int maxTokens;
    private GenerationRequest request;
    private DecodeStats.Recorder stats;
    private int[] feed;       // tokens the next pass feeds (the context the cache lacks, then each new draft token)
    private int fed;          // how many of feed are in the cache already (a long catch-up goes in prompt chunks)
    private int[] tokens;
    private double[][] q;
    private int n;
    private boolean done = true;
    // Drawing on the device (DeviceVerification): the row of logits each draft token is drawn from stays here.
    private Tensor deviceRows;
    private DeviceSampling deviceSampling;

    DrafterModel(LanguageModel model, double threshold) {
        this.model = model;
        this.threshold = threshold;
    }

    @Override
    public LanguageModel model() {
        return model;
    }

    /** True when this drafter could draw on the device: no threshold (which would read the distribution's top). */
    boolean canDrawOnDevice() {
        return threshold <= 0;
    }

    /**
     * From now on, draft token i's raw logits go to row i of {@code rows} (in the model's backend's memory) and the
     * token is drawn there by {@code sampling} (DRAFT purpose, q normalised, as {@link #advance} draws on the host);
     * the draft then carries no q (the verifier reads {@code rows}). For sampled requests with a temperature alone.
     */
    void drawOnDevice(Tensor rows, DeviceSampling sampling) {
        this.deviceRows = rows;
        this.deviceSampling = sampling;
    }

    @Override
    public void start(DecodingTask.KvSource source) {
        if (kv != null) {
            throw new IllegalStateException("the drafter has started already");
        }
        kv = source.newSequence(model);
    }

    @Override
    public int room(int length) {
        // Drafting γ tokens feeds positions up to length + γ − 2.
        return Math.max(0, model.config().maxContext() - length + 1);
    }

    @Override
    public void begin(int[] context, int length, int maxTokens, GenerationRequest request, DecodeStats.Recorder stats) {
        if (kv == null) {
            start(DecodingTask.KvSource.MODEL); // a drafter used outside the step protocol
        }
        if (kv.length() > length - 1) {
            kv.truncate(length - 1); // positions past the accepted context held rejected drafts
        }
        this.context = context;
        this.length = length;
        this.maxTokens = maxTokens;
        this.request = request;
        this.stats = stats;
        this.feed = Arrays.copyOfRange(context, kv.length(), length);
        this.fed = 0;
        this.tokens = new int[maxTokens];
        this.q = request.sampling().isGreedy() || deviceRows != null ? null : new double[maxTokens][];
        if (deviceRows != null && maxTokens > deviceRows.dim(0)) {
            throw new IllegalStateException("a draft of " + maxTokens + " tokens does not fit the " + deviceRows.dim(0) + " device rows kept for it");
        }
        this.n = 0;
        this.done = false;
    }

    @Override
    public boolean complete() {
        return done;
    }

    @Override
    public Batch.Entry next(DecodingTask.PrefillBudget prefill) {
        if (done) {
            return null;
        }
        int rest = feed.length - fed;
        // The catch-up after the first round is a token or two; only a prompt's worth is chunked.
        int take = rest > 1 ? prefill.take(rest) : rest;
        if (take == 0) {
            return null;
        }
        stats.draftPass();
        Batch.Entry entry = Batch.Entry.continuation(kv, Arrays.copyOfRange(feed, fed, fed + take));
        fed += take;
        if (fed < feed.length) {
            return entry.withLogitRows();
        }
        SamplingParams sp = request.sampling();
        if (deviceRows != null) {
            return entry.withLogitRows().withLogitsInto(deviceRows, n, take - 1);
        }
        if (sp.isGreedy() && sp.repetitionPenalty() == 1f) {
            // The draft token is the raw logits' argmax: the pass sends back that token alone, or, where the
            // threshold reads the top probability too, the row's summary.
            return threshold > 0 ? entry.withLogitRows().withSummaryRows(1, take - 1) : entry.withLogitRows().withGreedyRows(take - 1);
        }
        return entry;
    }

    @Override
    public void advance(ForwardResult result) {
        if (fed < feed.length) {
            return; // a chunk of the catch-up: nothing to draw yet
        }
        SamplingParams sp = request.sampling();
        int pos = length + n;
        int token;
        double top;
        if (deviceRows != null) {
            token = deviceSampling.sampleWithTemperature(deviceRows.rows(n, 1), sp.temperature(), sp.seed(),
                    new long[] {request.streamId()}, new long[] {pos}, RngPurpose.DRAFT, true)[0];
            top = 1;
        } else if (result.greedyRows(0) > 0) {
            token = Sampler.greedyToken(result.greedyToken(0, 0), result.greedyRowLogits(0, 0));
            top = 1;
        } else if (result.summaryRows(0) > 0) {
            LogitSummary summary = result.summary(0, 0);
            token = Sampler.greedyToken(summary);
            top = summary.maxProbability(); // 1 / Σ exp(l − max): topProbability's sum, in the same order on the host
        } else if (sp.isGreedy()) {
            float[] logits = result.lastLogits(0);
            float[] processed = logits.clone();
            LogitsProcessors.apply(processed, sp, context, pos);
            token = Sampler.argmax(processed);
            top = threshold > 0 ? topProbability(processed, token) : 1;
        } else {
            double[] dist = Sampler.distribution(result.lastLogits(0), sp, context, pos);
            // q sums to 1, so a total of 1 draws exactly as Sampler.sample would from q
            token = Sampler.inverseCdf(dist, 1.0, CounterRng.uniform(sp.seed(), request.streamId(), pos, RngPurpose.DRAFT, 0));
            q[n] = dist;
            top = 0;
            for (double v : dist) {
                top = Math.max(top, v);
            }
        }
        if (n > 0 && top < threshold) {
            done = true;
            return;
        }
        tokens[n++] = token;
        context[pos] = token;
        if (n == maxTokens) {
            done = true;
        } else {
            feed = new int[] {token};
            fed = 0;
        }
    }

    @Override
    public Draft draft() {
        if (!done) {
            throw new IllegalStateException("the draft is not complete");
        }
        return new Draft(Arrays.copyOf(tokens, n), q == null ? null : Arrays.copyOf(q, n));
    }

    /** Softmax probability of {@code best} (the argmax) among the processed logits. */
    private static double topProbability(float[] processed, int best) {
        double max = processed[best];
        double total = 0;
        for (float l : processed) {
            if (l != Float.NEGATIVE_INFINITY) {
                total += Math.exp(l - max);
            }
        }
        return 1 / total;
    }

    @Override
    public void close() {
        if (kv != null) {
            kv.close();
        }
    }
}
