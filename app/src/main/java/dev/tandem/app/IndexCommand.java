package dev.tandem.app;

import dev.tandem.decoding.rag.Chunker;
import dev.tandem.decoding.rag.PassageIndex;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Encoders;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code tandem index}: cuts a corpus into chunks of N decoder tokens, embeds each chunk with a BERT-family encoder and
 * writes a {@link PassageIndex} for {@code generate --passages}. The corpus is read and cut before the encoder is
 * loaded, so bad input fails at once; the index file is written whole or not at all. One summary line on stdout.
 */
@Command(name = "index", mixinStandardHelpOptions = true,
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        description = "Build a passage index for retrieval: cut a corpus into chunks of N decoder tokens and embed each with a "
                + "BERT-family encoder.")
public final class IndexCommand implements Callable<Integer> {
    /** Corpora of fewer chunks are embedded without a progress bar: they take a few seconds. */
    static final int PROGRESS_FROM = 256;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--corpus", required = true, paramLabel = "FILE",
            description = "UTF-8 text; documents are separated by blank lines.")
    Path corpus;

    @Option(names = "--chunk", required = true, paramLabel = "N",
            description = "Decoder tokens per chunk, 1 to " + Chunker.MAX_CHUNK_TOKENS + " (a document's last chunk may be shorter).")
    int chunk;

    @Option(names = "--out", required = true, paramLabel = "INDEX", description = "The index file to write (replaced whole).")
    Path out;

    @Option(names = "--model", required = true, paramLabel = "DIR|FILE.gguf",
            description = "The decoder whose tokenizer cuts the chunks: the model that will generate with the passages.")
    Path model;

    @Option(names = "--encoder", paramLabel = "DIR",
            description = "A Hugging Face BERT encoder directory; default: the embedded " + Encoders.MINILM + " (384 dimensions).")
    Path encoder;

    @Option(names = "--truncate", description = "Cut a chunk longer than the encoder's positions (default: such a chunk is an error).")
    boolean truncate;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0", description = "CPU threads (default: all).")
    int threads;

    @Override
    public Integer call() {
        long start = System.nanoTime();
        if (chunk < 1 || chunk > Chunker.MAX_CHUNK_TOKENS) {
            throw new UsageException("--chunk must be from 1 to " + Chunker.MAX_CHUNK_TOKENS + " decoder tokens, but was " + chunk + ".");
        }
        if (threads < 0) {
            throw new UsageException("--threads must be 0 (all processors) or more, but was " + threads + ".");
        }
        if (sameFile(corpus, out)) {
            throw new UsageException("--out names the corpus file itself; give another file for the index.");
        }
        PrintWriter err = spec.commandLine().getErr();
        threads = Main.capThreads(threads, "--threads", err);
        PassageIndex.Corpus chunks = PassageIndex.chunk(corpus, model, chunk);
        PassageIndex index;
        try (BertEncoder enc = Encoders.open(encoder, null, threads);
             ProgressBar bar = new ProgressBar("index " + corpus.getFileName(), ProgressBar.Unit.COUNT, err)) {
            index = PassageIndex.build(chunks, enc, truncate, chunks.chunks().size() >= PROGRESS_FROM ? bar : Progress.NONE);
        }
        index.write(out);
        PrintWriter stdout = spec.commandLine().getOut();
        stdout.println(String.format(Locale.ROOT, "indexed %d chunks (at most %d tokens of %s each) of %d documents with the encoder "
                        + "%s (%d dimensions) into %s in %.1f s", index.size(), index.chunkTokens(), index.decoder().name(),
                index.documents(), index.encoder().name(), index.dimension(), out, (System.nanoTime() - start) / 1e9));
        stdout.flush();
        return 0;
    }

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.exists(a) && Files.exists(b) && Files.isSameFile(a, b);
        } catch (IOException e) {
            throw new TandemException("cannot compare " + a + " with " + b + " (" + IoErrors.reason(e) + ").", e);
        }
    }
}
