package dev.tandem.decoding.mix;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.SharedVocabulary;
import dev.tandem.runtime.LogitMix;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.LanguageModel;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Decoding with several <b>views</b> at once: each view is a sequence on a model (the same model with another
 * prompt, or another model on the same prompt), every view grows by each generated token, and each token is chosen
 * from one {@link LogitMix} of the views' next-token logits — a weighted sum with an optional plausibility mask,
 * computed where the logits are ({@link dev.tandem.runtime.Backend#mixLogits}) — then the request's usual logits
 * processors and sampler ({@link dev.tandem.decoding.RequestState#accept}). The methods are this with other views
 * and weights:
 * <table>
 *   <caption>The methods</caption>
 *   <tr><th>method</th><th>views</th><th>score</th></tr>
 *   <tr><td>{@code contrastive}</td><td>expert(prompt), amateur(prompt)</td>
 *       <td>(1+β)·z_E − β·z_A on {t : p_E(t) ≥ α·max p_E}, −∞ elsewhere (O'Brien &amp; Lewis)</td></tr>
 *   <tr><td>{@code proxy-tune}</td><td>large(prompt), tuned(prompt), base(prompt)</td>
 *       <td>z_large + α·z_tuned − α·z_base (Liu et al.)</td></tr>
 *   <tr><td>{@code cad}</td><td>model(context + prompt), model(prompt)</td><td>(1+α)·z(y | c, x) − α·z(y | x) (Shi et al.)</td></tr>
 *   <tr><td>{@code cfg}</td><td>model(prompt), model(negative prompt)</td><td>γ·z + (1−γ)·z_neg = z_neg + γ·(z − z_neg)</td></tr>
 *   <tr><td>{@code lol}</td><td>expert(prompt) at its final layer and layer L, amateur(prompt) likewise</td>
 *       <td>CD(final) + λ·CD(L), CD(h) = (1+β)·z_E(h) − β·z_A(h), on the expert's final-layer α-plausible set (Chen et al.)</td></tr>
 *   <tr><td>{@code caad}</td><td>model(prompt), and a row retrieved for its state</td>
 *       <td>z + w·Σ sᵢ·ℓᵢ / Σ sᵢ over the N stored pairs nearest the state ({@link GroundingStore}; Nguyen et al.)</td></tr>
 * </table>
 * A view's row is its model's next-token logits, or a lower layer's output through the model's final norm and LM head
 * ({@link View#atLayers}); a view's rows all come from its one pass a step.
 * Written as weights on rows, a weight of 1 on the first view and 0 on the others returns its logits exactly, so
 * contrastive β = 0 (with α = 0), proxy tuning α = 0, CAD α = 0, guidance γ = 1 and CAAD w = 0 decode exactly as plain
 * decoding of the first view's sequence does, greedy or sampled.
 *
 * <p>A row need not come from a pass: CAAD's last row is computed on the host from the first view's final normalised
 * hidden state at the position being predicted (a {@link StateRow}), then written beside the views' rows and mixed
 * with them.
 *
 * <p>The first view is the output's: its model's tokenizer, EOS tokens and context, and its sequence is the result's
 * prompt. Views of one model go into that model's passes together (CAD's two sequences: one pass); the views of
 * several models run their own passes in the same step (the Engine may run them at once). Logprobs are those of the
 * mixed logits. {@link dev.tandem.decoding.DecodeStats}: {@code targetForwardPasses} counts the first view's model's
 * passes, {@code draftForwardPasses} the other models' (prompt chunks included).
 *
 * <p>All views' models must share one backend (the rows are mixed where they are) and a vocabulary.
 */
public final class LogitMixDecoding implements DecodingStrategy {

    /**
     * One view: {@code model} decoding the sequence {@code promptIds} gives for a request (the generated tokens follow
     * it). The ids are checked against the model's vocabulary and context when a task is made. A view gives the mix
     * one row per entry of {@code layers}, in order: {@link #FINAL} is the model's next-token logits, a 0-based decoder
     * layer l its output through the model's final norm and LM head
     * ({@link dev.tandem.transformer.Batch.Entry#withLayerLogitsInto}); all come from the view's one pass a step.
     */
    public record View(String role, LanguageModel model, Function<GenerationRequest, int[]> promptIds, int[] layers) {
        /** The row of a view's next-token logits: its model's final layer. */
        public static final int FINAL = -1;

        public View {
            Objects.requireNonNull(role, "role");
            Objects.requireNonNull(model, "model");
            Objects.requireNonNull(promptIds, "promptIds");
            layers = layers == null ? new int[] {FINAL} : layers.clone();
            if (layers.length == 0) {
                throw new IllegalArgumentException("the " + role + " view gives no row: it needs at least one layer.");
            }
            int n = model.config().numLayers();
            for (int i = 0; i < layers.length; i++) {
                int l = layers[i];
                if (l < FINAL || l >= n) {
                    throw new IllegalArgumentException("the " + role + " view's layer " + l + " is not one of the " + n
                            + " decoder layers of " + model.directory() + " (0 to " + (n - 1) + ", or FINAL).");
                }
                for (int j = 0; j < i; j++) {
                    if (decoderLayer(n, layers[j]) == decoderLayer(n, l)) {
                        throw new IllegalArgumentException("the " + role + " view asks for layer " + decoderLayer(n, l) + " twice.");
                    }
                }
            }
        }

        /** A view of the model's next-token logits alone. */
        public View(String role, LanguageModel model, Function<GenerationRequest, int[]> promptIds) {
            this(role, model, promptIds, null);
        }

        /** {@code model} on the request's own prompt, encoded as plain decoding encodes it. */
        public static View ofPrompt(String role, LanguageModel model) {
            Generator encoder = new Generator(model);
            return new View(role, model, encoder::promptIds);
        }

        /** This view giving the rows of {@code layers} ({@link #FINAL} or 0-based decoder layers) instead. */
        public View atLayers(int... layers) {
            return new View(role, model, promptIds, layers);
        }

        @Override
        public int[] layers() {
            return layers.clone();
        }

        /** The rows this view gives the mix. */
        public int rows() {
            return layers.length;
        }

        /** Whether the view gives its model's next-token logits alone (the ordinary logits, no early exit). */
        boolean finalOnly() {
            return layers.length == 1 && layers[0] == FINAL;
        }

        /** The view's layers as decoder layers ({@link #FINAL} as the model's last). */
        int[] decoderLayers() {
            int n = model.config().numLayers();
            int[] out = new int[layers.length];
            for (int i = 0; i < out.length; i++) {
                out[i] = decoderLayer(n, layers[i]);
            }
            return out;
        }

        private static int decoderLayer(int numLayers, int layer) {
            return layer == FINAL ? numLayers - 1 : layer;
        }
    }

    /**
     * A row of the mix made on the host from the first view's final normalised hidden state (the LM head's input) at the
     * position being predicted, rather than by a model's pass; it follows the views' rows. Called once a token, from
     * the step's end; it must be finite where the mix should return another row exactly.
     */
    @FunctionalInterface
    interface StateRow {
        float[] of(float[] normedState);
    }

    /** caad's N, the stored pairs each step retrieves, when none is given. */
    public static final int DEFAULT_GROUNDING_NEIGHBOURS = 8;
    /** caad's w when none is given: the retrieved mean counts as much as the model's own logits. */
    public static final double DEFAULT_GROUNDING_WEIGHT = 1.0;

    private final String name;
    private final List<View> views;
    private final StateRow stateRow;
    private final LogitMix mix;
    private final Consumer<float[]> trace;

    /**
     * @param name  the method's name ({@code --method})
     * @param views the views, the output's first; their rows, in view order, are the rows of {@code mix}
     * @throws TandemException if the views' models do not share a backend and a vocabulary
     */
    public LogitMixDecoding(String name, List<View> views, LogitMix mix) {
        this(name, views, null, mix, null);
    }

    private LogitMixDecoding(String name, List<View> views, StateRow stateRow, LogitMix mix, Consumer<float[]> trace) {
        this.name = Objects.requireNonNull(name, "name");
        this.views = List.copyOf(views);
        this.stateRow = stateRow;
        this.mix = Objects.requireNonNull(mix, "mix");
        this.trace = trace;
        int rows = this.views.stream().mapToInt(View::rows).sum() + (stateRow != null ? 1 : 0);
        if (rows != mix.rows()) {
            throw new IllegalArgumentException("a mix of " + mix.rows() + " rows needs views" + (stateRow != null ? " and a state row" : "")
                    + " of as many rows, not " + rows);
        }
        View first = this.views.getFirst();
        for (View v : this.views.subList(1, this.views.size())) {
            if (v.model() == first.model()) {
                continue;
            }
            if (v.model().backend() != first.model().backend()
                    && (v.model().backend().placement() != Placement.HOST || first.model().backend().placement() != Placement.HOST)) {
                throw new TandemException("the " + v.role() + " model " + v.model().directory() + " runs on another backend ("
                        + v.model().backend().name() + ") than the " + first.role() + " " + first.model().directory() + " ("
                        + first.model().backend().name() + "); " + name + " mixes their logits where they are, so load both on one.");
            }
            SharedVocabulary.require(first.model(), first.role(), v.model(), v.role(), name + " mixes logits token by token, so the "
                    + v.role() + " must share the " + first.role() + "'s tokenizer");
        }
    }

    /**
     * Contrastive decoding: (1+β)·z_expert − β·z_amateur over the tokens whose expert probability is at least α
     * times the expert's largest, −∞ elsewhere (O'Brien &amp; Lewis's form of Li et al.'s method; raw logits).
     *
     * @param alpha the plausibility threshold, in [0, 1] (0.1 in the paper)
     * @param beta  the amateur's weight, finite and ≥ 0 (0.5 in the paper)
     */
    public static LogitMixDecoding contrastive(LanguageModel expert, LanguageModel amateur, double alpha, double beta) {
        requireUnit("--alpha", alpha);
        requireNonNegative("--beta", beta);
        return new LogitMixDecoding("contrastive", List.of(View.ofPrompt("expert", expert), View.ofPrompt("amateur", amateur)),
                LogitMix.of(weight(1 + beta), weight(-beta)).withMask(0, alpha));
    }

    /** LOL's default weight λ of the lower layer's contrast: as much as the final layer's. */
    public static final double DEFAULT_LOWER_LAYER_WEIGHT = 1.0;

    /**
     * Lower-layer contrastive decoding (LOL, Chen et al., "Lower Layers Matter"): CD(final) + λ·CD(layer L), with
     * CD(h) = (1+β)·z_expert(h) − β·z_amateur(h) on raw logits, where z(L) is each model's own layer-L output through its
     * own final norm and LM head and z(final) its next-token logits; −∞ outside the tokens whose expert (final-layer)
     * probability is at least α times the largest. It is a mix of four rows: expert final, expert layer L, amateur
     * final, amateur layer L, weighted 1+β, λ(1+β), −β, −λβ, masked by the first; λ = 0 is {@link #contrastive}. The
     * paper's truthfulness-refocused prompt is not part of it.
     *
     * @param layer  L, a 0-based decoder layer below the final layer of both models ({@code --layer})
     * @param alpha  the plausibility threshold, in [0, 1] (0.1, contrastive decoding's)
     * @param beta   the amateur's weight, finite and ≥ 0 (0.5, contrastive decoding's)
     * @param lambda the lower layer's weight λ, finite and ≥ 0 ({@value #DEFAULT_LOWER_LAYER_WEIGHT})
     * @throws IllegalArgumentException naming a bad value in one sentence
     * @throws TandemException if the models do not share a backend and a vocabulary
     */
    public static LogitMixDecoding lowerLayerContrast(LanguageModel expert, LanguageModel amateur, int layer, double alpha,
                                                      double beta, double lambda) {
        requireLowerLayer(layer, expert, amateur);
        requireUnit("--alpha", alpha);
        requireNonNegative("--beta", beta);
        requireNonNegative("--lambda", lambda);
        return new LogitMixDecoding("lol", List.of(View.ofPrompt("expert", expert).atLayers(View.FINAL, layer),
                View.ofPrompt("amateur", amateur).atLayers(View.FINAL, layer)),
                LogitMix.of(weight(1 + beta), weight(lambda * (1 + beta)), weight(-beta), weight(-lambda * beta)).withMask(0, alpha));
    }

    /** {@code layer} must lie below the final layer of each model: LOL's lower layer exists in both. */
    private static void requireLowerLayer(int layer, LanguageModel expert, LanguageModel amateur) {
        if (layer < 0) {
            throw new IllegalArgumentException("--layer must be 0 or more (decoder layers count from 0), but was " + layer + ".");
        }
        int lower = Math.min(expert.config().numLayers(), amateur.config().numLayers()) - 1; // lower layers both models have
        requireBelowFinal(layer, expert, "expert", lower);
        requireBelowFinal(layer, amateur, "amateur", lower);
    }

    private static void requireBelowFinal(int layer, LanguageModel model, String role, int lower) {
        int n = model.config().numLayers();
        if (layer >= n - 1) {
            throw new IllegalArgumentException("--layer " + layer + " is not below the final layer of the " + role + " "
                    + model.directory() + " (" + n + " decoder layers, 0 to " + (n - 1) + "); LOL contrasts a lower layer of both "
                    + "models, so " + (lower > 0 ? "--layer must be 0 to " + (lower - 1) : "a model of one layer has none") + ".");
        }
    }

    /**
     * Proxy tuning: z_large + α·(z_tuned − z_base), as z_large + α·z_tuned − α·z_base (Liu et al.).
     *
     * @param alpha the steering strength, finite (1 in the paper)
     */
    public static LogitMixDecoding proxyTuning(LanguageModel large, LanguageModel tuned, LanguageModel base, double alpha) {
        requireFinite("--alpha", alpha);
        return new LogitMixDecoding("proxy-tune", List.of(View.ofPrompt("large", large), View.ofPrompt("tuned", tuned),
                View.ofPrompt("base", base)), LogitMix.of(1f, weight(alpha), weight(-alpha)));
    }

    /**
     * Context-aware decoding: (1+α)·z(y | c, x) − α·z(y | x) (Shi et al.). The first view is {@code context} encoded
     * as a prompt (with the tokenizer's special tokens, e.g. a BOS) followed by the request's prompt encoded as plain
     * text (no special tokens; prompt ids are appended as given); the second is the request's prompt as plain
     * decoding encodes it.
     *
     * @param alpha the context's extra weight, finite and ≥ 0 (0.5 for summaries, 1 for knowledge conflicts)
     */
    public static LogitMixDecoding contextAware(LanguageModel model, String context, double alpha) {
        requireNonNegative("--alpha", alpha);
        int[] contextIds = new Generator(model).promptIds(GenerationRequest.of(requireText("--context", context)));
        View withContext = new View("model with the context", model, request -> {
            int[] prompt = request.promptIds() != null ? request.promptIds() : model.tokenizer().encode(request.prompt());
            int[] ids = java.util.Arrays.copyOf(contextIds, contextIds.length + prompt.length);
            System.arraycopy(prompt, 0, ids, contextIds.length, prompt.length);
            return ids;
        });
        return new LogitMixDecoding("cad", List.of(withContext, View.ofPrompt("model without it", model)),
                LogitMix.of(weight(1 + alpha), weight(-alpha)));
    }

    /**
     * Classifier-free guidance on text: z_neg + γ·(z − z_neg), as γ·z + (1−γ)·z_neg so that γ = 1 gives z exactly. The
     * second view is {@code negativePrompt} encoded as a prompt (empty: the BOS token alone, the unconditional view).
     *
     * @param scale γ, finite
     */
    public static LogitMixDecoding guidance(LanguageModel model, String negativePrompt, double scale) {
        requireFinite("--scale", scale);
        int[] negative = new Generator(model).promptIds(GenerationRequest.of(Objects.requireNonNull(negativePrompt, "negativePrompt")));
        return new LogitMixDecoding("cfg", List.of(View.ofPrompt("model", model),
                new View("negative prompt", model, request -> negative)), LogitMix.of(weight(scale), weight(1 - scale)));
    }

    /**
     * CAAD, retrieval-grounded decoding (Nguyen, Gupta &amp; Le, "Context-Aware Adaptive Decoding for Truthful Text
     * Generation"): z + w·mean, where mean is the similarity-weighted mean of the logits of the {@code neighbours}
     * pairs of {@code store} whose states are most cosine-similar to the model's final normalised hidden state at the
     * position ({@link GroundingStore#groundingRow}). Mixed as 1·z + w·mean, so that w = 0 gives z exactly.
     *
     * @param store      a store built with {@code model} ({@link GroundingStore#open})
     * @param neighbours N, at least 1 (every pair when the store holds fewer); {@value #DEFAULT_GROUNDING_NEIGHBOURS} by default
     * @param weight     w, finite; {@value #DEFAULT_GROUNDING_WEIGHT} by default
     * @throws TandemException if the store was built with another model
     */
    public static LogitMixDecoding grounded(LanguageModel model, GroundingStore store, int neighbours, double weight) {
        Objects.requireNonNull(store, "store");
        if (neighbours < 1) {
            throw new IllegalArgumentException("--neighbours must be at least 1, but was " + neighbours + ".");
        }
        requireFinite("--weight", weight);
        Path dir = model.directory().toAbsolutePath().normalize();
        if (!store.modelDirectory().equals(dir) || store.hiddenSize() != model.config().hiddenSize()
                || store.vocabSize() != model.config().vocabSize()) {
            throw new TandemException("the grounding store " + store.file() + " was built with the model " + store.modelDirectory()
                    + ", not " + dir + "; open it with the model that decodes.");
        }
        return new LogitMixDecoding("caad", List.of(View.ofPrompt("model", model)), state -> store.groundingRow(state, neighbours),
                LogitMix.of(1f, weight(weight)), null);
    }

    /**
     * This method also handing {@code mixedRows} each step's mixed logits (a copy, before the processors and the
     * sampler), in order: for tests and for looking at what a method does.
     */
    public LogitMixDecoding traced(Consumer<float[]> mixedRows) {
        return new LogitMixDecoding(name, views, stateRow, mix, Objects.requireNonNull(mixedRows, "mixedRows"));
    }

    @Override
    public String name() {
        return name;
    }

    public List<View> views() {
        return views;
    }

    /** The mix: a weight per view, then one for the state row where there is one. */
    public LogitMix mix() {
        return mix;
    }

    /**
     * Whether the mix's last row is made from the first view's state ({@code caad}'s retrieved logits) rather than by a
     * view's pass.
     */
    public boolean hasStateRow() {
        return stateRow != null;
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new LogitMixTask(name, views, stateRow, mix, request, trace);
    }

    /** A weight as the mix holds it: a float, refused where it would overflow. */
    private static float weight(double w) {
        float f = (float) w;
        if (!Float.isFinite(f)) {
            throw new IllegalArgumentException("a mixing weight of " + w + " is out of range.");
        }
        return f;
    }

    private static void requireFinite(String flag, double value) {
        if (!Double.isFinite(value) || Math.abs(value) > 1e6) {
            throw new IllegalArgumentException(flag + " must be a finite number of magnitude at most 1e6, but was " + value + ".");
        }
    }

    private static void requireNonNegative(String flag, double value) {
        if (!(value >= 0) || value > 1e6) {
            throw new IllegalArgumentException(flag + " must be a number from 0 to 1e6, but was " + value + ".");
        }
    }

    private static void requireUnit(String flag, double value) {
        if (!(value >= 0 && value <= 1)) {
            throw new IllegalArgumentException(flag + " must be in [0, 1], but was " + value + ".");
        }
    }

    private static String requireText(String flag, String text) {
        if (text == null || text.isEmpty()) {
            throw new IllegalArgumentException(flag + " must not be empty.");
        }
        return text;
    }

    /**
     * {@code view}'s sequence for {@code request}, checked against its model as plain decoding checks a prompt.
     *
     * @throws TandemException if it is empty, longer than the model's context or holds an id outside its vocabulary
     */
    public static int[] checkedPrompt(View view, GenerationRequest request) {
        int[] ids = view.promptIds().apply(request);
        var config = view.model().config();
        if (ids.length == 0) {
            throw new TandemException("the " + view.role() + "'s sequence is empty.");
        }
        if (ids.length > config.maxContext()) {
            throw new TandemException("the " + view.role() + "'s sequence has " + ids.length + " tokens, more than the model's context of "
                    + config.maxContext() + " tokens (" + config.maxContextSource() + ").");
        }
        for (int id : ids) {
            if (id < 0 || id >= config.vocabSize()) {
                throw new TandemException("token id " + id + " of the " + view.role() + "'s sequence is outside the vocabulary of "
                        + config.vocabSize() + " (config.json vocab_size).");
            }
        }
        return ids.clone();
    }

    /**
     * Whether a view other than the first (whose {@code RequestState} watches its own context) has no room for the
     * next token: its sequence ({@code prompts[i]} plus the {@code generated} tokens) has reached its model's context.
     */
    public static boolean anotherViewIsFull(List<View> views, int[][] prompts, int generated) {
        for (int i = 1; i < views.size(); i++) {
            if (prompts[i].length + generated >= views.get(i).model().config().maxContext()) {
                return true;
            }
        }
        return false;
    }

    /** The views' distinct models, the first view's first (what a task's {@code models()} lists). */
    public static List<LanguageModel> distinctModels(List<View> views) {
        List<LanguageModel> models = new ArrayList<>();
        for (View v : views) {
            if (!models.contains(v.model())) {
                models.add(v.model());
            }
        }
        return models;
    }
}
