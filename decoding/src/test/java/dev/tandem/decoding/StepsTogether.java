package dev.tandem.decoding;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Steps several tasks together through {@link StepExecutor} (package-private), as {@link Engine} will: for the
 * tests of methods in other packages that check a request gives the same tokens among others as alone.
 */
public final class StepsTogether {
    private StepsTogether() {
    }

    /** A task's result and the events its steps returned, in order. */
    public record Run(GenerationResult result, List<TokenEvent> streamed) {}

    /**
     * Starts {@code tasks} (sequences from each model's cache) and steps the unfinished ones together, at most
     * {@code prefillRowsPerStep} prompt rows per model per step, until all have finished; rethrows the first
     * failure after freeing every task's blocks.
     */
    public static List<Run> run(List<DecodingTask> tasks, int prefillRowsPerStep) {
        List<List<TokenEvent>> streamed = new ArrayList<>();
        try {
            for (DecodingTask t : tasks) {
                t.start(DecodingTask.KvSource.MODEL);
                streamed.add(new ArrayList<>());
            }
            while (true) {
                List<DecodingTask> live = tasks.stream().filter(t -> !t.finished()).toList();
                if (live.isEmpty()) {
                    break;
                }
                Map<DecodingTask, StepExecutor.Outcome> outcomes = StepExecutor.step(live, prefillRowsPerStep);
                for (int i = 0; i < tasks.size(); i++) {
                    StepExecutor.Outcome o = outcomes.get(tasks.get(i));
                    if (o == null) {
                        continue;
                    }
                    if (o.failed()) {
                        throw new IllegalStateException("task " + i + " failed", o.failure());
                    }
                    streamed.get(i).addAll(o.events());
                }
            }
        } catch (RuntimeException | Error e) {
            tasks.forEach(DecodingTask::abandon);
            throw e;
        }
        List<Run> runs = new ArrayList<>();
        for (int i = 0; i < tasks.size(); i++) {
            runs.add(new Run(tasks.get(i).result(), List.copyOf(streamed.get(i))));
        }
        return runs;
    }

    /**
     * {@link #run} over {@code tasks}, returning their results in order, each checked against the events
     * its steps streamed.
     */
    public static List<GenerationResult> results(int prefillRowsPerStep, DecodingTask... tasks) {
        List<GenerationResult> out = new ArrayList<>();
        List<Run> runs = run(List.of(tasks), prefillRowsPerStep);
        for (int i = 0; i < runs.size(); i++) {
            org.junit.jupiter.api.Assertions.assertEquals(runs.get(i).result().logprobs(), runs.get(i).streamed(),
                    "task " + i + ": streamed events");
            out.add(runs.get(i).result());
        }
        return out;
    }
}
