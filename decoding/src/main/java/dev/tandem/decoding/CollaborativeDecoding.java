package dev.tandem.decoding;

import dev.tandem.decoding.sampling.LogitsProcessors;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;

/**
 * FS-GEN collaborative decoding ({@code collab}): the small model decodes, and the large model is
 * called only at the steps where the small one is uncertain. Not lossless: the output is neither
 * model's own decoding, but exactly the routing rule applied token by token.
 *
 * <p>Each step the small model's next-token distribution is taken with the request's sampling
 * parameters applied: {@link Sampler#distribution} when sampling; when greedy (where that
 * distribution is one-hot) the softmax of the logits after the repetition penalty, i.e. at
 * temperature 1. Its confidence is the top probability ({@link Rule#MAX_PROB}) or the top-1 minus
 * top-2 probability ({@link Rule#TOP2_MARGIN}). If the confidence is strictly under the threshold, the
 * large model is run on the same context and chooses the token exactly as {@link Sampler#sample} would
 * from its logits (greedy: argmax of its processed logits; sampling: a draw with the request's seed and
 * stream at that position, purpose {@code SAMPLE}); otherwise the small model's token is chosen the
 * same way from the small model's logits. So threshold 0 is plain decoding of the small model, and a
 * {@code MAX_PROB} threshold above 1 is plain decoding of the large model.
 *
 * <p>Both models keep a KV cache of the context: the small model's grows by one row a token; the large
 * model's catches up on the tokens it skipped, in one multi-row pass, only when it is called. As steps
 * ({@link CollaborativeTask}) each step is one pass: the small model's, or the large model's in the step
 * after a small pass whose routing called it. Tokens go through the small model's {@link RequestState}
 * (its tokenizer, EOS tokens and context), so stop strings, max tokens and EOS behave as in plain
 * decoding. Logprobs come from the raw logits of the model that chose the token.
 *
 * <p>{@link DecodeStats}: {@code targetForwardPasses} counts the large model's passes and
 * {@code draftForwardPasses} the small model's (prefills included; a prompt or a catch-up that the prefill
 * budget splits counts a pass per chunk); each large-model call is recorded as a verification of one
 * drafted token (the small model's choice) that was accepted when the large model chose the same token,
 * so {@code verifications} = calls and {@code draftedTokens − acceptedTokens} = calls that changed the
 * token. {@link Collaboration#of} reads these back; draft time is the small model's passes, verify time
 * the large model's.
 */
public final class CollaborativeDecoding implements DecodingStrategy {
    /** FS-GEN's default: call the large model when the small model's top probability is under 0.5. */
    public static final double DEFAULT_THRESHOLD = 0.5;

    /** How the small model's uncertainty is measured. */
    public enum Rule {
        /** The largest probability of the small model's distribution. */
        MAX_PROB,
        /** The largest minus the second largest probability. */
        TOP2_MARGIN;

        /** {@code max_prob} or {@code top2_margin} (case-insensitive, '-' allowed). */
        public static Rule parse(String name) {
            String n = name.strip().toLowerCase(java.util.Locale.ROOT).replace('-', '_');
            return switch (n) {
                case "max_prob", "maxprob" -> MAX_PROB;
                case "top2_margin", "margin" -> TOP2_MARGIN;
                default -> throw new IllegalArgumentException(
                        "the routing rule must be max_prob or top2_margin, but was \"" + name + "\".");
            };
        }

        /** The confidence of {@code dist} (probabilities indexed by token id) under this rule. */
        public double confidence(double[] dist) {
            double first = 0, second = 0;
            for (double v : dist) {
                if (v > first) {
                    second = first;
                    first = v;
                } else if (v > second) {
                    second = v;
                }
            }
            return this == MAX_PROB ? first : first - second;
        }
    }

    /**
     * How often the large model was called and changed the token, read from a collab {@link DecodeStats}.
     *
     * @param tokens     generated tokens
     * @param largeCalls steps at which the large model was called
     * @param changed    of those, the steps at which its token differed from the small model's
     */
    public record Collaboration(int tokens, long largeCalls, long changed) {
        public static Collaboration of(DecodeStats stats) {
            return new Collaboration(stats.generatedTokens(), stats.verifications(),
                    stats.draftedTokens() - stats.acceptedTokens());
        }

        /** Large-model calls per generated token. */
        public double callFrequency() {
            return tokens == 0 ? 0 : (double) largeCalls / tokens;
        }

        /** Tokens the large model changed per generated token (FS-GEN's collaboration frequency). */
        public double changeFrequency() {
            return tokens == 0 ? 0 : (double) changed / tokens;
        }
    }

    private final LanguageModel small;
    private final LanguageModel large;
    private final Rule rule;
    private final double threshold;

    /**
     * @param threshold the confidence under which the large model is called; finite and ≥ 0
     * @throws TandemException if the two models' vocabularies differ
     */
    public CollaborativeDecoding(LanguageModel small, LanguageModel large, Rule rule, double threshold) {
        if (!(threshold >= 0) || Double.isInfinite(threshold)) {
            throw new IllegalArgumentException("the collab threshold must be a finite number >= 0, but was " + threshold + ".");
        }
        SharedVocabulary.require(large, "large model", small, "small", "collaborating models must share a tokenizer");
        this.small = small;
        this.large = large;
        this.rule = java.util.Objects.requireNonNull(rule, "rule");
        this.threshold = threshold;
    }

    /** {@link Rule#MAX_PROB} at {@value #DEFAULT_THRESHOLD}. */
    public CollaborativeDecoding(LanguageModel small, LanguageModel large) {
        this(small, large, Rule.MAX_PROB, DEFAULT_THRESHOLD);
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new CollaborativeTask(small, large, rule, threshold, request);
    }

    @Override
    public String name() {
        return "collab";
    }

    public Rule rule() {
        return rule;
    }

    public double threshold() {
        return threshold;
    }

    /**
     * The small model's confidence after {@code context[0, length)} given its raw {@code logits}, as the
     * router computes it (public so tests and benchmarks can apply the same rule).
     */
    public static double confidence(Rule rule, float[] logits, SamplingParams sp, int[] context, int length) {
        double[] dist;
        if (sp.isGreedy()) {
            float[] processed = logits.clone();
            LogitsProcessors.apply(processed, sp, context, length);
            dist = softmax(processed);
        } else {
            dist = Sampler.distribution(logits, sp, context, length);
        }
        return rule.confidence(dist);
    }

    private static double[] softmax(float[] logits) {
        float max = Float.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double[] p = new double[logits.length];
        double total = 0;
        for (int t = 0; t < logits.length; t++) {
            p[t] = logits[t] == Float.NEGATIVE_INFINITY ? 0 : Math.exp((double) logits[t] - max);
            total += p[t];
        }
        for (int t = 0; t < p.length; t++) {
            p[t] /= total;
        }
        return p;
    }
}
