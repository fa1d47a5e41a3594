package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.speculative.AdedDecoding;
import dev.tandem.decoding.speculative.LookaheadDecoding;
import dev.tandem.decoding.speculative.PearlDecoding;
import dev.tandem.decoding.speculative.PromptLookupDecoding;
import dev.tandem.decoding.speculative.SpeculativeDecoding;
import dev.tandem.decoding.speculative.TreeDecoding;
import dev.tandem.decoding.speculative.TrigramTable;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code bench --suite engine}: throughput of the {@link Engine} with 1, 4, 16 ... requests of one method
 * at once, beside plain decoding at the same concurrency. Per repetition, per concurrency c, each method
 * gets a fresh engine and c greedy requests (the prompts cycled, stream i) submitted together; its figure
 * is every request's generated tokens over the wall time from the first submit to the last result.
 * Methods are interleaved inside each repetition, so a ratio to plain compares runs minutes apart at most.
 */
public final class EngineBench {

    /** The methods the suite can run besides plain, in the order it runs them. */
    public static final List<String> METHODS = List.of("speculative", "ngram", "tree", "aded", "lookahead", "pearl");

    /**
     * @param prompts     prompts cycled over the requests
     * @param maxTokens   tokens each request generates at most
     * @param repetitions timed repetitions (one warm-up before them)
     * @param threads     threads of the target's backend (the draft shares it); PEARL runs on a target copy with one
     *                    thread fewer and its draft on the one left, so every method uses {@code threads} in all
     * @param concurrency request counts to run at once
     * @param methods     methods besides plain
     * @param draftLength γ of speculative and PEARL
     */
    public record Options(List<String> prompts, int maxTokens, int repetitions, int threads, int[] concurrency,
                          List<String> methods, int draftLength) {
        public Options {
            if (maxTokens < 1 || repetitions < 1 || threads < 1 || draftLength < 1 || concurrency.length == 0 || prompts.isEmpty()) {
                throw new IllegalArgumentException("max tokens, repetitions, threads and draft length must be at least 1, "
                        + "with at least one prompt and one concurrency");
            }
            for (String m : methods) {
                if (!METHODS.contains(m)) {
                    throw new IllegalArgumentException("--methods: \"" + m + "\" is not one of " + String.join(", ", METHODS) + ".");
                }
            }
            prompts = List.copyOf(prompts);
            methods = List.copyOf(methods);
            concurrency = concurrency.clone();
        }

        public static Options defaults(int threads, int[] concurrency) {
            return new Options(MethodsBench.DEFAULT_PROMPTS, 32, 3, threads, concurrency, METHODS, 4);
        }
    }

    /** One method at one concurrency: tokens/s of all requests together, and its ratio to plain's in the same repetition. */
    public record Figure(String method, int concurrency, Stats tokensPerSecond, Stats relativeToPlain) {}

    public record Result(String target, String draft, String dtype, Options options, List<Figure> figures) {}

    private EngineBench() {}

    /** Runs the suite; {@code progress} counts (repetition, concurrency, method) runs, warm-up included. */
    public static Result run(Path targetDir, Path draftDir, Options o, Progress progress) {
        ModelLoader.Options load = ModelLoader.Options.defaults().withThreads(o.threads()).withKvMemory(1L << 30);
        List<LanguageModel> extra = new ArrayList<>();
        try (LanguageModel target = ModelLoader.load(targetDir, load)) {
            LanguageModel draft = ModelLoader.load(draftDir, ModelLoader.Options.defaults().withBackend(target.backend())
                    .withKvMemory(1L << 28));
            extra.add(draft);
            Map<String, DecodingStrategy> methods = new LinkedHashMap<>();
            Map<String, LanguageModel> engineTarget = new LinkedHashMap<>(); // the target an Engine serves, when not `target`
            methods.put("plain", new Generator(target));
            for (String m : o.methods()) {
                methods.put(m, switch (m) {
                    case "speculative" -> new SpeculativeDecoding(target, draft, o.draftLength());
                    case "ngram" -> new PromptLookupDecoding(target);
                    case "tree" -> new TreeDecoding(target, draft, TreeDecoding.DEFAULT_NODE_BUDGET, TreeDecoding.DEFAULT_TOP_K,
                            TreeDecoding.DEFAULT_MAX_DEPTH);
                    case "aded" -> new AdedDecoding(target, TrigramTable.empty());
                    case "lookahead" -> new LookaheadDecoding(target);
                    case "pearl" -> {
                        // The draft on a backend of its own (one thread) so its passes run beside the target's, out of
                        // the same --threads as every other method: the target gets the rest (with one thread, both get
                        // one and take turns, as generate does).
                        LanguageModel pearlTarget = target;
                        if (o.threads() >= 2) {
                            pearlTarget = ModelLoader.load(targetDir, ModelLoader.Options.defaults().withThreads(o.threads() - 1)
                                    .withKvMemory(1L << 30));
                            extra.add(pearlTarget);
                            engineTarget.put(m, pearlTarget);
                        }
                        LanguageModel own = ModelLoader.load(draftDir, ModelLoader.Options.defaults().withThreads(1)
                                .withKvMemory(1L << 28));
                        extra.add(own);
                        yield new PearlDecoding(pearlTarget, own, o.draftLength());
                    }
                    default -> throw new IllegalArgumentException(m);
                });
            }
            int[] conc = o.concurrency();
            double[][][] tps = new double[conc.length][methods.size()][o.repetitions()];
            long total = (long) (o.repetitions() + 1) * conc.length * methods.size();
            long done = 0;
            for (int rep = -1; rep < o.repetitions(); rep++) {
                for (int c = 0; c < conc.length; c++) {
                    int m = 0;
                    for (Map.Entry<String, DecodingStrategy> method : methods.entrySet()) {
                        double rate = throughput(engineTarget.getOrDefault(method.getKey(), target), method.getValue(), conc[c], o);
                        if (rep >= 0) {
                            tps[c][m][rep] = rate;
                        }
                        m++;
                        progress.update(++done, total);
                    }
                }
            }
            List<Figure> figures = new ArrayList<>();
            for (int c = 0; c < conc.length; c++) {
                int m = 0;
                for (String name : methods.keySet()) {
                    double[] rel = new double[o.repetitions()];
                    for (int r = 0; r < rel.length; r++) {
                        rel[r] = tps[c][m][r] / tps[c][0][r];
                    }
                    figures.add(new Figure(name, conc[c], Stats.of(tps[c][m]), Stats.of(rel)));
                    m++;
                }
            }
            return new Result(label(targetDir), label(draftDir), target.weightDType().name().toLowerCase(Locale.ROOT), o, figures);
        } finally {
            for (LanguageModel m : extra) {
                m.close();
            }
        }
    }

    /** {@code count} requests of {@code strategy} through one engine: generated tokens over wall time. */
    private static double throughput(LanguageModel target, DecodingStrategy strategy, int count, Options o) {
        try (Engine engine = new Engine(target, Engine.Options.defaults().withMaxQueued(count).withMaxRunning(count))) {
            long t0 = System.nanoTime();
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                GenerationRequest r = GenerationRequest.of(o.prompts().get(i % o.prompts().size()))
                        .withMaxTokens(o.maxTokens()).withStreamId(i);
                handles.add(engine.submit(r, strategy, null));
            }
            long tokens = 0;
            for (EngineHandle h : handles) {
                GenerationResult r = h.result();
                tokens += r.generatedIds().length;
            }
            return tokens / ((System.nanoTime() - t0) / 1e9);
        }
    }

    private static String label(Path dir) {
        return dir.toAbsolutePath().normalize().getFileName().toString();
    }

    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.target());
        n.put("draft", r.draft());
        n.put("dtype", r.dtype());
        ObjectNode o = n.putObject("options");
        o.put("threads", r.options().threads());
        o.put("max_tokens", r.options().maxTokens());
        o.put("repetitions", r.options().repetitions());
        o.put("draft_length", r.options().draftLength());
        ArrayNode prompts = o.putArray("prompts");
        r.options().prompts().forEach(prompts::add);
        ArrayNode figures = n.putArray("figures");
        for (Figure f : r.figures()) {
            ObjectNode e = figures.addObject();
            e.put("method", f.method());
            e.put("concurrency", f.concurrency());
            e.set("tokens_per_s", f.tokensPerSecond().toJson());
            e.set("relative_to_plain", f.relativeToPlain().toJson());
        }
        return n;
    }
}
