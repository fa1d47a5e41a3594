package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.JsonLines;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Encoders;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code tandem embed}: JSON lines in (one string per line on stdin), one JSON array of floats out per line, in order.
 * Lines go through the encoder {@code --batch} at a time (each text's vector does not depend on its batch). The first
 * bad line stops the run with a sentence naming it; the lines before it have been answered.
 */
@Command(name = "embed", mixinStandardHelpOptions = true,
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        description = "Embed JSON strings read one per line on stdin with a BERT-family encoder; one JSON array of floats out per line.")
public final class EmbedCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final InputStream in;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR",
            description = "A Hugging Face BERT encoder directory (config.json with \"model_type\": \"bert\", safetensors, tokenizer.json); "
                    + "default: the embedded all-MiniLM-L6-v2 (384 dimensions).")
    Path model;

    @Option(names = "--truncate", description = "Cut inputs longer than the encoder's positions (default: such an input is an error).")
    boolean truncate;

    @Option(names = "--pooling", paramLabel = "mean|cls", defaultValue = "mean",
            description = "How token states become one vector: mean (default, sentence-transformers') or cls (the first token's).")
    String pooling;

    @Option(names = "--raw", description = "Leave the vectors as pooled (default: scaled to unit length, as sentence-transformers does).")
    boolean raw;

    @Option(names = "--batch", paramLabel = "N", defaultValue = "32", description = "Lines embedded together in one pass (default: 32).")
    int batch;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0", description = "CPU threads (default: all).")
    int threads;

    EmbedCommand(InputStream in) {
        this.in = in;
    }

    public EmbedCommand() {
        this(System.in);
    }

    @Override
    public Integer call() throws IOException {
        BertEncoder.Pooling p = switch (pooling.toLowerCase(Locale.ROOT)) {
            case "mean" -> BertEncoder.Pooling.MEAN;
            case "cls" -> BertEncoder.Pooling.CLS;
            default -> throw new UsageException("--pooling must be mean or cls, but was \"" + pooling + "\".");
        };
        if (batch < 1) {
            throw new UsageException("--batch must be at least 1, but was " + batch + ".");
        }
        if (threads < 0) {
            throw new UsageException("--threads must be 0 (all processors) or more, but was " + threads + ".");
        }
        threads = Main.capThreads(threads, "--threads", spec.commandLine().getErr());
        PrintWriter out = spec.commandLine().getOut();
        try (BertEncoder encoder = Encoders.open(model, null, threads)) {
            List<int[]> pending = new ArrayList<>();
            try {
                new JsonLines(in, "stdin").forEach("give one JSON string per line", (lineNumber, where, value) -> {
                    pending.add(tokenize(encoder, value, where));
                    if (pending.size() == batch) {
                        flush(encoder, pending, p, out);
                    }
                });
            } catch (RuntimeException e) {
                flush(encoder, pending, p, out); // answer the good lines before the bad one, then stop
                throw e;
            }
            flush(encoder, pending, p, out);
        }
        return 0;
    }

    private int[] tokenize(BertEncoder encoder, JsonNode value, String where) {
        if (!value.isTextual()) {
            throw new IllegalArgumentException(where + " should be a JSON string to embed, got " + value.getNodeType().name()
                    .toLowerCase(Locale.ROOT) + ".");
        }
        try {
            return encoder.tokenize(value.textValue(), truncate);
        } catch (TandemException e) {
            throw new TandemException(where + ": " + e.getMessage() + (truncate ? "" : " (--truncate cuts it)"), e);
        }
    }

    private void flush(BertEncoder encoder, List<int[]> pending, BertEncoder.Pooling p, PrintWriter out) throws IOException {
        if (pending.isEmpty()) {
            return;
        }
        for (float[] v : encoder.embedIds(pending, p, !raw)) {
            out.println(JSON.writeValueAsString(v));
        }
        out.flush();
        pending.clear();
    }
}
