package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.ModelConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The batch suite: what sharing one forward pass buys. (1) Decode throughput with B sequences, each
 * contributing one row per pass; (2) the time of one pass over k new rows of one sequence relative to
 * k = 1 — the cost of verifying k draft tokens at once, which is what makes speculative decoding pay.
 * Both at one thread count, with {@link DecodeBench}'s prompt and median/IQR over repetitions.
 */
public final class BatchBench {

    /**
     * @param promptTokens tokens prefilled into every sequence first (untimed)
     * @param steps        decode passes timed per repetition of a batch size
     * @param repetitions  timed repetitions, after one untimed
     * @param batchSizes   sequences decoded together
     * @param maxRows      the k of the row sweep runs 1..maxRows
     * @param threads      CPU threads
     */
    public record Options(int promptTokens, int steps, int repetitions, int[] batchSizes, int maxRows, int threads) {
        public Options {
            if (promptTokens < 1 || steps < 1 || repetitions < 1 || maxRows < 1 || threads < 1) {
                throw new IllegalArgumentException("batch bench settings must be at least 1.");
            }
            for (int b : batchSizes) {
                if (b < 1) {
                    throw new IllegalArgumentException("--batch-sizes must be at least 1, got " + b + ".");
                }
            }
        }
    }

    /** Decode tokens per second summed over {@code batch} sequences. */
    public record BatchFigure(int batch, Stats tokensPerSecond) {}

    /**
     * Milliseconds of one pass over {@code rows} new rows of one sequence, and the median over repetitions
     * of its time over k = 1's in the same repetition;
     * beside it the pass's arithmetic-bound time (its matrix multiply-adds at the measured peak) and the
     * ratio the issue set as a goal for it: max(1.2, 1.25 × arithmetic-bound time / one row's time).
     */
    public record RowsFigure(int rows, Stats millis, double ratioToOneRow, double fmaBoundMillis, double goalRatio) {
        public boolean meetsGoal() {
            return ratioToOneRow <= goalRatio;
        }
    }

    /** {@code fmaPeakMacsPerSecond}: the best multiply-add rate of {@code options.threads()} threads in this run. */
    public record Result(String model, String dtype, long weightBytesPerToken, long multiplyAddsPerRow,
                         double fmaPeakMacsPerSecond, Options options, List<BatchFigure> batches,
                         List<RowsFigure> rows, MemorySnapshot memory) {}

    private BatchBench() {}

    public static Result run(Path modelDir, String label, Options o, Progress progress) {
        return run(modelDir, label, o, dev.tandem.runtime.Backends.DEFAULT, progress);
    }

    /** The same on the backend {@code device} (a name {@code Backends.open} takes, or auto). */
    public static Result run(Path modelDir, String label, Options o, String device, Progress progress) {
        ModelConfig config = ModelLoader.config(modelDir);
        int largest = 0;
        for (int b : o.batchSizes()) {
            largest = Math.max(largest, b);
        }
        long perSequence = (long) o.promptTokens() + Math.max(o.steps(), o.maxRows());
        if (perSequence > config.maxContext()) {
            throw new TandemException("--prompt-tokens + --tokens (" + perSequence + ") exceed the context of " + label
                    + " (" + config.maxContext() + " tokens, " + config.maxContextSource() + ").");
        }
        long total = (long) (o.repetitions() + 1) * (o.batchSizes().length + o.maxRows());
        long done = 0;
        ModelLoader.Options load = ModelLoader.Options.defaults().withThreads(o.threads())
                .withDevice(dev.tandem.runtime.Backends.choose(device).name())
                .withKvTokens((int) Math.min(Integer.MAX_VALUE, perSequence * largest + 16L * largest));
        try (LanguageModel model = ModelLoader.load(modelDir, load)) {
            int[] prompt = DecodeBench.promptIds(model, o.promptTokens());
            List<BatchFigure> batches = new ArrayList<>();
            for (int b : o.batchSizes()) {
                double[] rates = new double[o.repetitions()];
                for (int rep = -1; rep < o.repetitions(); rep++) {
                    double rate = timeBatch(model, prompt, b, o.steps());
                    if (rep >= 0) {
                        rates[rep] = rate;
                    }
                    progress.update(++done, total);
                }
                batches.add(new BatchFigure(b, Stats.of(rates)));
            }
            double peak;
            peak = model.backend().measureMultiplyAddPeak(5, 200).best();
            long macs = model.multiplyAddsPerRow();
            List<RowsFigure> rows = new ArrayList<>();
            double oneRow = 0;
            try (KvSequence seq = model.newSequence()) {
                model.forward(Batch.of(Batch.Entry.continuation(seq, prompt)));
                // Repetitions outermost, every k once per repetition: drift of the machine (these VMs'
                // memory bandwidth wanders by tens of percent over minutes) hits every k alike.
                double[][] millis = new double[o.maxRows()][o.repetitions()];
                for (int rep = -1; rep < o.repetitions(); rep++) {
                    for (int k = 1; k <= o.maxRows(); k++) {
                        int[] draft = new int[k];
                        for (int i = 0; i < k; i++) {
                            draft[i] = prompt[i % prompt.length];
                        }
                        long t0 = System.nanoTime();
                        model.forward(Batch.of(Batch.Entry.continuationAllLogits(seq, draft)));
                        long t1 = System.nanoTime();
                        seq.truncate(prompt.length);
                        if (rep >= 0) {
                            millis[k - 1][rep] = (t1 - t0) / 1e6;
                        }
                        progress.update(++done, total);
                    }
                }
                oneRow = Stats.of(millis[0]).median();
                for (int k = 1; k <= o.maxRows(); k++) {
                    Stats s = Stats.of(millis[k - 1]);
                    double[] ratios = new double[o.repetitions()];
                    for (int rep = 0; rep < ratios.length; rep++) {
                        ratios[rep] = millis[k - 1][rep] / millis[0][rep];
                    }
                    double fmaBound = k * (double) macs / peak * 1e3;
                    rows.add(new RowsFigure(k, s, Stats.of(ratios).median(), fmaBound, Math.max(1.2, 1.25 * fmaBound / oneRow)));
                }
            }
            return new Result(label, model.weightDType().name().toLowerCase(Locale.ROOT), model.weightBytesPerToken(), macs,
                    peak, o, batches, rows, MemorySnapshot.of(model));
        }
    }

    /** Decode tokens/s of {@code b} sequences stepping together, each prefilled with {@code prompt} first. */
    private static double timeBatch(LanguageModel model, int[] prompt, int b, int steps) {
        List<KvSequence> seqs = new ArrayList<>();
        try {
            int[] next = new int[b];
            for (int s = 0; s < b; s++) {
                KvSequence seq = model.newSequence();
                seqs.add(seq);
                next[s] = Sampler.argmax(model.forward(Batch.of(Batch.Entry.continuation(seq, prompt))).lastLogits(0));
            }
            long t0 = System.nanoTime();
            for (int step = 0; step < steps; step++) {
                List<Batch.Entry> entries = new ArrayList<>(b);
                for (int s = 0; s < b; s++) {
                    entries.add(Batch.Entry.continuation(seqs.get(s), next[s]));
                }
                var result = model.forward(Batch.of(entries));
                for (int s = 0; s < b; s++) {
                    next[s] = Sampler.argmax(result.lastLogits(s));
                }
            }
            return (double) b * steps / ((System.nanoTime() - t0) / 1e9);
        } finally {
            seqs.forEach(KvSequence::close);
        }
    }


    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.model());
        n.put("dtype", r.dtype());
        n.put("weight_bytes_per_token", r.weightBytesPerToken());
        n.put("multiply_adds_per_row", r.multiplyAddsPerRow());
        n.put("fma_peak_macs_per_s", r.fmaPeakMacsPerSecond());
        ObjectNode o = n.putObject("options");
        o.put("threads", r.options().threads());
        o.put("prompt_tokens", r.options().promptTokens());
        o.put("decode_steps", r.options().steps());
        o.put("repetitions", r.options().repetitions());
        ArrayNode batches = n.putArray("batched_decode");
        for (BatchFigure b : r.batches()) {
            ObjectNode e = batches.addObject();
            e.put("batch", b.batch());
            e.set("tokens_per_s", b.tokensPerSecond().toJson());
        }
        ArrayNode rows = n.putArray("rows_per_pass");
        for (RowsFigure f : r.rows()) {
            ObjectNode e = rows.addObject();
            e.put("rows", f.rows());
            e.set("millis", f.millis().toJson());
            e.put("ratio_to_one_row", f.ratioToOneRow());
            e.put("fma_bound_millis", f.fmaBoundMillis());
            e.put("goal_ratio", f.goalRatio());
            e.put("meets_goal", f.meetsGoal());
        }
        n.set("memory", r.memory().toJson());
        return n;
    }
}
