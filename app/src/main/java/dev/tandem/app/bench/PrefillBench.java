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
 * The prefill suite: one forward pass over a whole prompt of each length, at each thread count.
 * Prefill tokens/s is the prompt length over the time of that pass; time to first token adds the
 * greedy choice of the first generated token (what a user waits for before anything streams).
 */
public final class PrefillBench {

    /**
     * @param promptLengths prompt lengths to time (capped at the model's context, duplicates dropped)
     * @param repetitions   timed repetitions per length, after one untimed
     */
    public record Options(int[] promptLengths, int repetitions) {
        public Options {
            if (repetitions < 1) {
                throw new IllegalArgumentException("--repetitions must be at least 1, got " + repetitions + ".");
            }
            for (int p : promptLengths) {
                if (p < 1) {
                    throw new IllegalArgumentException("--prompt-lengths must be at least 1, got " + p + ".");
                }
            }
        }
    }

    public record Figure(int threads, int promptTokens, Stats tokensPerSecond, Stats timeToFirstTokenMillis) {}

    public record Result(String model, String dtype, Options options, List<Figure> figures, MemorySnapshot memory) {}

    private PrefillBench() {}

    public static Result run(Path modelDir, String label, Options o, int[] threadCounts, Progress progress) {
        ModelConfig config = ModelLoader.config(modelDir);
        List<Integer> lengths = new ArrayList<>();
        for (int p : o.promptLengths()) {
            int capped = Math.min(p, config.maxContext());
            if (!lengths.contains(capped)) {
                lengths.add(capped);
            }
        }
        if (lengths.isEmpty()) {
            throw new TandemException("--prompt-lengths names no prompt length.");
        }
        long total = (long) threadCounts.length * lengths.size() * (o.repetitions() + 1);
        long done = 0;
        List<Figure> figures = new ArrayList<>();
        String dtype = null;
        MemorySnapshot memory = null;
        for (int threads : threadCounts) {
            try (LanguageModel model = ModelLoader.load(modelDir, ModelLoader.Options.defaults().withThreads(threads))) {
                dtype = model.weightDType().name().toLowerCase(Locale.ROOT);
                for (int length : lengths) {
                    int[] prompt = DecodeBench.promptIds(model, length);
                    double[] rates = new double[o.repetitions()];
                    double[] ttft = new double[o.repetitions()];
                    for (int rep = -1; rep < o.repetitions(); rep++) {
                        try (KvSequence seq = model.newSequence()) {
                            long t0 = System.nanoTime();
                            float[] logits = model.forward(Batch.of(Batch.Entry.continuation(seq, prompt))).lastLogits(0);
                            long t1 = System.nanoTime();
                            Sampler.argmax(logits);
                            long t2 = System.nanoTime();
                            if (rep >= 0) {
                                rates[rep] = length / ((t1 - t0) / 1e9);
                                ttft[rep] = (t2 - t0) / 1e6;
                            }
                        }
                        progress.update(++done, total);
                    }
                    figures.add(new Figure(threads, length, Stats.of(rates), Stats.of(ttft)));
                }
                memory = MemorySnapshot.of(model);
            }
        }
        return new Result(label, dtype, o, figures, memory);
    }

    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.model());
        n.put("dtype", r.dtype());
        ObjectNode o = n.putObject("options");
        ArrayNode lengths = o.putArray("prompt_lengths");
        for (int p : r.options().promptLengths()) {
            lengths.add(p);
        }
        o.put("repetitions", r.options().repetitions());
        ArrayNode figures = n.putArray("prefill");
        for (Figure f : r.figures()) {
            ObjectNode e = figures.addObject();
            e.put("threads", f.threads());
            e.put("prompt_tokens", f.promptTokens());
            e.set("prefill_tokens_per_s", f.tokensPerSecond().toJson());
            e.set("time_to_first_token_ms", f.timeToFirstTokenMillis().toJson());
        }
        n.set("memory", r.memory().toJson());
        return n;
    }
}
