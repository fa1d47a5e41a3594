package dev.tandem.decoding;

import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.List;

/**
 * One request decoded by one method, as a state machine driven in <b>steps</b>: the step protocol that
 * lets {@link Engine} put the rows of many requests, of many methods and of several models into shared
 * forward passes, and that {@link DecodingStrategy#generate} runs alone as a thin loop ({@link Steps#run}).
 *
 * <h2>A step</h2>
 * <ol>
 *   <li>{@link #beginStep()} once.</li>
 *   <li>For each model of {@link #models()}, passes of that model until no task wants one more: before
 *   each pass {@link #next} says which entries (sequences and their rows) this task adds to it, empty for
 *   none; after it {@link #advance} hands back the results of exactly those entries. A task may run
 *   several passes of one model in a step (a draft model drafting γ tokens) and passes of several
 *   models (PEARL: the target verifies while the draft drafts).</li>
 *   <li>{@link #endStep()} once: the tokens the step accepted, in order (none, one or several).</li>
 * </ol>
 * Within a step the work on one model never depends on the work on another: the driver may run
 * different models' passes at the same time, on different threads. So {@code next} and {@code advance}
 * for one model are called from one thread, and a task that uses two models in a step keeps their state
 * apart until {@code endStep}, which runs after every pass of the step (happens-after all of them).
 *
 * <h2>Exactness</h2>
 * A task's decisions depend only on the logits (hidden states) it is handed and its request's RNG keys,
 * never on the other rows of a pass, on timing or on threads; passes are batch-invariant. So a request
 * gives the same tokens alone and among any others, however its prompt is chunked
 * ({@link PrefillBudget}).
 */
public interface DecodingTask {

    /** Where a task's KV sequences come from: a model's cache, or a reservation in it. */
    @FunctionalInterface
    interface KvSource {
        KvSequence newSequence(LanguageModel model);

        /** Sequences straight from each model's cache. */
        KvSource MODEL = LanguageModel::newSequence;
    }

    /**
     * Prompt rows a pass may still take, shared by the tasks of a step in admission order: a long
     * prompt is prefilled in chunks so that it never stalls the other requests for a whole prompt.
     */
    final class PrefillBudget {
        private int left;

        public PrefillBudget(int rows) {
            if (rows < 0) {
                throw new IllegalArgumentException("a prefill budget can't be negative: " + rows);
            }
            this.left = rows;
        }

        /** No limit: a lone request prefills its whole prompt in one pass. */
        public static PrefillBudget unlimited() {
            return new PrefillBudget(Integer.MAX_VALUE);
        }

        /** Takes up to {@code wanted} rows; returns how many were granted (0 when spent). */
        public int take(int wanted) {
            int n = Math.min(wanted, left);
            left -= n;
            return n;
        }

        public int left() {
            return left;
        }
    }

    /** The method's name, as {@code --method} spells it. */
    String method();

    /** The models this task runs passes on, the target first; fixed for its life. */
    List<LanguageModel> models();

    /**
     * KV blocks this task may hold at once in {@code model}'s cache: its prompt, its max tokens (capped
     * at the context) and the rows a round may add before it rolls back.
     */
    int blocksNeeded(LanguageModel model);

    /** Takes the task's KV sequences from {@code kv}; called once, before the first step. */
    void start(KvSource kv);

    void beginStep();

    /**
     * The entries this task adds to the next pass of {@code model}: empty when it wants no (more) pass of
     * it in this step. Prompt rows are taken from {@code prefill}.
     */
    List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill);

    /**
     * The results of the entries the last {@link #next} for {@code model} returned (entry i of
     * {@code result} is the i-th of them), and the pass's wall time.
     */
    void advance(LanguageModel model, ForwardResult result, long nanos);

    /** The tokens accepted in this step, in order. */
    List<TokenEvent> endStep();

    boolean finished();

    /** The result, with the method's {@link DecodeStats}, once {@link #finished()}. */
    GenerationResult result();

    /** Ends a task that has not finished with {@code reason} (e.g. cancelled) and frees its KV blocks. */
    void end(FinishReason reason);

    /** Frees the KV blocks without a result (the task failed); idempotent. */
    void abandon();
}
