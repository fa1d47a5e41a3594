package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.CollaborativeDecoding;
import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.AdedDecoding;
import dev.tandem.decoding.speculative.LookaheadDecoding;
import dev.tandem.decoding.speculative.PearlDecoding;
import dev.tandem.decoding.speculative.PromptLookupDecoding;
import dev.tandem.decoding.speculative.SpeculativeDecoding;
import dev.tandem.decoding.speculative.TreeDecoding;
import dev.tandem.decoding.speculative.TrigramTable;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The methods suite: every decoding method against plain decoding of the target, in one run. For each
 * mode (greedy, and sampling at {@code temperature} with a fixed seed) it runs plain decoding of the
 * target, the model-free {@code ngram}, {@code aded} (its table from {@code ngramCorpus}, else empty) and
 * {@code lookahead}, and per draft model {@code speculative} (γ fixed and {@code auto}), {@code pearl}
 * (γ fixed and {@code auto}; compared with {@code speculative} at the same γ in the same repetition),
 * {@code tree} and {@code collab} (the draft as the small model, the target as the large one, {@link
 * CollaborativeDecoding.Rule#MAX_PROB} at a threshold calibrated so the large model is called on at
 * most {@code maxCallFrequency} of the tokens of a calibration prompt).
 *
 * <p>Each repetition runs every method once over the whole prompt set (methods interleaved, so drift of
 * the machine hits all alike); one untimed repetition warms the JIT first. A method's tokens/s in a
 * repetition is its generated tokens over its wall time on the prompt set, and its relative speed that
 * rate over plain decoding's in the same repetition (so plain's is exactly 1). Acceptance rate, mean
 * accepted length, target passes per token and collab frequencies are summed over the prompt set and
 * do not depend on the repetition (greedy and seeded sampling are deterministic; PEARL's {@code auto}
 * γ is timed, so its figures may vary).
 *
 * <p>PEARL needs two thread groups: with {@code threads} ≥ 2 it runs on a second copy of the target with
 * {@code threads − 1} threads and drafts with their own one-thread backends, so it uses the same number of
 * cores as the other methods, which all share one backend of {@code threads} threads. Speculative decoding
 * is then also timed on PEARL's target group alone (its draft sharing that group), which tells what the
 * overlap gains apart from what moving a core to the draft costs. With one thread its models share that
 * backend.
 */
public final class MethodsBench {

    /**
     * @param prompts            the timed prompt set
     * @param calibrationPrompt  the prompt the collab threshold is calibrated on (not in the timed set; 2 × maxTokens
     *                           tokens generated from it)
     * @param maxTokens          tokens generated per prompt
     * @param repetitions        timed repetitions (≥ 5 for a meaningful IQR), after one untimed
     * @param threads            CPU threads (the models share one backend; PEARL splits them, see the class)
     * @param temperature        the sampled mode's temperature
     * @param seed               the sampled mode's seed (prompt i uses stream i)
     * @param draftLength        γ of fixed-length {@code speculative}
     * @param maxCallFrequency   the collab threshold is the largest candidate such that it and every smaller
     *                           candidate call the large model on at most this fraction of the tokens, both of
     *                           the calibration prompt and of the timed set (the frequency is not monotone in
     *                           the threshold: a different routing changes the text that follows)
     * @param collabThresholds   candidate thresholds, tried from the smallest up
     * @param ngramCorpus        the text whose trigrams seed aded's table, or null for an empty table
     * @param gammas             the γ of each fixed-length {@code speculative} entry (with {@code pearl}, γ =
     *                           {@code draftLength}, the one PEARL is compared with, runs whether listed or not)
     * @param methods            the methods to run besides plain (which always runs): a subset of {@link #METHODS}
     * @param modes              {@code greedy}, {@code sampled} or both, in that order
     */
    public record Options(List<String> prompts, String calibrationPrompt, int maxTokens, int repetitions, int threads,
                          float temperature, long seed, int draftLength, double maxCallFrequency,
                          double[] collabThresholds, Path ngramCorpus, List<Integer> gammas, List<String> methods,
                          List<String> modes) {
        public Options {
            gammas = gammas == null || gammas.isEmpty() ? List.of(draftLength) : List.copyOf(gammas);
            for (int g : gammas) {
                if (g < 1) {
                    throw new IllegalArgumentException("--gammas must be at least 1, got " + g + ".");
                }
            }
            methods = methods == null ? METHODS : List.copyOf(methods);
            for (String m : methods) {
                if (!METHODS.contains(m) && !m.equals("plain")) {
                    throw new IllegalArgumentException("--methods: unknown method \"" + m + "\" (known: plain, "
                            + String.join(", ", METHODS) + ").");
                }
            }
            modes = modes == null ? List.of("greedy", "sampled") : List.copyOf(modes);
            if (modes.isEmpty()) {
                throw new IllegalArgumentException("--modes needs greedy, sampled or both.");
            }
            for (String m : modes) {
                if (!m.equals("greedy") && !m.equals("sampled")) {
                    throw new IllegalArgumentException("--modes takes greedy and/or sampled, got \"" + m + "\".");
                }
            }
            prompts = List.copyOf(prompts);
            if (prompts.isEmpty()) {
                throw new IllegalArgumentException("the methods suite needs at least one prompt.");
            }
            if (maxTokens < 1 || repetitions < 1 || threads < 1 || draftLength < 1) {
                throw new IllegalArgumentException("methods bench settings must be at least 1.");
            }
            if (!(temperature > 0)) {
                throw new IllegalArgumentException("the sampled mode's temperature must be > 0, got " + temperature + ".");
            }
            if (collabThresholds.length == 0) {
                throw new IllegalArgumentException("give at least one collab threshold to try.");
            }
            collabThresholds = collabThresholds.clone();
            Arrays.sort(collabThresholds);
        }

        /** Four prompts of 64 tokens, 5 repetitions, T = 0.8 seed 1, γ = 4, collab calls ≤ 20%, no aded corpus. */
        public static Options defaults(int threads) {
            return new Options(DEFAULT_PROMPTS, "ROMEO:\nBut soft, what light", 64, 5, threads, 0.8f, 1, 4, 0.2,
                    new double[] {0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.4, 0.5}, null,
                    null, null, null);
        }

        /** Fixed-length speculative at each of {@code g} (the suite's draft length is always among them). */
        public Options withGammas(List<Integer> g) {
            return new Options(prompts, calibrationPrompt, maxTokens, repetitions, threads, temperature, seed, draftLength,
                    maxCallFrequency, collabThresholds, ngramCorpus, g, methods, modes);
        }

        /** Only these methods (plain always runs). */
        public Options withMethods(List<String> m) {
            return new Options(prompts, calibrationPrompt, maxTokens, repetitions, threads, temperature, seed, draftLength,
                    maxCallFrequency, collabThresholds, ngramCorpus, gammas, m, modes);
        }

        /** Only these modes: greedy, sampled. */
        public Options withModes(List<String> m) {
            return new Options(prompts, calibrationPrompt, maxTokens, repetitions, threads, temperature, seed, draftLength,
                    maxCallFrequency, collabThresholds, ngramCorpus, gammas, methods, m);
        }

        boolean runs(String method) {
            return methods.contains(method);
        }

        public Options withMaxTokens(int n) {
            return new Options(prompts, calibrationPrompt, n, repetitions, threads, temperature, seed, draftLength,
                    maxCallFrequency, collabThresholds, ngramCorpus, gammas, methods, modes);
        }

        public Options withRepetitions(int n) {
            return new Options(prompts, calibrationPrompt, maxTokens, n, threads, temperature, seed, draftLength,
                    maxCallFrequency, collabThresholds, ngramCorpus, gammas, methods, modes);
        }

        public Options withNgramCorpus(Path corpus) {
            return new Options(prompts, calibrationPrompt, maxTokens, repetitions, threads, temperature, seed, draftLength,
                    maxCallFrequency, collabThresholds, corpus, gammas, methods, modes);
        }

        public Options withPrompts(List<String> p) {
            return new Options(p, calibrationPrompt, maxTokens, repetitions, threads, temperature, seed, draftLength,
                    maxCallFrequency, collabThresholds, ngramCorpus, gammas, methods, modes);
        }
    }

    /** The methods the suite can run besides plain, in the order it runs them. */
    public static final List<String> METHODS = List.of("ngram", "aded", "lookahead", "speculative", "pearl", "tree", "collab");

    public static final List<String> DEFAULT_PROMPTS = List.of(
            "First Citizen:\nBefore we proceed any further, hear me speak.",
            "KING RICHARD III:\nNow is the winter",
            "Prince Andrew said",
            "JULIET:\nO Romeo, Romeo, wherefore art thou");

    /**
     * The collab threshold chosen for one draft and mode; {@code callFrequency} and
     * {@code triedCallFrequency} are on the calibration prompt (NaN for candidates not run).
     */
    public record Calibration(String draft, String mode, CollaborativeDecoding.Rule rule, double threshold,
                              double callFrequency, double[] tried, double[] triedCallFrequency) {}

    /**
     * One method in one mode.
     *
     * @param method           plain, speculative, ngram or collab
     * @param setting          e.g. {@code gamma=4}, {@code auto}, {@code threshold=0.3} (empty for plain)
     * @param draft            the draft / small model's label, or null for methods without one
     * @param mode             {@code greedy} or {@code sampled}
     * @param stats            the decode stats summed over the prompt set (the last repetition's)
     * @param tokensPerSecond  per repetition: generated tokens over wall time on the prompt set
     * @param relativeSpeed    per repetition: tokensPerSecond over plain's in the same repetition
     * @param collab           the collab threshold used and its call/change counts, else null
     * @param relativeToSpeculative for pearl: per repetition, tokensPerSecond over that of speculative with the
     *                         same draft and γ (γ = the suite's draft length for both, also for pearl auto), else null
     * @param relativeToSpeculativeOnPearlThreads for pearl with split threads: the same ratio against speculative
     *                         run with PEARL's target thread group alone (its draft sharing that group), which
     *                         isolates what the overlap gains; else null
     */
    public record Figure(String method, String setting, String draft, String mode, DecodeStats stats,
                         Stats tokensPerSecond, Stats relativeSpeed, Collab collab, Stats relativeToSpeculative,
                         Stats relativeToSpeculativeOnPearlThreads) {}

    /** collab's threshold and how often the large model was called / changed the token on the prompt set. */
    public record Collab(CollaborativeDecoding.Rule rule, double threshold,
                         CollaborativeDecoding.Collaboration collaboration) {}

    /** @param backend the name of the backend every model ran on ({@code cpu}, {@code cuda}) */
    public record Result(String target, List<String> drafts, String dtype, String backend, Options options,
                         List<Calibration> calibrations, List<Figure> figures, MemorySnapshot memory) {}

    private MethodsBench() {}

    /**
     * A method to time: its strategy, how to describe it, and (pearl) the speculative entries it is compared
     * with on the same cores and on its own target threads, else −1.
     */
    private record Entry(String method, String setting, String draft, DecodingStrategy strategy, Collab collabSetting,
                         int comparedWith, int comparedOnPearlThreads) {
        Entry(String method, String setting, String draft, DecodingStrategy strategy, Collab collabSetting) {
            this(method, setting, draft, strategy, collabSetting, -1, -1);
        }
    }

    /**
     * Runs the suite with {@code targetDir} as the target and each of {@code draftDirs} as draft / small
     * model. {@code progress} counts calibration runs and (method, repetition) pairs, warm-up included.
     */
    public static Result run(Path targetDir, Path[] draftDirs, Options o, Progress progress) {
        return run(targetDir, draftDirs, o, Backends.DEFAULT, progress);
    }

    /**
     * The same with every model on the backend {@code device} ({@link Backends#open}'s names, or {@link
     * Backends#AUTO}): the target opens it and the drafts share it. On a device other than the CPU, PEARL's
     * target and drafts share that one backend too (there is no second thread group to give them), and
     * {@code threads} counts host threads only.
     */
    public static Result run(Path targetDir, Path[] draftDirs, Options o, String device, Progress progress) {
        String chosen = Backends.choose(device).name();
        boolean cpu = chosen.equals(Backends.DEFAULT);
        ModelLoader.Options load = ModelLoader.Options.defaults().withThreads(o.threads()).withDevice(chosen);
        List<LanguageModel> drafts = new ArrayList<>();
        List<LanguageModel> pearlModels = new ArrayList<>(); // PEARL's own target copy and drafts, when split
        try (LanguageModel target = ModelLoader.load(targetDir, load)) {
            ModelLoader.Options shared = ModelLoader.Options.defaults().withBackend(target.backend());
            List<String> draftLabels = new ArrayList<>();
            for (Path d : draftDirs) {
                drafts.add(ModelLoader.load(d, shared));
                draftLabels.add(label(d));
            }
            LanguageModel pearlTarget = target;
            List<LanguageModel> pearlDrafts = drafts;
            List<LanguageModel> onPearlThreads = null; // drafts sharing PEARL's target thread group
            if (cpu && o.threads() >= 2 && o.runs("pearl")) {
                pearlTarget = ModelLoader.load(targetDir, ModelLoader.Options.defaults().withThreads(o.threads() - 1));
                pearlModels.add(pearlTarget);
                pearlDrafts = new ArrayList<>();
                for (Path d : draftDirs) {
                    LanguageModel own = ModelLoader.load(d, ModelLoader.Options.defaults().withThreads(1));
                    pearlModels.add(own);
                    pearlDrafts.add(own);
                }
                onPearlThreads = new ArrayList<>();
                for (Path d : draftDirs) {
                    LanguageModel beside = ModelLoader.load(d, ModelLoader.Options.defaults().withBackend(pearlTarget.backend()));
                    pearlModels.add(beside);
                    onPearlThreads.add(beside);
                }
            }
            List<String> modes = o.modes();
            TrigramTable table = o.ngramCorpus() == null ? TrigramTable.empty()
                    : TrigramTable.fromCorpus(target.tokenizer(), o.ngramCorpus());
            // A first estimate of the progress total; it is made exact once each mode's entries are known.
            long[] total = {(long) modes.size() * (drafts.size() * o.collabThresholds().length + 20L * (o.repetitions() + 1))};
            long[] done = {0};
            List<Calibration> calibrations = new ArrayList<>();
            List<Figure> figures = new ArrayList<>();
            for (int modeIndex = 0; modeIndex < modes.size(); modeIndex++) {
                String mode = modes.get(modeIndex);
                SamplingParams sp = mode.equals("greedy") ? SamplingParams.greedy()
                        : SamplingParams.greedy().withTemperature(o.temperature()).withSeed(o.seed());
                List<Entry> entries = new ArrayList<>();
                entries.add(new Entry("plain", "", null, new Generator(target), null));
                if (o.runs("ngram")) {
                    entries.add(new Entry("ngram", "max_ngram=" + PromptLookupDecoding.DEFAULT_MAX_NGRAM + ",gamma="
                            + PromptLookupDecoding.DEFAULT_DRAFT_LENGTH, null, new PromptLookupDecoding(target), null));
                }
                if (o.runs("aded")) {
                    entries.add(new Entry("aded", (o.ngramCorpus() == null ? "empty table" : "corpus=" + o.ngramCorpus().getFileName())
                            + ",nodes=" + AdedDecoding.DEFAULT_NODE_CAP + ",depth=" + AdedDecoding.DEFAULT_MAX_DEPTH, null,
                            new AdedDecoding(target, table), null));
                }
                if (o.runs("lookahead")) {
                    entries.add(new Entry("lookahead", "window=" + LookaheadDecoding.DEFAULT_WINDOW + ",ngram="
                            + LookaheadDecoding.DEFAULT_NGRAM + ",candidates=" + LookaheadDecoding.DEFAULT_CANDIDATES, null,
                            new LookaheadDecoding(target), null));
                }
                for (int i = 0; i < drafts.size(); i++) {
                    LanguageModel draft = drafts.get(i);
                    String dl = draftLabels.get(i);
                    int speculative = -1;
                    if (o.runs("speculative") || o.runs("pearl")) {
                        // Fixed γ in increasing order; with pearl, the suite's draft length (its comparison) among them.
                        java.util.TreeSet<Integer> gammas = new java.util.TreeSet<>(o.runs("speculative") ? o.gammas() : List.of());
                        if (o.runs("pearl")) {
                            gammas.add(o.draftLength());
                        }
                        for (int g : gammas) {
                            if (g != o.draftLength() && !o.runs("speculative")) {
                                continue;
                            }
                            if (g == o.draftLength()) {
                                speculative = entries.size();
                            }
                            entries.add(new Entry("speculative", "gamma=" + g, dl, new SpeculativeDecoding(target, draft, g), null));
                        }
                    }
                    if (o.runs("speculative")) {
                        entries.add(new Entry("speculative", "auto", dl, SpeculativeDecoding.adaptive(target, draft), null));
                    }
                    if (o.runs("pearl")) {
                        int onTargetThreads = -1;
                        if (onPearlThreads != null) {
                            onTargetThreads = entries.size();
                            entries.add(new Entry("speculative", "gamma=" + o.draftLength() + ",threads=" + (o.threads() - 1)
                                    + " (pearl's target group)", dl, new SpeculativeDecoding(pearlTarget, onPearlThreads.get(i),
                                    o.draftLength()), null));
                        }
                        entries.add(new Entry("pearl", "gamma=" + o.draftLength(), dl,
                                new PearlDecoding(pearlTarget, pearlDrafts.get(i), o.draftLength()), null, speculative,
                                onTargetThreads));
                        entries.add(new Entry("pearl", "auto", dl, PearlDecoding.adaptive(pearlTarget, pearlDrafts.get(i)),
                                null, speculative, onTargetThreads));
                    }
                    if (o.runs("tree")) {
                        entries.add(new Entry("tree", "nodes=" + TreeDecoding.DEFAULT_NODE_BUDGET + ",top_k="
                                + TreeDecoding.DEFAULT_TOP_K + ",depth=" + TreeDecoding.DEFAULT_MAX_DEPTH, dl,
                                TreeDecoding.of(target, draft), null));
                    }
                    if (o.runs("collab")) {
                        Calibration c = calibrate(target, draft, dl, mode, sp, o, () -> progress.update(++done[0], total[0]));
                        calibrations.add(c);
                        entries.add(new Entry("collab", String.format(Locale.ROOT, "max_prob<%s", c.threshold()), dl,
                                new CollaborativeDecoding(draft, target, c.rule(), c.threshold()),
                                new Collab(c.rule(), c.threshold(), null)));
                    }
                }
                total[0] = done[0] + (long) entries.size() * (o.repetitions() + 1)
                        + (long) (o.modes().size() - 1 - modeIndex) * (entries.size() * (o.repetitions() + 1L)
                        + (o.runs("collab") ? (long) drafts.size() * o.collabThresholds().length : 0));
                double[][] rates = new double[entries.size()][o.repetitions()];
                DecodeStats[] last = new DecodeStats[entries.size()];
                for (int rep = -1; rep < o.repetitions(); rep++) {
                    for (int e = 0; e < entries.size(); e++) {
                        List<DecodeStats> perPrompt = new ArrayList<>();
                        long nanos = 0;
                        for (int p = 0; p < o.prompts().size(); p++) {
                            GenerationRequest req = request(o, p, sp);
                            long t0 = System.nanoTime();
                            GenerationResult r = entries.get(e).strategy().generate(req);
                            nanos += System.nanoTime() - t0;
                            perPrompt.add(r.decodeStats());
                        }
                        last[e] = sum(entries.get(e).method(), perPrompt);
                        if (rep >= 0) {
                            rates[e][rep] = last[e].generatedTokens() / (nanos / 1e9);
                        }
                        progress.update(++done[0], total[0]);
                    }
                }
                for (int e = 0; e < entries.size(); e++) {
                    double[] rel = new double[o.repetitions()];
                    for (int rep = 0; rep < rel.length; rep++) {
                        rel[rep] = e == 0 ? 1.0 : rates[e][rep] / rates[0][rep];
                    }
                    Entry en = entries.get(e);
                    Collab collab = en.collabSetting() == null ? null : new Collab(en.collabSetting().rule(),
                            en.collabSetting().threshold(), CollaborativeDecoding.Collaboration.of(last[e]));
                    figures.add(new Figure(en.method(), en.setting(), en.draft(), mode, last[e], Stats.of(rates[e]),
                            Stats.of(rel), collab, ratio(rates, e, en.comparedWith()),
                            ratio(rates, e, en.comparedOnPearlThreads())));
                }
            }
            return new Result(label(targetDir), draftLabels, target.weightDType().name().toLowerCase(Locale.ROOT),
                    target.backend().name(), o, calibrations, figures, MemorySnapshot.of(target));
        } finally {
            for (LanguageModel d : drafts) {
                d.close();
            }
            for (LanguageModel m : pearlModels.reversed()) { // the target copy, whose backend the others may use, last
                m.close();
            }
        }
    }

    /** Per repetition, entry {@code e}'s rate over entry {@code other}'s; null when {@code other} is −1. */
    private static Stats ratio(double[][] rates, int e, int other) {
        if (other < 0) {
            return null;
        }
        double[] r = new double[rates[e].length];
        for (int rep = 0; rep < r.length; rep++) {
            r[rep] = rates[e][rep] / rates[other][rep];
        }
        return Stats.of(r);
    }

    /**
     * The largest candidate threshold such that it and every smaller one stay within the call limit both
     * on the calibration prompt and on the timed prompt set (run exactly as it is timed later, so the
     * reported frequency is within the limit too); 0 (never calling) if even the smallest does not.
     * Candidates after the first one over the limit are not run (their frequencies are NaN).
     */
    private static Calibration calibrate(LanguageModel target, LanguageModel draft, String draftLabel, String mode,
                                         SamplingParams sp, Options o, Runnable tick) {
        CollaborativeDecoding.Rule rule = CollaborativeDecoding.Rule.MAX_PROB;
        double[] tried = o.collabThresholds();
        double[] freq = new double[tried.length];
        Arrays.fill(freq, Double.NaN);
        double chosen = 0, chosenFreq = 0;
        GenerationRequest calibration = GenerationRequest.of(o.calibrationPrompt())
                .withMaxTokens(2 * o.maxTokens()).withSampling(sp);
        boolean within = true;
        for (int i = 0; i < tried.length; i++) {
            if (within) {
                CollaborativeDecoding collab = new CollaborativeDecoding(draft, target, rule, tried[i]);
                freq[i] = CollaborativeDecoding.Collaboration.of(collab.generate(calibration).decodeStats()).callFrequency();
                List<DecodeStats> timed = new ArrayList<>();
                for (int p = 0; p < o.prompts().size(); p++) {
                    timed.add(collab.generate(request(o, p, sp)).decodeStats());
                }
                double timedFreq = CollaborativeDecoding.Collaboration.of(sum("collab", timed)).callFrequency();
                within = freq[i] <= o.maxCallFrequency() && timedFreq <= o.maxCallFrequency();
                if (within) {
                    chosen = tried[i];
                    chosenFreq = freq[i];
                }
            }
            tick.run();
        }
        return new Calibration(draftLabel, mode, rule, chosen, chosenFreq, tried, freq);
    }

    /** Prompt {@code p} of the timed set as every method runs it (stream id p). */
    private static GenerationRequest request(Options o, int p, SamplingParams sp) {
        return GenerationRequest.of(o.prompts().get(p)).withMaxTokens(o.maxTokens()).withSampling(sp).withStreamId(p);
    }

    /** The stats of several generations added up (histograms element-wise). */
    static DecodeStats sum(String method, List<DecodeStats> all) {
        int tokens = 0;
        long target = 0, draft = 0, verifications = 0, drafted = 0, accepted = 0;
        double dm = 0, vm = 0, om = 0;
        List<Long> hist = new ArrayList<>();
        for (DecodeStats s : all) {
            tokens += s.generatedTokens();
            target += s.targetForwardPasses();
            draft += s.draftForwardPasses();
            verifications += s.verifications();
            drafted += s.draftedTokens();
            accepted += s.acceptedTokens();
            dm += s.draftMillis();
            vm += s.verifyMillis();
            om += s.otherMillis();
            for (int k = 0; k < s.acceptedHistogram().size(); k++) {
                while (hist.size() <= k) {
                    hist.add(0L);
                }
                hist.set(k, hist.get(k) + s.acceptedHistogram().get(k));
            }
        }
        return new DecodeStats(method, tokens, target, draft, verifications, drafted, accepted, hist, dm, vm, om);
    }

    private static String label(Path dir) {
        return dir.toAbsolutePath().normalize().getFileName().toString();
    }

    /** The result as the JSON written to {@code bench/results/} (rates in tokens per second). */
    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.target());
        n.put("target", r.target());
        ArrayNode drafts = n.putArray("drafts");
        r.drafts().forEach(drafts::add);
        n.put("dtype", r.dtype());
        n.put("backend", r.backend());
        ObjectNode o = n.putObject("options");
        ArrayNode prompts = o.putArray("prompts");
        r.options().prompts().forEach(prompts::add);
        o.put("calibration_prompt", r.options().calibrationPrompt());
        o.put("max_tokens", r.options().maxTokens());
        o.put("repetitions", r.options().repetitions());
        o.put("threads", r.options().threads());
        o.put("temperature", r.options().temperature());
        o.put("seed", r.options().seed());
        o.put("draft_length", r.options().draftLength());
        ArrayNode gammas = o.putArray("gammas");
        r.options().gammas().forEach(gammas::add);
        ArrayNode methods = o.putArray("methods");
        r.options().methods().forEach(methods::add);
        ArrayNode modes = o.putArray("modes");
        r.options().modes().forEach(modes::add);
        o.put("collab_max_call_frequency", r.options().maxCallFrequency());
        if (r.options().ngramCorpus() == null) {
            o.putNull("ngram_corpus");
        } else {
            o.put("ngram_corpus", r.options().ngramCorpus().toString());
        }
        ArrayNode cal = n.putArray("collab_calibration");
        for (Calibration c : r.calibrations()) {
            ObjectNode e = cal.addObject();
            e.put("draft", c.draft());
            e.put("mode", c.mode());
            e.put("rule", c.rule().name().toLowerCase(Locale.ROOT));
            e.put("threshold", c.threshold());
            e.put("calibration_call_frequency", c.callFrequency());
            ArrayNode tried = e.putArray("tried");
            for (int i = 0; i < c.tried().length; i++) {
                ObjectNode t = tried.addObject();
                t.put("threshold", c.tried()[i]);
                if (Double.isNaN(c.triedCallFrequency()[i])) {
                    t.putNull("call_frequency"); // not run: a smaller threshold was already over the limit
                } else {
                    t.put("call_frequency", c.triedCallFrequency()[i]);
                }
            }
        }
        ArrayNode figs = n.putArray("methods");
        for (Figure f : r.figures()) {
            ObjectNode e = figs.addObject();
            e.put("method", f.method());
            e.put("setting", f.setting());
            if (f.draft() == null) {
                e.putNull("draft");
            } else {
                e.put("draft", f.draft());
            }
            e.put("mode", f.mode());
            e.put("temperature", f.mode().equals("greedy") ? 0 : r.options().temperature());
            DecodeStats s = f.stats();
            e.put("generated_tokens", s.generatedTokens());
            e.put("target_forward_passes", s.targetForwardPasses());
            e.put("draft_forward_passes", s.draftForwardPasses());
            if (f.collab() == null) {
                e.put("acceptance_rate", s.acceptanceRate());
                e.put("mean_accepted_length", s.meanAcceptedPerVerification());
                e.put("mean_tokens_per_verification", s.meanTokensPerVerification());
            } else {
                // collab drafts nothing: its figures are under "collab" (target passes = large-model passes).
                e.putNull("acceptance_rate");
                e.putNull("mean_accepted_length");
                e.putNull("mean_tokens_per_verification");
            }
            e.put("target_passes_per_token", s.targetPassesPerToken());
            ArrayNode hist = e.putArray("accepted_histogram");
            s.acceptedHistogram().forEach(hist::add);
            e.set("tokens_per_s", f.tokensPerSecond().toJson());
            e.set("relative_tokens_per_s", f.relativeSpeed().toJson());
            if (f.relativeToSpeculative() != null) {
                e.set("relative_to_speculative", f.relativeToSpeculative().toJson());
            }
            if (f.relativeToSpeculativeOnPearlThreads() != null) {
                e.set("relative_to_speculative_on_pearl_target_threads", f.relativeToSpeculativeOnPearlThreads().toJson());
            }
            if (f.collab() != null) {
                ObjectNode c = e.putObject("collab");
                c.put("rule", f.collab().rule().name().toLowerCase(Locale.ROOT));
                c.put("threshold", f.collab().threshold());
                c.put("large_calls", f.collab().collaboration().largeCalls());
                c.put("changed_tokens", f.collab().collaboration().changed());
                c.put("call_frequency", f.collab().collaboration().callFrequency());
                c.put("change_frequency", f.collab().collaboration().changeFrequency());
                c.put("within_call_limit", f.collab().collaboration().callFrequency() <= r.options().maxCallFrequency());
            }
        }
        n.set("memory", r.memory().toJson());
        return n;
    }
}
