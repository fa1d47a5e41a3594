package dev.tandem.decoding;

import java.util.List;
import java.util.function.Consumer;

/** Runs one {@link DecodingTask} alone, step after step: what {@link DecodingStrategy#generate} does. */
public final class Steps {
    private Steps() {
    }

    /**
     * Starts {@code task} with sequences from each model's cache and steps it to the end, calling
     * {@code listener} with each accepted token; on failure the task's KV blocks are freed and the
     * failure rethrown.
     */
    public static GenerationResult run(DecodingTask task, Consumer<TokenEvent> listener) {
        try {
            task.start(DecodingTask.KvSource.MODEL);
            while (!task.finished()) {
                StepExecutor.Outcome outcome = StepExecutor.step(List.of(task), Integer.MAX_VALUE).get(task);
                if (outcome.failed()) {
                    throw outcome.failure();
                }
                for (TokenEvent e : outcome.events()) {
                    listener.accept(e);
                }
            }
            return task.result();
        } catch (RuntimeException | Error e) {
            task.abandon();
            throw e;
        } catch (Throwable t) {
            task.abandon();
            throw new IllegalStateException(t);
        }
    }
}
