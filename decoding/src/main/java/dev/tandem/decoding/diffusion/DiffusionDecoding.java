package dev.tandem.decoding.diffusion;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.Steps;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;

import java.util.List;
import java.util.function.Consumer;

/**
 * Masked-diffusion decoding ({@code --method diffusion}): a bidirectional model with a mask token fills a canvas
 * of {@link DiffusionParams#genLength()} positions after the prompt, several positions per forward pass, in the
 * order its {@link UnmaskRule} chooses ({@code METHODS.md}, "Masked diffusion"). The request's
 * {@code maxTokens} is the canvas length; each committed token is the position's most likely one, or, with a
 * temperature above 0, LLaDA's Gumbel-noised argmax (counter-based noise per step, position and token); no other
 * sampling knob applies, and it asks for no logprobs.
 */
public final class DiffusionDecoding implements DecodingStrategy {
    /** The method's name. */
    public static final String NAME = "diffusion";

    private final LanguageModel model;
    private final DiffusionParams params;

    /** @throws TandemException if {@code model} is not a masked-diffusion model (causal, or no mask token) */
    public DiffusionDecoding(LanguageModel model, DiffusionParams params) {
        requireDiffusionModel(model);
        this.model = model;
        this.params = params;
    }

    /** Refuses a causal model, or one without a mask token, in one sentence. */
    public static void requireDiffusionModel(LanguageModel model) {
        if (model.config().isCausal() || model.config().maskTokenId() == null) {
            throw new TandemException("--method diffusion needs a masked-diffusion model (config.json with \"is_causal\": false and a "
                    + "\"mask_token_id\"), but this model is " + (model.config().isCausal() ? "causal" : "without a mask token") + ".");
        }
    }

    /** True when {@code model} is a masked-diffusion model: only diffusion decoding applies to it. */
    public static boolean isDiffusionModel(LanguageModel model) {
        return !model.config().isCausal() && model.config().maskTokenId() != null;
    }

    @Override
    public String name() {
        return NAME;
    }

    public DiffusionParams params() {
        return params;
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return newTask(request);
    }

    private DiffusionTask newTask(GenerationRequest request) {
        var sp = request.sampling();
        if (sp.topK() != 0 || sp.topP() != 1f || sp.minP() != 0f || sp.repetitionPenalty() != 1f) {
            throw new IllegalArgumentException("diffusion decoding takes a temperature (Gumbel noise on each position's argmax) "
                    + "and no top-k, top-p, min-p or repetition penalty.");
        }
        if (sp.temperature() > 0 && model.config().vocabSize() > 1 << 24) {
            throw new IllegalArgumentException("Gumbel noise keys a draw per token id below 2^24, but the vocabulary has "
                    + model.config().vocabSize() + " tokens.");
        }
        if (request.logprobs() != 0) {
            throw new IllegalArgumentException("diffusion decoding does not report logprobs.");
        }
        GenerationRequest r = request.withMaxTokens(params.genLength());
        int[] prompt = new Generator(model).promptIds(r);
        if (prompt.length + params.genLength() > model.config().maxContext()) {
            throw new TandemException("the prompt's " + prompt.length + " tokens and a canvas of " + params.genLength()
                    + " positions do not fit the model's context of " + model.config().maxContext() + " tokens.");
        }
        return new DiffusionTask(model, params, r, prompt, Generator.eosTokenIds(model, r));
    }

    /** A generation with its trace: per step, the [position, token] pairs committed (positions count the prompt). */
    public record Traced(GenerationResult result, List<int[][]> trace) {}

    /** Generates to the end, as {@link #generate}, and returns the steps' trace with the result. */
    public Traced generateTraced(GenerationRequest request, Consumer<TokenEvent> listener) {
        DiffusionTask task = newTask(request);
        GenerationResult result = Steps.run(task, listener);
        return new Traced(result, List.copyOf(task.trace()));
    }
}
