package dev.tandem.decoding;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Runs several tasks in shared steps ({@link StepExecutor}, package-private), as {@link Engine} will: for
 * the tests of methods in other packages that check a request gives the same tokens among others as alone.
 */
public final class SteppedTogether {
    private SteppedTogether() {
    }

    /**
     * Starts {@code tasks} and steps them together, each model's passes taking at most
     * {@code prefillRowsPerStep} prompt rows a step, until all have finished; returns their results, in
     * order, each checked against the tokens its steps streamed.
     */
    public static List<GenerationResult> run(int prefillRowsPerStep, DecodingTask... tasks) {
        List<List<TokenEvent>> streamed = new ArrayList<>();
        for (DecodingTask t : tasks) {
            t.start(DecodingTask.KvSource.MODEL);
            streamed.add(new ArrayList<>());
        }
        try {
            for (int step = 0; ; step++) {
                List<DecodingTask> live = new ArrayList<>();
                for (DecodingTask t : tasks) {
                    if (!t.finished()) {
                        live.add(t);
                    }
                }
                if (live.isEmpty()) {
                    break;
                }
                if (step == 100_000) {
                    throw new IllegalStateException("tasks that never finish");
                }
                Map<DecodingTask, StepExecutor.Outcome> outcomes = StepExecutor.step(live, prefillRowsPerStep);
                for (int i = 0; i < tasks.length; i++) {
                    StepExecutor.Outcome o = outcomes.get(tasks[i]);
                    if (o == null) {
                        continue;
                    }
                    if (o.failed()) {
                        throw new AssertionError("task " + i + " failed", o.failure());
                    }
                    streamed.get(i).addAll(o.events());
                }
            }
        } catch (RuntimeException | Error e) {
            for (DecodingTask t : tasks) {
                t.abandon();
            }
            throw e;
        }
        List<GenerationResult> results = new ArrayList<>();
        for (int i = 0; i < tasks.length; i++) {
            GenerationResult r = tasks[i].result();
            assertEquals(r.logprobs(), streamed.get(i), "task " + i + ": streamed events");
            results.add(r);
        }
        return results;
    }
}
