package dev.tandem.decoding.beam;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.transformer.LanguageModel;

/**
 * Beam search ({@code --method beam}) and diverse beam search ({@code --method diverse-beam}; Vijayakumar et al.,
 * "Diverse Beam Search", 2016) over one model. Deterministic, and exactly Hugging Face transformers' beam search
 * for a decoder-only model: {@code _beam_search} (the rewrite of 4.50) with {@code early_stopping=False},
 * {@code do_sample=False}, {@code length_penalty} = L and {@code num_return_sequences} = N; for G &gt; 1 groups,
 * its group beam search ({@code transformers-community/group-beam-search}, formerly {@code _group_beam_search})
 * with the {@code HammingDiversityLogitsProcessor}. With B beams in G groups (B / G beams a group), each step:
 * <ol>
 *   <li><b>Scores.</b> For each beam, log_softmax of its raw logits, then the processors: the repetition penalty
 *   over the prompt and the beam's tokens (on log-probabilities, all ≤ 0, so a seen token's score is multiplied by
 *   it); then, in group g, λ × (the number of beams of groups 0 … g−1 that chose the token at this step) is
 *   subtracted. A candidate (beam, token) scores the beam's running score (the sum of its processed token scores)
 *   plus the token's. Temperature, top-k, top-p and min-p are sampling warpers, which HF applies only when
 *   sampling: they are ignored, and a request with a temperature above 0 is refused.</li>
 *   <li><b>Candidates.</b> Each group, in order, takes its K = max(2, 1 + number of EOS ids) × B/G best candidates
 *   over all its beams and the vocabulary (ties: the earlier beam, then the lower token id; −Infinity never). At
 *   the first step a group's only beam is the prompt (HF starts all but one beam of each group at −10⁹).</li>
 *   <li><b>Stops.</b> A candidate stops when its token is an EOS id, when its text reaches a stop string (the text
 *   streamed as plain decoding streams it), or when it holds the request's max tokens (capped by the context as
 *   plain decoding caps them). A stopped candidate of rank &lt; B/G becomes a finished hypothesis scoring
 *   sum / generated_len^L, where sum is its running score and generated_len counts every generated token,
 *   the final EOS included; a stopped candidate of rank ≥ B/G is skipped. The best B/G candidates that did not
 *   stop are the group's beams for the next step. Each group keeps its B/G best finished hypotheses.</li>
 *   <li><b>Done.</b> A group is done when no beam goes on, or when it holds B/G finished hypotheses and its best
 *   beam's running score / generated_len^L (with the length now: early_stopping=False's heuristic) is no higher
 *   than its worst finished score. At max tokens every candidate stops, so the running beams join the finished
 *   ones (its B/G best candidates by rank) and every group is done. The search ends when every group is done.</li>
 * </ol>
 * The result holds the N best finished hypotheses of all groups by score, best first
 * ({@link GenerationResult#hypotheses()}); its own tokens, text, finish reason and token events are the best
 * one's, as plain decoding gives them for those tokens. The listener sees those events when the search ends (the
 * best hypothesis is unknown until then). B = 1 is greedy decoding, token for token (with a repetition penalty
 * it is not: greedy penalises logits, beam search log-probabilities, as in HF).
 *
 * <p>Where this departs from HF: a stopped candidate never runs on (HF scores it −10⁹ and may still keep it as
 * a beam when fewer than B/G candidates can go on, which only stop strings can cause here); with G &gt; 1 each
 * group's done test is {@code _beam_search}'s (its best running beam) where HF's group search uses its best
 * candidate, and a done group's beams end and count no token for the diversity penalty (HF pads them); scores are
 * summed in double (HF: float32).
 *
 * <p>All live beams of a request go into one forward pass per step, one sequence each; beams share the prompt's
 * and their common prefix's KV blocks copy-on-write and free them as they drop ({@link BeamTask}). In an
 * {@link dev.tandem.decoding.Engine} the request runs batched with any others and gives the same result as alone.
 */
public final class BeamSearch implements DecodingStrategy {
    /** The method's name when G = 1. */
    public static final String NAME = "beam";
    /** The method's name when G &gt; 1. */
    public static final String DIVERSE_NAME = "diverse-beam";

    private final LanguageModel model;
    private final BeamParams params;

    public BeamSearch(LanguageModel model, BeamParams params) {
        this.model = model;
        this.params = params;
    }

    /** {@code beam}, or {@code diverse-beam} with several groups. */
    @Override
    public String name() {
        return params.method();
    }

    public LanguageModel model() {
        return model;
    }

    public BeamParams params() {
        return params;
    }

    /**
     * @throws IllegalArgumentException if the request samples (a temperature above 0)
     * @throws dev.tandem.runtime.TandemException if the prompt is bad for the model
     */
    @Override
    public DecodingTask task(GenerationRequest request) {
        float temperature = request.sampling().temperature();
        if (temperature != 0f) {
            throw new IllegalArgumentException("--method " + name() + " is deterministic, so it takes no --temperature, but it was "
                    + temperature + ".");
        }
        return new BeamTask(model, params, request);
    }
}
