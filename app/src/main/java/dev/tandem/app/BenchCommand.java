package dev.tandem.app;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.app.bench.AttentionBench;
import dev.tandem.app.bench.BatchBench;
import dev.tandem.app.bench.BenchReport;
import dev.tandem.app.bench.DecodeBench;
import dev.tandem.app.bench.DiffusionBench;
import dev.tandem.app.bench.ViewsBench;
import dev.tandem.app.bench.EngineBench;
import dev.tandem.app.bench.MachineInfo;
import dev.tandem.app.bench.MethodsBench;
import dev.tandem.app.bench.PrefillBench;
import dev.tandem.app.bench.RagBench;
import dev.tandem.app.bench.SoakRun;
import dev.tandem.runtime.AtomicFiles;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.synth.SyntheticCheckpoints;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.LinkedHashSet;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code tandem bench}: end-to-end figures on a real or synthetic checkpoint, written as JSON to
 * {@code bench/results/}. The first suite is {@code decode}; the benchmark issue adds the others.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        description = {"Measure decode, prefill, batched, per-method and engine throughput and write JSON, a report and charts to bench/results/.",
                "The suites:",
                "decode: decode tokens/s at each thread count beside the memory read bandwidth measured in the same run;",
                "prefill: prefill tokens/s and time to first token at several prompt lengths;",
                "batch: decode throughput with several sequences per pass, and the time of one pass over k rows;",
                "methods: every decoding method against plain decoding of --model with each of --drafts;",
                "engine: Engine throughput with --batch-sizes requests of each method at once, beside plain decoding;",
                "soak: --soak-requests generations from --soak-clients threads through one Engine (every method, some cancelled), "
                        + "checking that memory, KV blocks and results hold; fails the command when a check fails;",
                "diffusion: a masked-diffusion model (default models/bard-dlm) under every unmasking rule, with and without "
                        + "Fast-dLLM's caches and their drift, against low-confidence remasking one position per pass;",
                "views: the cost per token of the methods that run several views or hypotheses (contrastive, proxy-tune, cad, cfg, "
                        + "with and without a draft, dola, lol, caad, beam, diverse-beam) against plain greedy decoding of --model, with the "
                        + "passes per token (--drafts: the first is the amateur, base and draft, the second the tuned model);",
                "rag: time to first token of a question over --rag-passages passages of --rag-passage-tokens tokens: a full prefill "
                        + "beside --method rag with the passages cached and with them computed in the request (works with --shape);",
                "all: decode, prefill and batch in one run. Each suite also records heap, KV-cache and mapped-weight memory."})
public final class BenchCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    static final class Source {
        @Option(names = "--model", paramLabel = "DIR|FILE.gguf", description = "Hugging Face model directory or GGUF file (default: models/bard-l).")
        Path model;

        @Option(names = "--shape", paramLabel = "NAME",
                description = "Benchmark a random-weight checkpoint of this shape, synthesized into a temporary directory "
                        + "(see tandem synth --help for the shapes; default: none, --model is measured).")
        String shape;
    }

    @ArgGroup(exclusive = true)
    Source source = new Source();

    @Option(names = "--suite", paramLabel = "NAME", defaultValue = "decode", description = "Suite to run: decode, prefill, batch, methods, engine, soak, attention, diffusion, views, rag or all (default: decode; all = decode, prefill and batch).")
    String suite;

    @Option(names = "--device", paramLabel = "NAME", defaultValue = "cpu",
            description = "decode, batch, methods and attention suites: the backend to measure, cpu (default), cuda or auto; on a device other "
                    + "than the CPU --threads is one count of host threads and the bandwidth is the device's (CUDA: a device-to-device copy).")
    String device;

    @Option(names = "--contexts", paramLabel = "LIST", defaultValue = "1024,8192,32768",
            description = "attention suite: KV lengths to time one decode row per sequence over; the heads are --model's or "
                    + "--shape's (no checkpoint is written), the rows per call the first of --batch-sizes (default: ${DEFAULT-VALUE}).")
    String contextsOption;

    @Option(names = "--kv-dtype", paramLabel = "f32|bf16", defaultValue = "bf16",
            description = "attention suite: the KV cache's element type (default: ${DEFAULT-VALUE}).")
    String kvDtype;

    @Option(names = "--dtype", paramLabel = "f32|bf16", defaultValue = "bf16", description = "Weight dtype for --shape (default: bf16).")
    String dtype;

    @Option(names = "--threads", paramLabel = "LIST", defaultValue = "1,all",
            description = "Comma-separated thread counts to measure; 'all' = every processor (default: 1,all; "
                    + "the batch suite runs at the largest; counts above the processors are capped to them, with a note).")
    String threads;

    @Option(names = "--prompt-tokens", paramLabel = "N", defaultValue = "32", description = "Tokens prefilled first (default: ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--tokens", paramLabel = "N", defaultValue = "64", description = "Decode steps timed per repetition (default: ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--rag-passages", paramLabel = "N", defaultValue = "7",
            description = "rag suite: passages per question (default: ${DEFAULT-VALUE}).")
    int ragPassages;

    @Option(names = "--rag-passage-tokens", paramLabel = "N", defaultValue = "256",
            description = "rag suite: tokens per passage (default: ${DEFAULT-VALUE}).")
    int ragPassageTokens;

    @Option(names = "--rag-question-tokens", paramLabel = "N", defaultValue = "32",
            description = "rag suite: tokens of the question (default: ${DEFAULT-VALUE}).")
    int ragQuestionTokens;

    @Option(names = "--repetitions", paramLabel = "N", defaultValue = "5", description = "Timed repetitions (median and IQR; default: ${DEFAULT-VALUE}).")
    int repetitions;

    @Option(names = "--bandwidth-mib", paramLabel = "MIB", defaultValue = "1024",
            description = "Buffer for the memory-bandwidth read, in MiB; keep it far above the L3 cache (default: ${DEFAULT-VALUE}).")
    long bandwidthMib;

    @Option(names = "--batch-sizes", paramLabel = "LIST", defaultValue = "1,4,16",
            description = "batch suite: sequences decoded together; engine suite: requests at once (default: 1,4,16).")
    String batchSizesOption;

    @Option(names = "--prompt-lengths", paramLabel = "LIST", defaultValue = "32,128,512",
            description = "prefill suite: prompt lengths to time, capped at the context (default: 32,128,512).")
    String promptLengthsOption;

    @Option(names = "--max-rows", paramLabel = "K", defaultValue = "16",
            description = "batch suite: time one pass over k = 1..K new rows of one sequence (default: 16).")
    int maxRows;

    @Option(names = "--out", paramLabel = "FILE",
            description = "Result JSON (default: bench/results/DATE-SUITE-MODEL.json in the Tandem directory).")
    Path out;

    @Option(names = "--drafts", paramLabel = "DIRS",
            description = "methods suite: draft models (directories or GGUF files), comma-separated; engine suite: the first is the draft (default: models/bard-s,models/bard-m).")
    String drafts;

    @Option(names = "--method-tokens", paramLabel = "N",
            description = "methods suite: tokens generated per prompt (default: 64); engine suite: per request (default: 32).")
    Integer methodTokens;

    @Option(names = "--ngram-corpus", paramLabel = "FILE",
            description = "methods suite: the text whose trigrams seed aded's table (default: none, an empty table).")
    Path ngramCorpus;

    @Option(names = "--gammas", paramLabel = "LIST",
            description = "methods suite: the γ of each fixed-length speculative run, comma-separated (default: 4, the γ PEARL uses); engine suite: the first is γ.")
    String gammas;

    @Option(names = "--methods", paramLabel = "LIST",
            description = "methods suite: the methods to run besides plain, comma-separated (default: all of ngram, aded,"
                    + " lookahead, speculative, pearl, tree, collab); engine suite: any of speculative, ngram, tree, aded, lookahead, pearl"
                    + " (default: all of them).")
    String methodsList;

    @Option(names = "--modes", paramLabel = "LIST", description = "methods suite: greedy, sampled or both (default: both).")
    String modes;

    @Option(names = "--prompt-count", paramLabel = "N",
            description = "methods suite: time the first N of its four prompts (default: all four); diffusion suite: of its three.")
    Integer promptCount;

    @Option(names = "--gen-length", paramLabel = "N",
            description = "diffusion suite: canvas positions after each prompt (default: 32).")
    Integer genLength;

    @Option(names = "--block-length", paramLabel = "B",
            description = "diffusion suite: the block of every configuration but the one-block baseline (default: 8).")
    Integer blockLength;

    @Option(names = "--soak-requests", paramLabel = "N", defaultValue = "1000",
            description = "soak suite: generations after the warm-up (default: ${DEFAULT-VALUE}).")
    int soakRequests;

    @Option(names = "--soak-clients", paramLabel = "N", defaultValue = "16",
            description = "soak suite: threads submitting them at once (default: ${DEFAULT-VALUE}).")
    int soakClients;

    /** The soak suite's result, when it ran (its failed checks fail the command after the files are written). */
    private SoakRun.Result soak;

    @Option(names = "--report", paramLabel = "FILE",
            description = "Measure nothing: (re)write the Markdown report and charts of an existing result JSON (default: none, measure).")
    Path reportOf;

    @Option(names = "--work-dir", paramLabel = "DIR",
            description = "Where --shape writes its temporary checkpoint (default: the system temporary directory).")
    Path workDir;

    @Override
    public Integer call() throws IOException {
        PrintWriter stdout = spec.commandLine().getOut();
        if (reportOf != null) {
            if (!Files.isRegularFile(reportOf)) {
                throw new TandemException("--report: no result file " + reportOf + ".");
            }
            List<Path> written = BenchReport.write(reportOf);
            stdout.println("report:  " + written.getLast() + " (charts: " + (written.size() - 1) + ")");
            stdout.flush();
            return 0;
        }
        if (!List.of("decode", "prefill", "batch", "methods", "engine", "soak", "attention", "diffusion", "views", "rag", "all").contains(suite)) {
            throw new UsageException("--suite " + suite + " is not a suite; the suites are: decode, prefill, batch, "
                    + "methods, engine, soak, attention, diffusion, views, rag, all.");
        }
        if (!suite.equals("diffusion") && (genLength != null || blockLength != null)) {
            throw new UsageException("--gen-length and --block-length apply to --suite diffusion only.");
        }
        if ((suite.equals("methods") || suite.equals("engine") || suite.equals("soak") || suite.equals("views")) && source.shape != null) {
            throw new UsageException("--suite " + suite + " needs real models (a target and drafts that agree with it), "
                    + "not --shape.");
        }
        if (ngramCorpus != null && !suite.equals("methods")) {
            throw new UsageException("--ngram-corpus applies to --suite methods only.");
        }
        if (ngramCorpus != null && !Files.isRegularFile(ngramCorpus)) {
            throw new TandemException("the corpus file " + ngramCorpus + " does not exist.");
        }
        if (!dev.tandem.runtime.Backends.names().contains(device) && !dev.tandem.runtime.Backends.AUTO.equals(device)) {
            throw new UsageException("--device must be one of " + String.join(", ", dev.tandem.runtime.Backends.names()) + " or "
                    + dev.tandem.runtime.Backends.AUTO + ", but was \"" + device + "\".");
        }
        if (!device.equals(dev.tandem.runtime.Backends.DEFAULT) && !List.of("decode", "attention", "batch", "methods").contains(suite)) {
            throw new UsageException("--device applies to --suite decode, batch, methods and attention only (the other suites run on the CPU).");
        }
        int[] batchSizes = parseCounts(batchSizesOption, "--batch-sizes");
        int[] promptLengths = parseCounts(promptLengthsOption, "--prompt-lengths");
        int[] threadCounts = Arrays.stream(parseThreads(threads))
                .map(n -> Main.capThreads(n, "--threads", spec.commandLine().getErr())).distinct().toArray();
        if (bandwidthMib < 16) {
            throw new UsageException("--bandwidth-mib must be at least 16 (a buffer far larger than the caches), got "
                    + bandwidthMib + ".");
        }
        DecodeBench.Options options = usage(() -> new DecodeBench.Options(promptTokens, tokens, repetitions, bandwidthMib << 20, 10));
        ZonedDateTime now = ZonedDateTime.now(ZoneOffset.UTC);
        if (suite.equals("attention")) {
            return attention(stdout, now, batchSizes[0], threadCounts[threadCounts.length - 1]);
        }
        Path temp = null;
        Thread cleanup = null;
        try {
            Path modelDir;
            String label;
            if (source.shape != null) {
                DType weights = SynthCommand.weightDType(dtype);
                SyntheticCheckpoints.Spec synth = SyntheticCheckpoints.Spec.ofShape(source.shape, weights, 0);
                Path parent = workDir != null ? workDir : Path.of(System.getProperty("java.io.tmpdir"));
                Files.createDirectories(parent);
                temp = Files.createTempDirectory(parent, "tandem-bench-");
                // A synthesized checkpoint can be gigabytes: remove it on Ctrl-C too, not only on return.
                Path doomed = temp;
                cleanup = new Thread(() -> deleteQuietly(doomed), "tandem-bench-cleanup");
                Runtime.getRuntime().addShutdownHook(cleanup);
                modelDir = temp.resolve(source.shape);
                try (ProgressBar bar = new ProgressBar("synth " + source.shape + " " + dtype, ProgressBar.Unit.BYTES,
                        spec.commandLine().getErr())) {
                    SyntheticCheckpoints.write(synth, modelDir, false, bar);
                }
                label = source.shape + "-" + dtype.toLowerCase(Locale.ROOT) + " (random weights)";
            } else {
                modelDir = source.model != null ? source.model
                        : suite.equals("diffusion") ? GenerateCommand.defaultModel().resolveSibling("bard-dlm") : GenerateCommand.defaultModel();
                label = modelDir.toAbsolutePath().normalize().getFileName().toString();
            }
            Path file = out != null ? out : defaultOut(now, suite, source.shape != null ? source.shape + "-" + dtype : label);
            ObjectNode json = report(now, modelDir);
            MachineInfo machine = MachineInfo.current();
            boolean all = suite.equals("all");
            int largestThreads = java.util.Arrays.stream(threadCounts).max().orElse(1);
            if (all || suite.equals("decode")) {
                DecodeBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench decode " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = DecodeBench.run(modelDir, label, options, threadCounts, device, bar);
                }
                ObjectNode section = DecodeBench.toJson(result);
                section.put("weights_fit_in_last_level_cache", weightsFitInCache(result.weightBytesPerToken(), machine));
                addSection(json, "decode", section, all);
                printSummary(stdout, result, machine);
            }
            if (all || suite.equals("prefill")) {
                PrefillBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench prefill " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = PrefillBench.run(modelDir, label, usage(() -> new PrefillBench.Options(promptLengths, repetitions)), threadCounts, bar);
                }
                addSection(json, "prefill", PrefillBench.toJson(result), all);
                printPrefillSummary(stdout, result);
            }
            if (all || suite.equals("batch")) {
                BatchBench.Options batchOptions = usage(() -> new BatchBench.Options(promptTokens, tokens, repetitions, batchSizes,
                        maxRows, largestThreads));
                BatchBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench batch " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = BatchBench.run(modelDir, label, batchOptions, device, bar);
                }
                addSection(json, "batch", BatchBench.toJson(result), all);
                printBatchSummary(stdout, result, machine);
            }
            if (suite.equals("methods")) {
                Path[] draftDirs = parseDrafts();
                MethodsBench.Options methodOptions = usage(() -> methodsOptions(largestThreads));
                MethodsBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench methods " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = MethodsBench.run(modelDir, draftDirs, methodOptions, device, bar);
                }
                addSection(json, "methods", MethodsBench.toJson(result), false);
                stdout.println("methods: " + result.target() + ", drafts " + String.join(", ", result.drafts()) + ", backend "
                        + result.backend() + " (medians over the repetitions; see the report for every figure)");
                for (MethodsBench.Figure f : result.figures()) {
                    stdout.printf(Locale.ROOT, "  %-7s %-11s %-26s %-8s %8.1f tok/s  x%.2f of plain  %.3f target passes per token%n",
                            f.mode(), f.method(), f.setting().isEmpty() ? "-" : f.setting(), f.draft() == null ? "-" : f.draft(),
                            f.tokensPerSecond().median(), f.relativeSpeed().median(), f.stats().targetPassesPerToken());
                }
            }
            if (suite.equals("engine")) {
                Path[] draftDirs = parseDrafts();
                EngineBench.Options defaults = EngineBench.Options.defaults(largestThreads, batchSizes);
                EngineBench.Options engineOptions = usage(() -> new EngineBench.Options(defaults.prompts(),
                        methodTokens != null ? methodTokens : defaults.maxTokens(), repetitions, largestThreads, batchSizes,
                        methodsList != null ? words(methodsList) : defaults.methods(),
                        gammas != null ? parseCounts(gammas, "--gammas")[0] : defaults.draftLength()));
                EngineBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench engine " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = EngineBench.run(modelDir, draftDirs[0], engineOptions, bar);
                }
                addSection(json, "engine", EngineBench.toJson(result), false);
                stdout.println("engine: " + result.target() + ", draft " + result.draft() + " (see the report for every figure)");
            }
            if (suite.equals("diffusion")) {
                DiffusionBench.Options d = DiffusionBench.Options.defaults(largestThreads);
                DiffusionBench.Options diffusionOptions = usage(() -> new DiffusionBench.Options(
                        promptCount != null ? d.prompts().subList(0, Math.min(promptCount, d.prompts().size())) : d.prompts(),
                        genLength != null ? genLength : d.genLength(), blockLength != null ? blockLength : d.blockLength(), d.threshold(),
                        repetitions, largestThreads));
                DiffusionBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench diffusion " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = DiffusionBench.run(modelDir, diffusionOptions, bar);
                }
                addSection(json, "diffusion", DiffusionBench.toJson(result), false);
                stdout.println("diffusion: " + result.model() + ", " + diffusionOptions.prompts().size() + " prompts, canvas "
                        + diffusionOptions.genLength() + " (medians over the repetitions)");
                for (DiffusionBench.Figure f : result.figures()) {
                    stdout.printf(Locale.ROOT, "  %-16s block %-3d cache %-6s %4d passes  %5.2f per pass  %8.1f positions/s  x%.2f of "
                                    + "baseline  drift %d%n", f.rule(), f.blockLength(), f.cache(), f.passes(), f.positionsPerPass(),
                            f.positionsPerSecond().median(), f.relativeSpeed().median(), f.drift());
                }
            }
            if (suite.equals("views")) {
                Path[] otherDirs = parseDrafts();
                ViewsBench.Options v = ViewsBench.Options.defaults(largestThreads);
                ViewsBench.Options viewsOptions = usage(() -> new ViewsBench.Options(
                        promptCount != null ? v.prompts().subList(0, Math.min(promptCount, v.prompts().size())) : v.prompts(),
                        methodTokens != null ? methodTokens : v.maxTokens(), repetitions, largestThreads,
                        methodsList != null ? words(methodsList) : v.methods()));
                ViewsBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench views " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = ViewsBench.run(modelDir, otherDirs, viewsOptions, bar);
                }
                addSection(json, "views", ViewsBench.toJson(result), false);
                stdout.println("views: " + result.model() + " with " + String.join(", ", result.others()) + " (medians over the repetitions)");
                for (ViewsBench.Figure f : result.figures()) {
                    stdout.printf(Locale.ROOT, "  %-20s %-44s %6.3f model + %6.3f other passes per token  %8.1f tok/s  x%.2f the cost "
                                    + "of plain%n", f.method(), f.setting().isEmpty() ? "-" : f.setting(), f.modelPassesPerToken(),
                            f.otherPassesPerToken(), f.tokensPerSecond().median(), f.relativeCost().median());
                }
            }
            if (suite.equals("rag")) {
                RagBench.Options ragOptions = usage(() -> new RagBench.Options(ragPassages, ragPassageTokens, ragQuestionTokens,
                        repetitions, largestThreads));
                RagBench.Result result;
                try (ProgressBar bar = new ProgressBar("bench rag " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    result = RagBench.run(modelDir, label, ragOptions, bar);
                }
                addSection(json, "rag", RagBench.toJson(result), false);
                stdout.printf(Locale.ROOT, "rag: %s, %d passages of %d tokens and a %d-token question (%d tokens attended), %d threads"
                                + " (medians)%n  full prefill %10.1f ms%n  rag, cold    %10.1f ms  (passages computed as segments)%n"
                                + "  rag, cached  %10.1f ms  (x%.1f lower than the full prefill)%n", result.model(), ragPassages,
                        ragPassageTokens, ragQuestionTokens, result.contextTokens(), largestThreads, result.fullPrefillMillis().median(),
                        result.coldMillis().median(), result.cachedMillis().median(), result.speedup().median());
            }
            if (suite.equals("soak")) {
                Path[] draftDirs = parseDrafts();
                SoakRun.Options soakOptions = usage(() -> new SoakRun.Options(soakRequests, soakClients, largestThreads));
                try (ProgressBar bar = new ProgressBar("bench soak " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
                    soak = SoakRun.run(modelDir, draftDirs[0], soakOptions, bar);
                }
                addSection(json, "soak", SoakRun.toJson(soak), false);
                stdout.println("soak: " + (soak.passed() ? "passed" : "FAILED: " + String.join("; ", soak.failures())));
            }
            writeResult(stdout, file, json);
            if (soak != null && !soak.passed()) {
                throw new TandemException("the soak run failed " + soak.failures().size() + " of its checks, the first: "
                        + soak.failures().getFirst() + " (all are in " + file + ").");
            }
        } finally {
            if (temp != null) {
                Runtime.getRuntime().removeShutdownHook(cleanup);
                deleteTree(temp);
            }
        }
        return 0;
    }

    /** Writes the result JSON and its report beside it, and says where on {@code stdout}. */
    private static void writeResult(PrintWriter stdout, Path file, ObjectNode json) throws IOException {
        writeAtomically(file, new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(json) + "\n");
        List<Path> report;
        try {
            report = BenchReport.write(json, file);
        } catch (IOException e) {
            throw new TandemException("could not write the report beside " + file + " (" + e.getMessage() + ").", e);
        }
        stdout.println("results: " + file);
        stdout.println("report:  " + report.getLast() + " (charts: " + (report.size() - 1) + ")");
        stdout.flush();
    }

    /** The attention suite: the heads of --model or --shape (nothing is synthesized), no model loaded. */
    private int attention(PrintWriter stdout, ZonedDateTime now, int batch, int threadCount) throws IOException {
        dev.tandem.transformer.config.ModelConfig config;
        String label;
        Path modelDir;
        if (source.shape != null) {
            config = SyntheticCheckpoints.Spec.ofShape(source.shape, SynthCommand.weightDType(dtype), 0).config();
            label = source.shape;
            modelDir = null;
        } else {
            modelDir = source.model != null ? source.model : GenerateCommand.defaultModel();
            config = dev.tandem.transformer.ModelLoader.config(modelDir);
            label = modelDir.toAbsolutePath().normalize().getFileName().toString();
        }
        DType kv = switch (kvDtype.toLowerCase(Locale.ROOT)) {
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            default -> throw new UsageException("--kv-dtype must be f32 or bf16, but was \"" + kvDtype + "\".");
        };
        int[] contexts = parseCounts(contextsOption, "--contexts");
        AttentionBench.Options options = usage(() -> new AttentionBench.Options(contexts, batch, repetitions, kv, bandwidthMib << 20));
        AttentionBench.Result result;
        try (ProgressBar bar = new ProgressBar("bench attention " + label, ProgressBar.Unit.COUNT, spec.commandLine().getErr())) {
            result = AttentionBench.run(label, config.numHeads(), config.numKvHeads(), config.headDim(), options, device, threadCount, bar);
        }
        Path file = out != null ? out : defaultOut(now, suite, label + "-" + kv.lowerName());
        ObjectNode json = report(now, modelDir != null ? modelDir : Path.of(label));
        addSection(json, "attention", AttentionBench.toJson(result), false);
        for (String line : AttentionBench.summary(result)) {
            stdout.println(line);
        }
        writeResult(stdout, file, json);
        return 0;
    }

    private static List<String> words(String list) {
        List<String> out = new ArrayList<>();
        for (String part : list.split(",")) {
            if (!part.isBlank()) {
                out.add(part.strip().toLowerCase(Locale.ROOT));
            }
        }
        return out;
    }

    static int[] parseCounts(String list, String option) {
        List<Integer> counts = new ArrayList<>();
        for (String part : list.split(",")) {
            try {
                int n = Integer.parseInt(part.strip());
                if (n < 1) {
                    throw new NumberFormatException();
                }
                counts.add(n);
            } catch (NumberFormatException e) {
                throw new UsageException(option + " takes positive numbers separated by commas, got \"" + list + "\".");
            }
        }
        return counts.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Builds options from the command line, answering a bad value (IllegalArgumentException) as a usage error. */
    private static <T> T usage(java.util.function.Supplier<T> build) {
        try {
            return build.get();
        } catch (UsageException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /** The methods suite's options from the command line. */
    private MethodsBench.Options methodsOptions(int largestThreads) {
        MethodsBench.Options methodOptions = MethodsBench.Options.defaults(largestThreads).withRepetitions(repetitions);
        if (methodTokens != null) {
            methodOptions = methodOptions.withMaxTokens(methodTokens);
        }
        if (ngramCorpus != null) {
            methodOptions = methodOptions.withNgramCorpus(ngramCorpus);
        }
        if (gammas != null) {
            methodOptions = methodOptions.withGammas(Arrays.stream(parseCounts(gammas, "--gammas")).boxed().toList());
        }
        if (methodsList != null) {
            methodOptions = methodOptions.withMethods(words(methodsList));
        }
        if (modes != null) {
            methodOptions = methodOptions.withModes(words(modes));
        }
        if (promptCount != null) {
            if (promptCount < 1 || promptCount > MethodsBench.DEFAULT_PROMPTS.size()) {
                throw new UsageException("--prompt-count must be 1 to " + MethodsBench.DEFAULT_PROMPTS.size()
                        + ", got " + promptCount + ".");
            }
            methodOptions = methodOptions.withPrompts(MethodsBench.DEFAULT_PROMPTS.subList(0, promptCount));
        }
        return methodOptions;
    }

    static int[] parseThreads(String list) {
        int all = Runtime.getRuntime().availableProcessors();
        Set<Integer> counts = new LinkedHashSet<>();
        for (String part : list.split(",")) {
            String p = part.strip();
            int n;
            if (p.equalsIgnoreCase("all")) {
                n = all;
            } else {
                try {
                    n = Integer.parseInt(p);
                } catch (NumberFormatException e) {
                    throw new UsageException("--threads takes numbers or 'all' separated by commas, got \"" + list + "\".");
                }
                if (n < 1) {
                    throw new UsageException("--threads counts must be at least 1, got " + n + ".");
                }
            }
            counts.add(n);
        }
        return counts.stream().mapToInt(Integer::intValue).toArray();
    }

    private ObjectNode report(ZonedDateTime now, Path modelDir) {
        ObjectNode root = new ObjectMapper().createObjectNode();
        root.put("suite", suite);
        root.put("date", now.format(DateTimeFormatter.ISO_INSTANT));
        root.put("command", commandLine());
        gitCommit().ifPresent(c -> root.put("commit", c));
        root.put("model_dir", source.shape != null ? "(temporary) " + modelDir.getFileName() : modelDir.toString());
        root.set("machine", MachineInfo.current().toJson());
        return root;
    }

    /**
     * {@code git describe --always --dirty} of the Tandem directory, when it is a git checkout and git
     * answers within a few seconds; results name the code they measured.
     */
    private static Optional<String> gitCommit() {
        String home = System.getProperty("tandem.home");
        if (home == null) {
            return Optional.empty();
        }
        try {
            Process p = new ProcessBuilder("git", "-C", home, "describe", "--always", "--dirty", "--abbrev=12")
                    .redirectErrorStream(true).start();
            String text = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            boolean done = p.waitFor(5, TimeUnit.SECONDS);
            return done && p.exitValue() == 0 && !text.isEmpty() ? Optional.of(text) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
    }

    /** The command as typed (arguments with spaces quoted), for the record. */
    private String commandLine() {
        StringBuilder b = new StringBuilder("./tandem");
        for (String arg : spec.commandLine().getParseResult().originalArgs()) {
            b.append(' ').append(arg.isEmpty() || arg.matches(".*[\\s'\"$].*") ? "'" + arg.replace("'", "'\\''") + "'" : arg);
        }
        return b.toString();
    }

    static void printSummary(PrintWriter out, DecodeBench.Result r, MachineInfo machine) {
        out.println("machine: " + machine.summary());
        if (r.backend() != null && !r.backend().startsWith("cpu")) {
            out.println("backend: " + r.backend());
        }
        out.printf(Locale.ROOT, "%s: %,d parameters, %s, %.1f MB of weights read per token%n",
                r.model(), r.parameters(), r.dtype(), r.weightBytesPerToken() / 1e6);
        if (weightsFitInCache(r.weightBytesPerToken(), machine)) {
            out.printf(Locale.ROOT, "  (the weights fit in the %d MiB last-level cache: decode is not bound by memory bandwidth "
                    + "here, and fractions above 1 are possible)%n", machine.lastLevelCacheBytes() >> 20);
        }
        for (DecodeBench.ThreadResult t : r.threads()) {
            out.printf(Locale.ROOT,
                    "  %d thread%s: decode %.2f tok/s (IQR %.2f), prefill %.1f tok/s; weights read at %.2f GB/s = %.2f of "
                            + "the %.2f GB/s memory read bandwidth (best pass) measured with %d thread%s%n",
                    t.threads(), t.threads() == 1 ? "" : "s", t.decodeTokensPerSecond().median(),
                    t.decodeTokensPerSecond().iqr(), t.prefillTokensPerSecond().median(),
                    t.weightBytesPerSecond().median() / 1e9, t.fractionOfBandwidth(), t.bandwidth().best() / 1e9,
                    t.threads(), t.threads() == 1 ? "" : "s");
        }
    }

    static boolean weightsFitInCache(long weightBytesPerToken, MachineInfo machine) {
        return machine.lastLevelCacheBytes() > 0 && weightBytesPerToken <= machine.lastLevelCacheBytes();
    }

    private Path[] parseDrafts() {
        String home = System.getProperty("tandem.home");
        Path base = home != null ? Path.of(home) : Path.of("");
        if (drafts == null) {
            return new Path[] {base.resolve("models/bard-s"), base.resolve("models/bard-m")};
        }
        List<Path> dirs = new ArrayList<>();
        for (String d : drafts.split(",")) {
            if (!d.isBlank()) {
                dirs.add(Path.of(d.strip()));
            }
        }
        if (dirs.isEmpty()) {
            throw new UsageException("--drafts names no directory.");
        }
        return dirs.toArray(Path[]::new);
    }

    /** A single suite's fields go at the top level; {@code all} nests each suite under its name. */
    private static void addSection(ObjectNode root, String name, ObjectNode section, boolean nested) {
        if (nested) {
            root.set(name, section);
        } else {
            root.setAll(section);
        }
    }

    static void printPrefillSummary(PrintWriter out, PrefillBench.Result r) {
        out.printf(Locale.ROOT, "%s: %s, prefill%n", r.model(), r.dtype());
        for (PrefillBench.Figure f : r.figures()) {
            out.printf(Locale.ROOT, "  %d thread%s, %4d prompt tokens: %.1f tok/s (IQR %.1f), first token after %.1f ms%n",
                    f.threads(), f.threads() == 1 ? "" : "s", f.promptTokens(), f.tokensPerSecond().median(),
                    f.tokensPerSecond().iqr(), f.timeToFirstTokenMillis().median());
        }
    }

    static void printBatchSummary(PrintWriter out, BatchBench.Result r, MachineInfo machine) {
        out.println("machine: " + machine.summary());
        out.printf(Locale.ROOT, "%s: %s, %d threads%n", r.model(), r.dtype(), r.options().threads());
        for (BatchBench.BatchFigure b : r.batches()) {
            out.printf(Locale.ROOT, "  batch %2d: %.2f tok/s (IQR %.2f)%n", b.batch(), b.tokensPerSecond().median(),
                    b.tokensPerSecond().iqr());
        }
        out.printf(Locale.ROOT, "  one pass over k rows / over 1 row (goal in brackets; %.1f GMAC/s peak):%n",
                r.fmaPeakMacsPerSecond() / 1e9);
        StringBuilder ratios = new StringBuilder(" ");
        for (BatchBench.RowsFigure f : r.rows()) {
            ratios.append(String.format(Locale.ROOT, " k=%d %.2f (%.2f)", f.rows(), f.ratioToOneRow(), f.goalRatio()));
        }
        out.println(ratios);
    }

    private static Path defaultOut(ZonedDateTime now, String suite, String label) {
        String home = System.getProperty("tandem.home");
        Path base = home != null ? Path.of(home) : Path.of("");
        String safe = label.replaceAll("[^A-Za-z0-9._-]+", "-");
        return base.resolve("bench").resolve("results")
                .resolve(now.format(DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HHmm'Z'")) + "-" + suite + "-" + safe + ".json");
    }

    /** Writes next to the target and renames, so a failed run never leaves half a result file. */
    static void writeAtomically(Path file, String text) {
        Path abs = file.toAbsolutePath();
        try {
            Files.createDirectories(abs.getParent());
            byte[] bytes = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            AtomicFiles.write(abs, ch -> {
                for (java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(bytes); b.hasRemaining(); ) {
                    ch.write(b);
                }
            });
        } catch (IOException e) {
            throw new TandemException("could not write the results to " + file + " (" + e.getMessage() + ").", e);
        }
    }

    private static void deleteQuietly(Path dir) {
        try {
            deleteTree(dir);
        } catch (IOException | RuntimeException e) {
            // the JVM is exiting; nothing more to do
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
