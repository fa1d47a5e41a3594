package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.beam.BeamParams;
import dev.tandem.decoding.beam.BeamSearch;
import dev.tandem.decoding.mix.GroundingStore;
import dev.tandem.decoding.mix.LayerContrastDecoding;
import dev.tandem.decoding.mix.LogitMixDecoding;
import dev.tandem.decoding.speculative.SpeculativeMixDecoding;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The views suite ({@code bench --suite views}): what a token costs with the methods that run several views or
 * hypotheses per token — contrastive decoding, proxy tuning, CAD, guidance (alone and verifying a draft's chains),
 * DoLa, LOL, CAAD (over four grounding examples) and beam / diverse beam search — relative to plain greedy decoding of the same model, in one run. Every method decodes
 * the prompt set greedily once per repetition (methods interleaved, after one untimed warm-up); its cost per token in
 * a repetition is its wall time per generated token over plain decoding's in the same repetition (beams: per token of
 * the best hypothesis). Passes per token are exact counts over the prompt set: passes of the {@code --model} (a
 * pass holds all of a request's rows for that model: CAD's two sequences, every beam) and passes of the other models
 * (amateur, tuned and base, or a draft).
 */
public final class ViewsBench {

    /** The methods the suite can run besides plain, in the order it runs them. */
    public static final List<String> METHODS = List.of("contrastive", "proxy-tune", "cad", "cfg", "contrastive-drafted",
            "cad-drafted", "dola", "lol", "caad", "beam", "diverse-beam");

    /** caad's grounding examples in the suite, written to a temporary file (its store is built there, untimed). */
    static final String GROUNDING = """
            {"text": "ROMEO:", "continuation": "\\nBut, soft! what light through yonder window breaks?\\nIt is the east, and Juliet is the sun."}
            {"text": "KING RICHARD III:", "continuation": "\\nNow is the winter of our discontent\\nMade glorious summer by this sun of York;"}
            {"text": "HAMLET:", "continuation": "\\nTo be, or not to be, that is the question:"}
            {"text": "JULIET:", "continuation": "\\nO Romeo, Romeo! wherefore art thou Romeo?"}
            """;

    /** CAD's context in the suite: a fixed Shakespeare passage. */
    public static final String CONTEXT = """
            KING RICHARD III:
            Now is the winter of our discontent
            Made glorious summer by this sun of York;
            And all the clouds that lour'd upon our house
            In the deep bosom of the ocean buried.
            """;

    /**
     * @param prompts     the timed prompt set (greedy, one stream per prompt)
     * @param maxTokens   tokens generated per prompt (EOS ignored, so every method generates them all)
     * @param repetitions timed repetitions, after one untimed
     * @param threads     CPU threads (every model shares one backend)
     * @param methods     the methods to run besides plain: a subset of {@link #METHODS}
     */
    public record Options(List<String> prompts, int maxTokens, int repetitions, int threads, List<String> methods) {
        public Options {
            prompts = List.copyOf(prompts);
            if (prompts.isEmpty()) {
                throw new IllegalArgumentException("the views suite needs at least one prompt.");
            }
            if (maxTokens < 1 || repetitions < 1 || threads < 1) {
                throw new IllegalArgumentException("views bench tokens, repetitions and threads must be at least 1.");
            }
            methods = methods == null ? METHODS : List.copyOf(methods);
            for (String m : methods) {
                if (!METHODS.contains(m)) {
                    throw new IllegalArgumentException("--methods: unknown method \"" + m + "\" for the views suite (known: "
                            + String.join(", ", METHODS) + ").");
                }
            }
        }

        /** The methods suite's four prompts, 32 tokens each, 5 repetitions, every method. */
        public static Options defaults(int threads) {
            return new Options(MethodsBench.DEFAULT_PROMPTS, 32, 5, threads, null);
        }
    }

    /**
     * One method's figures.
     *
     * @param method            its name (the drafted forms: {@code contrastive-drafted}, {@code cad-drafted})
     * @param setting           its parameters
     * @param stats             decode stats summed over the prompt set (the last repetition's)
     * @param tokensPerSecond   per repetition: generated tokens over wall time
     * @param relativeCost      per repetition: time per token over plain greedy's
     */
    public record Figure(String method, String setting, DecodeStats stats, Stats tokensPerSecond, Stats relativeCost) {
        public double modelPassesPerToken() {
            return stats.generatedTokens() == 0 ? 0 : stats.targetForwardPasses() / (double) stats.generatedTokens();
        }

        public double otherPassesPerToken() {
            return stats.generatedTokens() == 0 ? 0 : stats.draftForwardPasses() / (double) stats.generatedTokens();
        }
    }

    public record Result(String model, List<String> others, String dtype, String backend, Options options, List<Figure> figures,
                         MemorySnapshot memory) {}

    private record Entry(String method, String setting, DecodingStrategy strategy) {}

    private ViewsBench() {}

    /**
     * Runs the suite on {@code modelDir}; {@code otherDirs[0]} is the amateur, the base and the draft, {@code otherDirs[1]}
     * (or the first again) the tuned model of proxy tuning. All models share the {@code --model}'s backend.
     */
    public static Result run(Path modelDir, Path[] otherDirs, Options o, Progress progress) {
        ModelLoader.Options load = ModelLoader.Options.defaults().withThreads(o.threads()).withDevice(Backends.DEFAULT);
        List<LanguageModel> others = new ArrayList<>();
        List<Path> temporary = new ArrayList<>(); // caad's grounding file and store, and their folder
        try (LanguageModel model = ModelLoader.load(modelDir, load)) {
            List<String> labels = new ArrayList<>();
            for (Path d : otherDirs) {
                others.add(ModelLoader.load(d, ModelLoader.Options.defaults().withBackend(model.backend())));
                labels.add(label(d));
            }
            LanguageModel small = others.getFirst();
            LanguageModel tuned = others.size() > 1 ? others.get(1) : small;
            String smallLabel = labels.getFirst();
            List<Entry> entries = new ArrayList<>();
            entries.add(new Entry("plain", "", new Generator(model)));
            LogitMixDecoding contrastive = LogitMixDecoding.contrastive(model, small, 0.1, 0.5);
            LogitMixDecoding cad = LogitMixDecoding.contextAware(model, CONTEXT, 0.5);
            for (String m : o.methods()) {
                switch (m) {
                    case "contrastive" -> entries.add(new Entry(m, "amateur=" + smallLabel + ",alpha=0.1,beta=0.5", contrastive));
                    case "proxy-tune" -> entries.add(new Entry(m, "tuned=" + label(otherDirs[otherDirs.length > 1 ? 1 : 0]) + ",base="
                            + smallLabel + ",alpha=1", LogitMixDecoding.proxyTuning(model, tuned, small, 1)));
                    case "cad" -> entries.add(new Entry(m, "context=" + model.tokenizer().encode(CONTEXT).length + " tokens,alpha=0.5", cad));
                    case "cfg" -> entries.add(new Entry(m, "negative=\"JULIET:\",scale=1.5", LogitMixDecoding.guidance(model, "JULIET:", 1.5)));
                    case "contrastive-drafted" -> entries.add(new Entry(m, "amateur=" + smallLabel + ",draft=" + smallLabel + ",gamma=4",
                            new SpeculativeMixDecoding(contrastive, small, 4)));
                    case "cad-drafted" -> entries.add(new Entry(m, "draft=" + smallLabel + ",gamma=4", new SpeculativeMixDecoding(cad, small, 4)));
                    case "dola" -> {
                        int depth = model.config().numLayers();
                        int[] candidates = {0, depth / 2, depth - 2};
                        int[] distinct = java.util.Arrays.stream(candidates).filter(l -> l >= 0).distinct().toArray();
                        entries.add(new Entry(m, "layers=" + java.util.Arrays.toString(distinct).replace(" ", "") + ",alpha=0.1,"
                                + "repetition_penalty=1.2", LayerContrastDecoding.dola(model, distinct)));
                    }
                    case "lol" -> entries.add(new Entry(m, "amateur=" + smallLabel + ",layer=0,lambda=1", LogitMixDecoding.lowerLayerContrast(
                            model, small, 0, 0.1, 0.5, LogitMixDecoding.DEFAULT_LOWER_LAYER_WEIGHT)));
                    case "caad" -> {
                        Path file = java.nio.file.Files.createTempDirectory("tandem-views-").resolve("grounding.jsonl");
                        java.nio.file.Files.writeString(file, GROUNDING);
                        temporary.add(file);
                        GroundingStore store = GroundingStore.open(model, file);
                        temporary.add(store.file());
                        entries.add(new Entry(m, "pairs=" + store.size() + ",neighbours=" + LogitMixDecoding.DEFAULT_GROUNDING_NEIGHBOURS
                                + ",weight=" + LogitMixDecoding.DEFAULT_GROUNDING_WEIGHT, LogitMixDecoding.grounded(model, store,
                                LogitMixDecoding.DEFAULT_GROUNDING_NEIGHBOURS, LogitMixDecoding.DEFAULT_GROUNDING_WEIGHT)));
                    }
                    case "beam" -> entries.add(new Entry(m, "beams=4", new BeamSearch(model, BeamParams.beam(4))));
                    case "diverse-beam" -> entries.add(new Entry(m, "beams=4,groups=2,diversity=" + BeamParams.DEFAULT_DIVERSITY,
                            new BeamSearch(model, BeamParams.diverse(4, 2))));
                    default -> throw new IllegalStateException(m);
                }
            }
            int n = entries.size();
            long total = (long) n * (o.repetitions() + 1);
            long done = 0;
            double[][] rates = new double[n][o.repetitions()];
            DecodeStats[] last = new DecodeStats[n];
            for (int rep = -1; rep < o.repetitions(); rep++) {
                for (int e = 0; e < n; e++) {
                    long nanos = 0;
                    long tokens = 0, modelPasses = 0, otherPasses = 0;
                    for (int p = 0; p < o.prompts().size(); p++) {
                        GenerationRequest request = GenerationRequest.of(o.prompts().get(p)).withMaxTokens(o.maxTokens())
                                .withEosTokenIds(List.of()).withStreamId(p);
                        long t0 = System.nanoTime();
                        GenerationResult r = entries.get(e).strategy().generate(request);
                        nanos += System.nanoTime() - t0;
                        tokens += r.generatedIds().length;
                        modelPasses += r.decodeStats().targetForwardPasses();
                        otherPasses += r.decodeStats().draftForwardPasses();
                    }
                    last[e] = new DecodeStats(entries.get(e).method(), (int) tokens, modelPasses, otherPasses, 0, 0, 0, List.of(),
                            0, 0, nanos / 1e6);
                    if (rep >= 0) {
                        rates[e][rep] = tokens / (nanos / 1e9);
                    }
                    progress.update(++done, total);
                }
            }
            List<Figure> figures = new ArrayList<>();
            for (int e = 0; e < n; e++) {
                double[] cost = new double[o.repetitions()];
                for (int rep = 0; rep < cost.length; rep++) {
                    cost[rep] = rates[0][rep] / rates[e][rep];
                }
                figures.add(new Figure(entries.get(e).method(), entries.get(e).setting(), last[e], Stats.of(rates[e]), Stats.of(cost)));
            }
            return new Result(label(modelDir), labels, model.weightDType().name().toLowerCase(java.util.Locale.ROOT),
                    model.backend().name(), o, figures, MemorySnapshot.of(model));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        } finally {
            for (LanguageModel m : others.reversed()) {
                m.close();
            }
            for (Path p : temporary.reversed()) {
                try {
                    java.nio.file.Files.deleteIfExists(p);
                    java.nio.file.Files.deleteIfExists(p.getParent());
                } catch (java.io.IOException ignored) {
                    // a temporary file left behind; nothing depends on it
                }
            }
        }
    }

    private static String label(Path dir) {
        return dir.toAbsolutePath().normalize().getFileName().toString();
    }

    /** The result as the JSON written to {@code bench/results/}. */
    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.model());
        ArrayNode others = n.putArray("other_models");
        r.others().forEach(others::add);
        n.put("dtype", r.dtype());
        n.put("backend", r.backend());
        ObjectNode o = n.putObject("options");
        ArrayNode prompts = o.putArray("prompts");
        r.options().prompts().forEach(prompts::add);
        o.put("max_tokens", r.options().maxTokens());
        o.put("repetitions", r.options().repetitions());
        o.put("threads", r.options().threads());
        o.put("mode", "greedy");
        ArrayNode figures = n.putArray("figures");
        for (Figure f : r.figures()) {
            ObjectNode e = figures.addObject();
            e.put("method", f.method());
            e.put("setting", f.setting());
            e.put("generated_tokens", f.stats().generatedTokens());
            e.put("model_passes", f.stats().targetForwardPasses());
            e.put("other_model_passes", f.stats().draftForwardPasses());
            e.put("model_passes_per_token", Math.round(f.modelPassesPerToken() * 1000) / 1000.0);
            e.put("other_passes_per_token", Math.round(f.otherPassesPerToken() * 1000) / 1000.0);
            e.set("tokens_per_s", f.tokensPerSecond().toJson());
            e.set("cost_per_token_relative_to_plain", f.relativeCost().toJson());
        }
        n.set("memory", r.memory().toJson());
        return n;
    }
}
