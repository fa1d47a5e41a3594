package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.Roofline;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.ModelConfig;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The decode suite: greedy single-sequence decode speed at each thread count, beside the memory read
 * bandwidth measured with the same threads in the same run. Decoding one token reads every weight
 * once, so {@code weightBytesPerToken × tokens/s} over the read bandwidth says how close a decode
 * step comes to the memory roofline.
 *
 * <p>Each repetition starts a fresh sequence, prefills {@code promptTokens} tokens, then times
 * {@code tokens} single-token forward passes, each fed the previous argmax. One untimed repetition
 * warms the JIT first.
 */
public final class DecodeBench {

    /**
     * @param promptTokens    tokens prefilled before decoding starts
     * @param tokens          decode steps timed per repetition
     * @param repetitions     timed repetitions (at least 5 gives a meaningful interquartile range)
     * @param bandwidthBytes  size of the buffer the bandwidth is measured on
     * @param bandwidthPasses timed passes over it
     */
    public record Options(int promptTokens, int tokens, int repetitions, long bandwidthBytes, int bandwidthPasses) {
        public Options {
            if (promptTokens < 1) {
                throw new IllegalArgumentException("--prompt-tokens must be at least 1, got " + promptTokens + ".");
            }
            if (tokens < 1) {
                throw new IllegalArgumentException("--tokens must be at least 1, got " + tokens + ".");
            }
            if (repetitions < 1) {
                throw new IllegalArgumentException("--repetitions must be at least 1, got " + repetitions + ".");
            }
            if (bandwidthPasses < 1) {
                throw new IllegalArgumentException("bandwidth passes must be at least 1, got " + bandwidthPasses + ".");
            }
        }
    }

    /** The figures at one thread count. */
    public record ThreadResult(int threads, Roofline bandwidth, Stats prefillTokensPerSecond,
                               Stats decodeTokensPerSecond, Stats weightBytesPerSecond) {
        /**
         * Median weight-read rate over the best memory-read pass, both at this thread count. The best
         * pass, as STREAM reports, is the attainable peak; passes vary by a fifth on a shared machine.
         */
        public double fractionOfBandwidth() {
            return weightBytesPerSecond.median() / bandwidth.best();
        }
    }

    /** Everything one run measured. */
    public record Result(String model, String dtype, long parameters, long weightBytesPerToken, Options options,
                         List<ThreadResult> threads, MemorySnapshot memory, String backend) {}

    private DecodeBench() {}

    /**
     * Runs the suite on the checkpoint in {@code modelDir} at each of {@code threadCounts}.
     * {@code progress} counts bandwidth passes and repetitions (warm-up included).
     */
    public static Result run(Path modelDir, String label, Options options, int[] threadCounts, Progress progress) {
        return run(modelDir, label, options, threadCounts, Backends.DEFAULT, progress);
    }

    /**
     * The same on the backend {@code device} ({@link Backends#open}'s names). On a device other than the CPU
     * the thread counts are host threads the backend may use (one count, usually 1), and the bandwidth is
     * the device's ({@link Backend#measureReadBandwidth}: for CUDA, a device-to-device copy).
     */
    public static Result run(Path modelDir, String label, Options options, int[] threadCounts, String device, Progress progress) {
        // Checked before anything is measured, so a bad setting fails at once.
        ModelConfig config = ModelLoader.config(modelDir);
        long needed = (long) options.promptTokens() + options.tokens();
        if (needed > config.maxContext()) {
            throw new TandemException("--prompt-tokens + --tokens (" + needed + ") exceed the context of " + label
                    + " (" + config.maxContext() + " tokens, " + config.maxContextSource() + ").");
        }
        long perThreadCount = options.bandwidthPasses() + options.repetitions() + 1L;
        long total = perThreadCount * threadCounts.length;
        List<ThreadResult> results = new ArrayList<>();
        String dtype = null;
        long parameters = 0;
        long weightBytes = 0;
        MemorySnapshot memory = null;
        String backendName = null;
        for (int c = 0; c < threadCounts.length; c++) {
            int threads = threadCounts[c];
            long base = perThreadCount * c;
            Roofline bandwidth;
            // This backend is closed before the model loads, so the two never compete for cores.
            try (Backend backend = Backends.open(device, threads)) {
                bandwidth = backend.measureReadBandwidth(roundTo(options.bandwidthBytes(), 64L * threads),
                        options.bandwidthPasses(), (done, all) -> progress.update(base + done, total));
            }
            try (LanguageModel model = ModelLoader.load(modelDir, ModelLoader.Options.defaults().withThreads(threads)
                    .withDevice(Backends.choose(device).name()))) {
                backendName = model.backend().name();
                weightBytes = model.weightBytesPerToken();
                parameters = model.parameterCount();
                dtype = model.weightDType().name().toLowerCase(Locale.ROOT);
                int[] prompt = promptIds(model, options.promptTokens());
                double[] prefill = new double[options.repetitions()];
                double[] decode = new double[options.repetitions()];
                for (int rep = -1; rep < options.repetitions(); rep++) {
                    double[] rates = timeOneSequence(model, prompt, options.tokens());
                    if (rep >= 0) {
                        prefill[rep] = rates[0];
                        decode[rep] = rates[1];
                    }
                    progress.update(base + options.bandwidthPasses() + rep + 2, total);
                }
                memory = MemorySnapshot.of(model);
                Stats decodeStats = Stats.of(decode);
                results.add(new ThreadResult(threads, bandwidth, Stats.of(prefill), decodeStats,
                        decodeStats.scaled(weightBytes)));
            }
        }
        return new Result(label, dtype, parameters, weightBytes, options, results, memory, backendName);
    }

    private static long roundTo(long bytes, long multiple) {
        return Math.max(multiple, bytes / multiple * multiple);
    }

    /** {@code count} ids: an ordinary English sentence's encoding, repeated as needed. */
    static int[] promptIds(LanguageModel model, int count) {
        int[] sentence = model.tokenizer().encode("The quick brown fox jumps over the lazy dog, and then it runs away. ");
        if (sentence.length == 0) {
            throw new TandemException("the tokenizer of " + model.directory() + " encodes the benchmark prompt to no tokens.");
        }
        int[] ids = new int[count];
        for (int i = 0; i < count; i++) {
            ids[i] = sentence[i % sentence.length];
        }
        return ids;
    }

    /** Returns {prefill tokens/s, decode tokens/s} of one fresh sequence. */
    private static double[] timeOneSequence(LanguageModel model, int[] prompt, int tokens) {
        try (KvSequence seq = model.newSequence()) {
            long t0 = System.nanoTime();
            ForwardResult r = model.forward(Batch.of(Batch.Entry.continuation(seq, prompt)));
            int next = Sampler.argmax(r.lastLogits(0));
            long t1 = System.nanoTime();
            for (int i = 0; i < tokens; i++) {
                r = model.forward(Batch.of(Batch.Entry.continuation(seq, next)));
                next = Sampler.argmax(r.lastLogits(0));
            }
            long t2 = System.nanoTime();
            return new double[] {prompt.length / ((t1 - t0) / 1e9), tokens / ((t2 - t1) / 1e9)};
        }
    }


    /** The result as the JSON written to {@code bench/results/} (rates in units per second). */
    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.model());
        n.put("backend", r.backend());
        n.put("dtype", r.dtype());
        n.put("parameters", r.parameters());
        n.put("weight_bytes_per_token", r.weightBytesPerToken());
        ObjectNode o = n.putObject("options");
        o.put("prompt_tokens", r.options().promptTokens());
        o.put("decode_tokens", r.options().tokens());
        o.put("repetitions", r.options().repetitions());
        o.put("bandwidth_buffer_bytes", r.options().bandwidthBytes());
        o.put("bandwidth_passes", r.options().bandwidthPasses());
        ArrayNode runs = n.putArray("runs");
        for (ThreadResult t : r.threads()) {
            ObjectNode run = runs.addObject();
            run.put("threads", t.threads());
            ObjectNode bw = run.putObject("memory_read_bytes_per_s");
            Stats passStats = Stats.of(t.bandwidth().perSecond());
            bw.put("median", passStats.median());
            bw.put("q1", passStats.q1());
            bw.put("q3", passStats.q3());
            bw.put("iqr", passStats.iqr());
            bw.put("best", t.bandwidth().best());
            var passes = bw.putArray("passes");
            for (double v : t.bandwidth().perSecond()) {
                passes.add(v);
            }
            run.set("prefill_tokens_per_s", t.prefillTokensPerSecond().toJson());
            run.set("decode_tokens_per_s", t.decodeTokensPerSecond().toJson());
            run.set("weight_read_bytes_per_s", t.weightBytesPerSecond().toJson());
            run.put("fraction_of_memory_bandwidth", t.fractionOfBandwidth());
        }
        n.set("memory", r.memory().toJson());
        return n;
    }
}
