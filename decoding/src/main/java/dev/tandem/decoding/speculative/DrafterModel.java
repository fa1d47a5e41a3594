package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;

import java.util.Arrays;

/**
 * Drafts with a small model, autoregressively: greedy requests take the argmax of its processed logits,
 * sampled ones draw from its processed distribution q with {@link CounterRng} purpose
 * {@link RngPurpose#DRAFT} at the token's absolute position (and keep q for the verifier). Its KV
 * sequence holds a prefix of the context; each round feeds the tokens it lacks, then one pass per
 * further draft token. With a threshold above 0, drafting stops early when the draft's top probability
 * at a step falls under it (the first token is always drafted).
 */
final class DrafterModel implements Drafter {
    private final LanguageModel model;
    private final KvSequence kv;
    private final double threshold;

    DrafterModel(LanguageModel model, double threshold) {
        this.model = model;
        this.threshold = threshold;
        this.kv = model.newSequence();
    }

    @Override
    public int room(int length) {
        // Drafting γ tokens feeds positions up to length + γ − 2.
        return Math.max(0, model.config().maxContext() - length + 1);
    }

    @Override
    public Draft propose(int[] context, int length, int maxTokens, GenerationRequest request, DecodeStats.Recorder stats) {
        SamplingParams sp = request.sampling();
        if (kv.length() > length - 1) {
            kv.truncate(length - 1); // positions past the accepted context held rejected drafts
        }
        float[] logits = forward(Arrays.copyOfRange(context, kv.length(), length), stats);
        int[] tokens = new int[maxTokens];
        double[][] q = sp.isGreedy() ? null : new double[maxTokens][];
        int n = 0;
        while (n < maxTokens) {
            int pos = length + n;
            int token;
            double top;
            if (sp.isGreedy()) {
                float[] processed = logits.clone();
                LogitsProcessors.apply(processed, sp, context, pos);
                token = Sampler.argmax(processed);
                top = threshold > 0 ? topProbability(processed, token) : 1;
            } else {
                double[] dist = Sampler.distribution(logits, sp, context, pos);
                // q sums to 1, so a total of 1 draws exactly as Sampler.sample would from q
                token = Sampler.inverseCdf(dist, 1.0, CounterRng.uniform(sp.seed(), request.streamId(), pos, RngPurpose.DRAFT, 0));
                q[n] = dist;
                top = 0;
                for (double v : dist) {
                    top = Math.max(top, v);
                }
            }
            if (n > 0 && top < threshold) {
                break;
            }
            tokens[n++] = token;
            context[pos] = token;
            if (n < maxTokens) {
                logits = forward(new int[] {token}, stats);
            }
        }
        return new Draft(Arrays.copyOf(tokens, n), q == null ? null : Arrays.copyOf(q, n));
    }

    private float[] forward(int[] tokens, DecodeStats.Recorder stats) {
        stats.draftPass();
        return model.forward(Batch.of(Batch.Entry.continuation(kv, tokens))).lastLogits(0);
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
        kv.close();
    }
}
