package dev.tandem.app;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.synth.PaddedCheckpoints;
import dev.tandem.transformer.synth.SyntheticCheckpoints;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code tandem synth}: writes a random-weight checkpoint in the Hugging Face layout, of a known shape or
 * of any {@code config.json}, for benchmarks; with {@code --pad}, a trained checkpoint zero-padded to that
 * shape instead, which computes the same function.
 */
@Command(name = "synth", mixinStandardHelpOptions = true,
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        description = {"Write a random-weight checkpoint (config.json, generation_config.json, model.safetensors,"
                + " tokenizer.json) that `tandem generate --model DIR` loads like a downloaded one.",
                "Weights depend only on --seed; the directory appears only when complete.",
                "With --pad SRC, grow the trained checkpoint SRC instead: its weights zero-padded to the shape's"
                        + " hidden size, MLP width, layer count and KV heads, so it computes the same function"
                        + " (same logits, same greedy text) as a larger, slower model. SRC's vocabulary, head_dim,"
                        + " RoPE, context, special ids, tokenizer and generation_config.json are kept."})
public final class SynthCommand implements Callable<Integer> {

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--shape", paramLabel = "NAME",
            description = {"A published model's shape, one of:", "${COMPLETION-CANDIDATES}"},
            completionCandidates = Shapes.class)
    String shape;

    @Option(names = "--config", paramLabel = "FILE", description = "A Hugging Face config.json to take the shape from.")
    Path config;

    @Option(names = "--pad", paramLabel = "SRC",
            description = "A trained checkpoint to grow to the shape instead of random weights (--seed is then refused).")
    Path pad;

    @Option(names = "--dtype", paramLabel = "f32|bf16", defaultValue = "bf16",
            description = "Weight type: f32 or bf16 (default: ${DEFAULT-VALUE}; f16 works too).")
    String dtype;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "0",
            description = "Seed of the random weights (default: 0; not with --pad).")
    long seed;

    @Option(names = "--force", description = "Replace DIR if it exists (only once the new checkpoint is complete).")
    boolean force;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "The directory to create.")
    Path out;

    /** The shape names, for picocli's help. */
    static final class Shapes implements Iterable<String> {
        @Override
        public java.util.Iterator<String> iterator() {
            return SyntheticCheckpoints.shapeNames().iterator();
        }
    }

    /** The {@code --dtype} of synthetic weights: f32, bf16 or f16 (also by their torch names). */
    static DType weightDType(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "f32", "float32" -> DType.F32;
            case "bf16", "bfloat16" -> DType.BF16;
            case "f16", "float16" -> DType.F16;
            default -> throw new UsageException("--dtype must be f32, bf16 or f16, but was \"" + name + "\".");
        };
    }

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String known = String.join(", ", SyntheticCheckpoints.shapeNames());
        if (shape != null && config != null) {
            throw usage("--shape and --config cannot be used together; give one of them.");
        }
        if (shape == null && config == null) {
            throw usage("give --shape NAME (one of " + known + ") or --config FILE.");
        }
        DType type;
        try {
            type = weightDType(dtype);
        } catch (IllegalArgumentException e) {
            throw usage(e.getMessage());
        }
        if (pad != null) {
            return pad(stdout, err, type);
        }
        SyntheticCheckpoints.Spec s = shape != null
                ? SyntheticCheckpoints.Spec.ofShape(shape, type, seed)
                : SyntheticCheckpoints.Spec.ofConfigFile(config, type, seed);

        String label = "synth " + (shape != null ? shape : config.getFileName()) + " " + type.lowerName();
        long t0 = System.nanoTime();
        SyntheticCheckpoints.Result r;
        try (ProgressBar bar = new ProgressBar(label, ProgressBar.Unit.BYTES, err)) {
            r = SyntheticCheckpoints.write(s, out, force, bar);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        stdout.printf(Locale.ROOT, "wrote %s: %s, seed %d, %,d parameters in %d tensors, %s in %.1f s%n",
                r.directory(), s.label() + " " + type.lowerName(), seed, r.parameterCount(), r.tensorCount(),
                Progress.formatBytes(r.bytes()), seconds);
        stdout.flush();
        return 0;
    }

    /** {@code --pad}: the source grown to the shape. */
    private int pad(PrintWriter stdout, PrintWriter err, DType type) {
        if (spec.commandLine().getParseResult().hasMatchedOption("--seed")) {
            throw usage("--seed has no meaning with --pad (the weights come from " + pad + "); leave it out.");
        }
        PaddedCheckpoints.Spec s = shape != null
                ? PaddedCheckpoints.Spec.ofShape(pad, shape, type)
                : PaddedCheckpoints.Spec.ofConfigFile(pad, config, type);
        String label = "synth " + pad.toAbsolutePath().normalize().getFileName() + " padded to "
                + (shape != null ? shape : config.getFileName()) + " " + type.lowerName();
        long t0 = System.nanoTime();
        SyntheticCheckpoints.Result r;
        try (ProgressBar bar = new ProgressBar(label, ProgressBar.Unit.BYTES, err)) {
            r = PaddedCheckpoints.write(s, out, force, bar);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        stdout.printf(Locale.ROOT, "wrote %s: %s, %,d parameters in %d tensors, %s in %.1f s%n",
                r.directory(), s, r.parameterCount(), r.tensorCount(), Progress.formatBytes(r.bytes()), seconds);
        stdout.flush();
        return 0;
    }

    private CommandLine.ParameterException usage(String sentence) {
        return new CommandLine.ParameterException(spec.commandLine(), sentence);
    }
}
