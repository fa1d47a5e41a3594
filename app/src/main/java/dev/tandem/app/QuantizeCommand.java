package dev.tandem.app;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.weights.GgufCheckpoint;
import dev.tandem.transformer.weights.GgufExport;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code tandem quantize}: a Hugging Face model directory written as one GGUF file that Tandem and llama.cpp both
 * load, its matrices in f32, f16, bf16 or one of llama.cpp's block formats (every matrix in the chosen type, like
 * llama-quantize's {@code --pure}); norms stay f32.
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        description = {"Write a model directory (config.json, safetensors, tokenizer.json) as one GGUF file, for"
                + " `tandem generate --model FILE.gguf` and for llama.cpp.",
                "Every matrix is written in --type (the embedding and the output head included); 1-D tensors (norms,"
                        + " biases) stay f32. A matrix whose rows are not whole blocks of the type falls back to q8_0"
                        + " (from q4_k or q6_k) or else to f16, and the command says which. The file appears only when"
                        + " complete."})
public final class QuantizeCommand implements Callable<Integer> {

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "The Hugging Face model directory to write.")
    Path model;

    @Option(names = "--type", required = true, paramLabel = "TYPE",
            description = "f32, f16, bf16, q8_0, q4_0, q4_k or q6_k.")
    String type;

    @Option(names = "--out", required = true, paramLabel = "FILE.gguf", description = "The GGUF file to write (replaced if it exists).")
    Path out;

    /** The {@code --type} names. */
    static DType fileType(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "f32" -> DType.F32;
            case "f16" -> DType.F16;
            case "bf16" -> DType.BF16;
            case "q8_0" -> DType.Q8_0;
            case "q4_0" -> DType.Q4_0;
            case "q4_k" -> DType.Q4_K;
            case "q6_k" -> DType.Q6_K;
            default -> throw new UsageException("--type must be f32, f16, bf16, q8_0, q4_0, q4_k or q6_k, but was \"" + name + "\".");
        };
    }

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        DType wanted = fileType(type);
        if (GgufCheckpoint.isGgufPath(model)) {
            throw new UsageException("--model takes a Hugging Face model directory; " + model + " is already a GGUF file.");
        }
        if (!GgufCheckpoint.isGgufPath(out)) {
            throw new UsageException("--out must name a .gguf file, but was " + out + ".");
        }
        if (out.getParent() != null && !Files.isDirectory(out.getParent())) {
            throw new TandemException("cannot write " + out + ": the directory " + out.getParent() + " does not exist.");
        }
        List<String> fallbacks = Collections.synchronizedList(new ArrayList<>());
        GgufExport.Options options = GgufExport.Options.ofType(wanted).withTypes((name, shape) -> {
            DType t = GgufExport.typeFor(wanted, shape[1]);
            if (t != wanted) {
                fallbacks.add(name + " (rows of " + shape[1] + ") at " + t.lowerName());
            }
            return t;
        });
        String label = "quantize " + model.toAbsolutePath().normalize().getFileName() + " to " + wanted.lowerName();
        long t0 = System.nanoTime();
        GgufExport.Result r;
        try (ProgressBar bar = new ProgressBar(label, ProgressBar.Unit.BYTES, err)) {
            r = GgufExport.export(model, out, options, bar);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        if (!fallbacks.isEmpty()) {
            stdout.printf(Locale.ROOT, "%d of %d tensors are not whole blocks of %s: %s%n", fallbacks.size(), r.tensors(),
                    wanted.lowerName(), String.join(", ", fallbacks));
        }
        stdout.printf(Locale.ROOT, "wrote %s: %d tensors, %s, %s in %.1f s%n", r.file(), r.tensors(),
                wanted.lowerName(), Progress.formatBytes(r.bytes()), seconds);
        stdout.flush();
        return 0;
    }
}
