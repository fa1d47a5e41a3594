package dev.tandem.decoding.mix;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.transformer.LanguageModel;

import java.util.Objects;
import java.util.function.Consumer;

/**
 * Decoding by contrasting layers (DoLa, Chuang et al., ICLR 2024), as Hugging Face transformers'
 * {@code _dola_decoding} / {@code _dola_select_contrast} do it. Each step, with z_F the final layer's next-token logits
 * and z_l those of candidate layer l (its output through the final norm and the LM head:
 * {@link dev.tandem.transformer.Batch.Entry#withLayerLogits}), log p = log-softmax:
 * <pre>
 *   M_l   = (p_F + p_l) / 2
 *   JSD_l = ½ · (mean_t M_l·(log M_l − log p_F) + mean_t M_l·(log M_l − log p_l))      (0 where M_l(t) = 0)
 *   L     = the candidate of largest JSD_l (the first in the given order on a tie); with one candidate, that one
 *   V     = {t : log p_F(t) − max log p_F ≥ ln α}  =  {t : z_F(t) − max z_F ≥ ln α}
 *   score = log p_F(t) − log p_L(t) on V, −∞ elsewhere
 * </pre>
 * then the request's logits processors and sampler ({@link dev.tandem.decoding.RequestState#accept}): repetition
 * penalty, temperature, top-k/p, min-p on the score, as HF's {@code logits_processor} runs on it. In detail:
 * <ul>
 *   <li>The "JSD" is HF's: {@code F.kl_div(log_softmax(z), M)} is KL(M ‖ p), so JSD_l = ½·(KL(M ‖ p_F) + KL(M ‖ p_l))
 *   (each averaged over the vocabulary), not the textbook ½·(KL(p_F ‖ M) + KL(p_l ‖ M)), which can rank the layers
 *   differently; it is taken between the softmaxes of the layers' raw logits, in double. HF then averages it over
 *   the batch: here a batch of one, so each request picks its own layer each step.</li>
 *   <li>The plausible set V is HF's relative-top filter with {@code min_tokens_to_keep = 1}; HF tests the final
 *   layer's log-softmax, this class its raw logits in double — the same set, since the normaliser cancels, up to
 *   rounding at the threshold (the test {@link dev.tandem.runtime.LogitMix} uses too). α = 0 keeps every token.</li>
 *   <li>The score is the difference of log-softmaxes, not of raw logits, computed in double from the backend's float
 *   logits and rounded once to float. Logprobs are those of the score.</li>
 *   <li>Layers are 0-based decoder layers, a layer's hidden state being its output: layer a is HF's
 *   {@code dola_layers} index a + 1 (HF's 0, the embedding output, is not offered). Unlike HF, which drops a
 *   candidate at or past the final layer without a word, every candidate must be a lower layer: the final layer,
 *   a layer past the model's depth, a repeated layer or an empty list is refused with one sentence.</li>
 *   <li>Unlike HF's {@code _dola_decoding}, which applies {@code lm_head} to the lower hidden states directly, each
 *   goes through the model's final norm first (issue 16's early exit: the norm is part of a pre-norm model's head).</li>
 *   <li>Repetition penalty: 1.2 is the value recommended for DoLa (HF's {@code GenerationConfig.validate} warns when
 *   {@code dola_layers} is set with a penalty below 1.2). A request that sets a
 *   penalty (≠ 1) keeps it; one that sets none (1) gets this strategy's {@code repetitionPenalty}, which is
 *   1.2 by default ({@link #DEFAULT_REPETITION_PENALTY}) and off when given as 1.</li>
 * </ul>
 * One sequence, one pass a step: the prompt in chunks, then a row a step, its final logits and the candidates' layer
 * logits from that one pass; the Engine batches it with any other task. {@link dev.tandem.decoding.DecodeStats}
 * counts those passes as the target's.
 */
public final class LayerContrastDecoding implements DecodingStrategy {

    /** The plausibility threshold α of HF's relative-top filter ({@code relative_top = 0.1}). */
    public static final double DEFAULT_ALPHA = 0.1;

    /** The repetition penalty a request that sets none gets (the 1.2 recommended for DoLa). */
    public static final float DEFAULT_REPETITION_PENALTY = 1.2f;

    private final LanguageModel model;
    private final int[] layers;
    private final double alpha;
    private final float repetitionPenalty;
    private final Consumer<float[]> trace;

    private LayerContrastDecoding(LanguageModel model, int[] layers, double alpha, float repetitionPenalty, Consumer<float[]> trace) {
        this.model = model;
        this.layers = layers;
        this.alpha = alpha;
        this.repetitionPenalty = repetitionPenalty;
        this.trace = trace;
    }

    /** DoLa over the candidate {@code layers} with α = {@value #DEFAULT_ALPHA} and the default repetition penalty. */
    public static LayerContrastDecoding dola(LanguageModel model, int... layers) {
        return dola(model, layers, DEFAULT_ALPHA, DEFAULT_REPETITION_PENALTY);
    }

    /**
     * DoLa over the candidate {@code layers} ({@code --layers}).
     *
     * @param layers            0-based decoder layers below the final one, none twice, at least one
     * @param alpha             the plausibility threshold, in [0, 1] ({@value #DEFAULT_ALPHA}, HF's fixed {@code relative_top})
     * @param repetitionPenalty the penalty for requests that set none, finite and &gt; 0; 1 turns it off
     *                          (1.2 recommended)
     * @throws IllegalArgumentException naming the bad value in one sentence
     */
    public static LayerContrastDecoding dola(LanguageModel model, int[] layers, double alpha, float repetitionPenalty) {
        Objects.requireNonNull(model, "model");
        int[] checked = candidates(model, layers);
        if (!(alpha >= 0 && alpha <= 1)) {
            throw new IllegalArgumentException("--alpha must be in [0, 1], but was " + alpha + ".");
        }
        if (!(repetitionPenalty > 0) || Float.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("--repetition-penalty must be a finite number > 0 (1 turns it off), but was "
                    + repetitionPenalty + ".");
        }
        return new LayerContrastDecoding(model, checked, alpha, repetitionPenalty, null);
    }

    /** The candidate layers, checked against the model's depth. */
    private static int[] candidates(LanguageModel model, int[] layers) {
        if (layers == null || layers.length == 0) {
            throw new IllegalArgumentException("--layers must name at least one layer.");
        }
        int n = model.config().numLayers();
        for (int i = 0; i < layers.length; i++) {
            int l = layers[i];
            if (l < 0) {
                throw new IllegalArgumentException("--layers holds " + l + ", but decoder layers count from 0.");
            }
            if (l >= n) {
                throw new IllegalArgumentException("--layers holds layer " + l + ", past the " + n + " decoder layers of "
                        + model.directory() + " (0 to " + (n - 1) + ").");
            }
            if (l == n - 1) {
                throw new IllegalArgumentException("--layers holds layer " + l + ", the final layer of " + model.directory()
                        + ", which DoLa contrasts the candidates with; they must be lower layers" + (n > 1 ? ", 0 to " + (n - 2) : "")
                        + ".");
            }
            for (int j = 0; j < i; j++) {
                if (layers[j] == l) {
                    throw new IllegalArgumentException("--layers names layer " + l + " twice.");
                }
            }
        }
        return layers.clone();
    }

    /**
     * This method also handing {@code scores} each step's contrast row (a copy, before the processors and the sampler),
     * in order: for tests and for looking at what the method does.
     */
    public LayerContrastDecoding traced(Consumer<float[]> scores) {
        return new LayerContrastDecoding(model, layers, alpha, repetitionPenalty, Objects.requireNonNull(scores, "scores"));
    }

    @Override
    public String name() {
        return "dola";
    }

    public LanguageModel model() {
        return model;
    }

    /** The candidate layers, in the given order. */
    public int[] layers() {
        return layers.clone();
    }

    public double alpha() {
        return alpha;
    }

    /** The repetition penalty a request that sets none gets. */
    public float repetitionPenalty() {
        return repetitionPenalty;
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new LayerContrastTask(model, layers, alpha, repetitionPenalty, request, trace);
    }

    /** The index (into {@code candidates}) of the candidate whose distribution is farthest from the final one's (JSD). */
    static int farthest(double[] finalLogSoftmax, double[][] candidateLogSoftmax) {
        if (candidateLogSoftmax.length == 1) {
            return 0;
        }
        int vocab = finalLogSoftmax.length;
        int best = 0;
        double bestJsd = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < candidateLogSoftmax.length; j++) {
            double[] lsL = candidateLogSoftmax[j];
            double klF = 0, klL = 0;
            for (int t = 0; t < vocab; t++) {
                double m = 0.5 * (Math.exp(finalLogSoftmax[t]) + Math.exp(lsL[t]));
                if (m > 0) {
                    double logM = Math.log(m);
                    klF += m * (logM - finalLogSoftmax[t]);
                    klL += m * (logM - lsL[t]);
                }
            }
            double jsd = 0.5 * (klF / vocab + klL / vocab);
            if (jsd > bestJsd) {
                best = j;
                bestJsd = jsd;
            }
        }
        return best;
    }

    /** log-softmax of {@code z}, in double. */
    static double[] logSoftmax(float[] z) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : z) {
            max = Math.max(max, v);
        }
        double sum = 0;
        for (float v : z) {
            sum += Math.exp(v - max);
        }
        double lse = max + Math.log(sum);
        double[] out = new double[z.length];
        for (int t = 0; t < z.length; t++) {
            out[t] = z[t] - lse;
        }
        return out;
    }

    /**
     * The score row of one step: log p_F − log p_L on the final layer's α-plausible set, −∞ elsewhere, with L the
     * farthest candidate; {@code chosen[0]} receives L's index into {@code candidates}.
     */
    static float[] contrast(float[] finalLogits, float[][] candidates, double alpha, int[] chosen) {
        double[] lsF = logSoftmax(finalLogits);
        double[][] lsC = new double[candidates.length][];
        for (int j = 0; j < candidates.length; j++) {
            lsC[j] = logSoftmax(candidates[j]);
        }
        int l = farthest(lsF, lsC);
        chosen[0] = l;
        double max = Double.NEGATIVE_INFINITY;
        for (float v : finalLogits) {
            max = Math.max(max, v);
        }
        double floor = Math.log(alpha);
        float[] out = new float[finalLogits.length];
        for (int t = 0; t < out.length; t++) {
            boolean plausible = (double) finalLogits[t] - max >= floor && finalLogits[t] != Float.NEGATIVE_INFINITY;
            out[t] = plausible ? (float) (lsF[t] - lsC[l][t]) : Float.NEGATIVE_INFINITY;
        }
        return out;
    }
}
