package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.diffusion.DiffusionCache;
import dev.tandem.decoding.diffusion.DiffusionDecoding;
import dev.tandem.decoding.diffusion.DiffusionParams;
import dev.tandem.decoding.diffusion.UnmaskRule;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The diffusion suite ({@code bench --suite diffusion}): a masked-diffusion model fills a canvas for each prompt
 * under each unmasking rule, without a cache and with Fast-dLLM's prefix and dual caches, against the baseline of
 * low-confidence remasking one position per pass over one block. Per configuration: forward passes and positions
 * per pass (exact counts, summed over the prompts), positions per second of wall time and that rate over the
 * baseline's in the same repetition (repetitions interleave the configurations, after one untimed warm-up), and a
 * cache's drift: the canvas positions whose token differs from the same rule's uncached run.
 */
public final class DiffusionBench {

    /**
     * @param prompts     the prompts, each decoded once per configuration and repetition
     * @param genLength   canvas positions after each prompt
     * @param blockLength the semi-autoregressive block of every configuration but the baseline
     * @param threshold   τ of the threshold rule
     * @param repetitions timed repetitions
     * @param threads     CPU threads
     */
    public record Options(List<String> prompts, int genLength, int blockLength, double threshold, int repetitions, int threads) {
        public Options {
            prompts = List.copyOf(prompts);
            if (prompts.isEmpty()) {
                throw new IllegalArgumentException("the diffusion suite needs at least one prompt.");
            }
            if (repetitions < 1 || threads < 1) {
                throw new IllegalArgumentException("diffusion bench repetitions and threads must be at least 1.");
            }
            new DiffusionParams(genLength, blockLength, genLength, UnmaskRule.LOW_CONFIDENCE, 1); // checks the shape
            new DiffusionParams(genLength, blockLength, genLength, UnmaskRule.THRESHOLD, threshold);
        }

        /** bard-dlm's golden prompts, a canvas of 32 in blocks of 8, τ = 0.15, 3 repetitions. */
        public static Options defaults(int threads) {
            return new Options(List.of("ROMEO:", "First Citizen:\nBefore we proceed", "KING HENRY VI:\nWhat"), 32, 8, 0.15, 3,
                    threads);
        }
    }

    /**
     * One configuration's figures.
     *
     * @param rule             the unmasking rule (and τ for threshold)
     * @param blockLength      its block
     * @param cache            none, prefix or dual
     * @param passes           forward passes over all prompts
     * @param positions        canvas positions filled over all prompts
     * @param positionsPerSecond per repetition: positions over wall time
     * @param relativeSpeed    per repetition: that rate over the baseline's
     * @param drift            positions whose token differs from the same rule's uncached canvas (0 without a cache)
     */
    public record Figure(String rule, int blockLength, String cache, long passes, long positions, Stats positionsPerSecond,
                         Stats relativeSpeed, long drift) {
        public double positionsPerPass() {
            return passes == 0 ? 0 : positions / (double) passes;
        }
    }

    public record Result(String model, Options options, List<Figure> figures, MemorySnapshot memory) {}

    private record Config(String rule, DiffusionParams params) {}

    private DiffusionBench() {}

    public static Result run(Path modelDir, Options o, Progress progress) {
        try (LanguageModel model = ModelLoader.load(modelDir, ModelLoader.Options.defaults().withThreads(o.threads()))) {
            DiffusionDecoding.requireDiffusionModel(model);
            List<Config> configs = new ArrayList<>();
            configs.add(new Config("low-confidence", DiffusionParams.lowConfidence(o.genLength()))); // the baseline
            DiffusionParams blocked = DiffusionParams.lowConfidence(o.genLength()).withBlockLength(o.blockLength());
            for (UnmaskRule rule : UnmaskRule.values()) {
                DiffusionParams p = rule == UnmaskRule.THRESHOLD ? blocked.withThreshold(o.threshold()) : blocked.withRule(rule);
                String name = rule == UnmaskRule.THRESHOLD ? "threshold " + o.threshold()
                        : rule == UnmaskRule.CCD ? "ccd window " + p.ccdWindow() : rule.wireName();
                for (DiffusionCache cache : DiffusionCache.values()) {
                    configs.add(new Config(name, p.withCache(cache)));
                }
            }
            int n = configs.size();
            long total = (long) n * o.prompts().size() * (o.repetitions() + 1);
            long done = 0;
            double[][] rates = new double[n][o.repetitions()];
            long[] passes = new long[n];
            long[] positions = new long[n];
            int[][][] canvases = new int[n][][];
            for (int rep = -1; rep < o.repetitions(); rep++) {
                for (int c = 0; c < n; c++) {
                    DiffusionDecoding method = new DiffusionDecoding(model, configs.get(c).params());
                    long nanos = 0;
                    long pass = 0;
                    long filled = 0;
                    int[][] canvas = new int[o.prompts().size()][];
                    for (int i = 0; i < o.prompts().size(); i++) {
                        GenerationRequest request = GenerationRequest.of(o.prompts().get(i)).withStreamId(i);
                        long t0 = System.nanoTime();
                        GenerationResult r = method.generate(request);
                        nanos += System.nanoTime() - t0;
                        pass += r.decodeStats().targetForwardPasses();
                        filled += r.generatedIds().length;
                        canvas[i] = r.generatedIds();
                        progress.update(++done, total);
                    }
                    if (rep >= 0) {
                        rates[c][rep] = filled / (nanos / 1e9);
                    }
                    passes[c] = pass;
                    positions[c] = filled;
                    canvases[c] = canvas;
                }
            }
            List<Figure> figures = new ArrayList<>();
            for (int c = 0; c < n; c++) {
                Config config = configs.get(c);
                double[] rel = new double[o.repetitions()];
                for (int rep = 0; rep < rel.length; rep++) {
                    rel[rep] = rates[c][rep] / rates[0][rep];
                }
                // The same rule's uncached configuration: the one just before a prefix (c - 1) or dual (c - 2) one.
                int exact = c - config.params().cache().ordinal();
                long drift = 0;
                for (int i = 0; i < canvases[c].length; i++) {
                    for (int j = 0; j < canvases[c][i].length; j++) {
                        drift += canvases[c][i][j] != canvases[exact][i][j] ? 1 : 0;
                    }
                }
                figures.add(new Figure(config.rule(), config.params().blockLength(), config.params().cache().wireName(), passes[c],
                        positions[c], Stats.of(rates[c]), Stats.of(rel), drift));
            }
            return new Result(label(modelDir), o, figures, MemorySnapshot.of(model));
        }
    }

    private static String label(Path dir) {
        return dir.toAbsolutePath().normalize().getFileName().toString();
    }

    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.model());
        ObjectNode o = n.putObject("options");
        ArrayNode prompts = o.putArray("prompts");
        r.options().prompts().forEach(prompts::add);
        o.put("gen_length", r.options().genLength());
        o.put("block_length", r.options().blockLength());
        o.put("threshold", r.options().threshold());
        o.put("repetitions", r.options().repetitions());
        o.put("threads", r.options().threads());
        o.put("baseline", "low-confidence, one block of gen_length, one position per pass, no cache");
        ArrayNode figures = n.putArray("figures");
        for (Figure f : r.figures()) {
            ObjectNode e = figures.addObject();
            e.put("rule", f.rule());
            e.put("block_length", f.blockLength());
            e.put("cache", f.cache());
            e.put("passes", f.passes());
            e.put("positions", f.positions());
            e.put("positions_per_pass", Math.round(f.positionsPerPass() * 1000) / 1000.0);
            e.set("positions_per_s", f.positionsPerSecond().toJson());
            e.set("relative_to_baseline", f.relativeSpeed().toJson());
            e.put("drift_positions", f.drift());
        }
        n.set("memory", r.memory().toJson());
        return n;
    }
}
