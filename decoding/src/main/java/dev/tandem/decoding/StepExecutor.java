package dev.tandem.decoding;

import dev.tandem.runtime.Backend;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs one step of the {@link DecodingTask} protocol for a list of tasks (in admission order): for each
 * model any task uses, passes of that model until no task wants another, every pass one
 * {@link LanguageModel#forward} over the entries of all tasks that asked; then each task's
 * {@link DecodingTask#endStep}. Models on different backends run at the same time (a draft on its own
 * thread pool drafts while the target verifies); models sharing a backend take turns on it.
 *
 * <p>Failures stay with the tasks they belong to: a pass that throws fails the tasks that had entries
 * in it, a task whose {@code next}, {@code advance} or {@code endStep} throws fails alone; the others go on.
 */
final class StepExecutor {
    /** More passes of one model in one step than this is a task that never stops asking: a bug. */
    static final int MAX_PASSES_PER_STEP = 100_000;

    private static final ExecutorService THREADS = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "tandem-step");
        t.setDaemon(true);
        return t;
    });

    /** What a step did for one task: the tokens it accepted, or why it failed. */
    record Outcome(List<TokenEvent> events, Throwable failure) {
        boolean failed() {
            return failure != null;
        }
    }

    private StepExecutor() {
    }

    /**
     * One step of every task in {@code tasks} (none finished); the passes of each model take at most
     * {@code prefillRowsPerStep} prompt rows in all, shared in the order of {@code tasks}.
     */
    static Map<DecodingTask, Outcome> step(List<DecodingTask> tasks, int prefillRowsPerStep) {
        Map<DecodingTask, Throwable> failed = new ConcurrentHashMap<>();
        List<DecodingTask> live = new ArrayList<>();
        for (DecodingTask t : tasks) {
            try {
                t.beginStep();
                live.add(t);
            } catch (RuntimeException | Error e) {
                failed.put(t, e);
            }
        }
        // Models grouped by backend, in the order tasks name them.
        Map<Backend, List<LanguageModel>> groups = new LinkedHashMap<>();
        Map<LanguageModel, Boolean> seen = new IdentityHashMap<>();
        for (DecodingTask t : live) {
            for (LanguageModel m : t.models()) {
                if (seen.put(m, Boolean.TRUE) == null) {
                    groups.computeIfAbsent(m.backend(), b -> new ArrayList<>()).add(m);
                }
            }
        }
        AtomicLong passes = new AtomicLong();
        List<List<LanguageModel>> order = new ArrayList<>(groups.values());
        List<Future<?>> others = new ArrayList<>();
        for (int g = 1; g < order.size(); g++) {
            List<LanguageModel> group = order.get(g);
            others.add(THREADS.submit(() -> runGroup(group, live, failed, prefillRowsPerStep, passes)));
        }
        Throwable groupFailure = null;
        if (!order.isEmpty()) {
            try {
                runGroup(order.getFirst(), live, failed, prefillRowsPerStep, passes);
            } catch (RuntimeException | Error e) {
                groupFailure = e;
            }
        }
        for (Future<?> f : others) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                groupFailure = e;
            } catch (java.util.concurrent.ExecutionException e) {
                groupFailure = e.getCause();
            }
        }
        Map<DecodingTask, Outcome> out = new IdentityHashMap<>();
        for (DecodingTask t : tasks) {
            Throwable f = failed.get(t);
            if (f == null && groupFailure != null) {
                f = groupFailure; // the driver itself broke: nobody's step is trustworthy
            }
            if (f != null) {
                out.put(t, new Outcome(List.of(), f));
                continue;
            }
            try {
                List<TokenEvent> events = List.copyOf(t.endStep());
                if (passes.get() == 0 && events.isEmpty() && !t.finished()) {
                    // Nobody ran a pass, so the next step would be this one again: fail rather than spin.
                    throw new IllegalStateException("the " + t.method() + " task asked for no forward pass and accepted no "
                            + "token in a step in which no task ran a pass, so it would never finish");
                }
                out.put(t, new Outcome(events, null));
            } catch (RuntimeException | Error e) {
                out.put(t, new Outcome(List.of(), e));
            }
        }
        return out;
    }

    /** Models are told apart by identity (a model need not define equals; a proxy's does not hold for itself). */
    private static boolean usesModel(DecodingTask task, LanguageModel model) {
        for (LanguageModel m : task.models()) {
            if (m == model) {
                return true;
            }
        }
        return false;
    }

    /** Every pass this step needs of each model in {@code group}, one model after the other. */
    private static void runGroup(List<LanguageModel> group, List<DecodingTask> tasks, Map<DecodingTask, Throwable> failed,
                                 int prefillRowsPerStep, AtomicLong passes) {
        for (LanguageModel model : group) {
            DecodingTask.PrefillBudget budget = new DecodingTask.PrefillBudget(prefillRowsPerStep);
            for (int pass = 0; ; pass++) {
                if (pass == MAX_PASSES_PER_STEP) {
                    throw new IllegalStateException("a task asked for more than " + MAX_PASSES_PER_STEP
                            + " passes of one model in one step");
                }
                List<DecodingTask> members = new ArrayList<>();
                List<Integer> counts = new ArrayList<>();
                List<Batch.Entry> entries = new ArrayList<>();
                for (DecodingTask t : tasks) {
                    if (failed.containsKey(t) || !usesModel(t, model)) {
                        continue;
                    }
                    try {
                        List<Batch.Entry> mine = t.next(model, budget);
                        if (!mine.isEmpty()) {
                            members.add(t);
                            counts.add(mine.size());
                            entries.addAll(mine);
                        }
                    } catch (RuntimeException | Error e) {
                        failed.put(t, e);
                    }
                }
                if (entries.isEmpty()) {
                    break;
                }
                passes.incrementAndGet();
                long t0 = System.nanoTime();
                ForwardResult result;
                try {
                    result = model.forward(Batch.of(entries));
                } catch (RuntimeException | Error e) {
                    for (DecodingTask t : members) {
                        failed.put(t, e);
                    }
                    continue;
                }
                long nanos = System.nanoTime() - t0;
                int from = 0;
                for (int i = 0; i < members.size(); i++) {
                    DecodingTask t = members.get(i);
                    try {
                        t.advance(model, result.slice(from, counts.get(i)), nanos);
                    } catch (RuntimeException | Error e) {
                        failed.put(t, e);
                    }
                    from += counts.get(i);
                }
            }
        }
    }
}
