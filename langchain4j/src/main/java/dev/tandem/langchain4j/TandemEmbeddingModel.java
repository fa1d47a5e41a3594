package dev.tandem.langchain4j;

import dev.langchain4j.data.embedding.Embedding;
import dev.langchain4j.data.segment.TextSegment;
import dev.langchain4j.model.ModelProvider;
import dev.langchain4j.model.embedding.EmbeddingModel;
import dev.langchain4j.model.output.Response;
import dev.langchain4j.model.output.TokenUsage;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * langchain4j's {@link EmbeddingModel} on Tandem's BERT encoder, in-process: the embedded all-MiniLM-L6-v2 by default
 * (no files needed) or a Hugging Face BERT directory. Its vectors are {@link Embedder}'s, bit for bit (mean-pooled and
 * unit length by default, as sentence-transformers makes them); concurrent calls share encoder passes. Thread-safe;
 * close it when it opened its own encoder.
 */
public final class TandemEmbeddingModel implements EmbeddingModel, AutoCloseable {
    private final Embedder embedder;
    private final boolean owns;
    private final String modelName;

    private TandemEmbeddingModel(Embedder embedder, boolean owns, String modelName) {
        this.embedder = embedder;
        this.owns = owns;
        this.modelName = modelName;
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * One embedding per segment, in order; the token usage counts the encoder's input tokens.
     *
     * @throws dev.tandem.runtime.TandemException if a text is longer than the encoder's positions (without truncation)
     */
    @Override
    public Response<List<Embedding>> embedAll(List<TextSegment> segments) {
        List<String> texts = new ArrayList<>(segments.size());
        for (TextSegment s : segments) {
            texts.add(Objects.requireNonNull(s, "segment").text());
        }
        Embedder.Embeddings embedded = embedder.embedAllCounted(texts);
        List<Embedding> out = new ArrayList<>(embedded.vectors().size());
        for (float[] v : embedded.vectors()) {
            out.add(Embedding.from(v));
        }
        return Response.from(out, new TokenUsage(embedded.inputTokens()));
    }

    @Override
    public int dimension() {
        return embedder.dimension();
    }

    @Override
    public String modelName() {
        return modelName;
    }

    @Override
    public ModelProvider provider() {
        return ModelProvider.OTHER;
    }

    /** The embedder this model answers with. */
    public Embedder embedder() {
        return embedder;
    }

    /** Closes the encoder when this model opened it. */
    @Override
    public void close() {
        if (owns) {
            embedder.close();
        }
    }

    public static final class Builder {
        private Embedder embedder;
        private Path modelPath;
        private int threads;
        private BertEncoder.Pooling pooling = BertEncoder.Pooling.MEAN;
        private boolean normalize = true;
        private boolean truncate;
        private int maxBatch = 32;
        private String modelName;

        private Builder() {
        }

        /** A shared embedder (the caller closes it); then the other options do not apply. */
        public Builder embedder(Embedder embedder) {
            this.embedder = embedder;
            return this;
        }

        /** A Hugging Face BERT encoder directory; null, the default: the embedded all-MiniLM-L6-v2 (384 dimensions). */
        public Builder modelPath(Path modelPath) {
            this.modelPath = modelPath;
            return this;
        }

        /** CPU threads (0, the default: every processor). */
        public Builder threads(int threads) {
            this.threads = threads;
            return this;
        }

        /** Mean (the default) or CLS pooling. */
        public Builder pooling(BertEncoder.Pooling pooling) {
            this.pooling = Objects.requireNonNull(pooling, "pooling");
            return this;
        }

        /** Unit-length vectors (the default: true). */
        public Builder normalize(boolean normalize) {
            this.normalize = normalize;
            return this;
        }

        /** Cut texts longer than the encoder's positions (the default: such a text is an error). */
        public Builder truncate(boolean truncate) {
            this.truncate = truncate;
            return this;
        }

        /** Texts of concurrent callers encoded together in one pass (default 32). */
        public Builder maxBatch(int maxBatch) {
            this.maxBatch = maxBatch;
            return this;
        }

        public Builder modelName(String modelName) {
            this.modelName = modelName;
            return this;
        }

        /** @throws dev.tandem.runtime.TandemException if the encoder cannot be opened */
        public TandemEmbeddingModel build() {
            if (threads < 0) {
                throw new IllegalArgumentException("threads must be 0 (every processor) or more, but was " + threads + ".");
            }
            String name = modelName;
            if (embedder != null) {
                return new TandemEmbeddingModel(embedder, false, name != null ? name : "embedder");
            }
            if (name == null) {
                name = modelPath == null ? Encoders.MINILM : nameOf(modelPath);
            }
            BertEncoder encoder = Encoders.open(modelPath, null, threads);
            try {
                return new TandemEmbeddingModel(Embedder.batching(encoder, maxBatch, pooling, normalize, truncate), true, name);
            } catch (RuntimeException | Error e) {
                encoder.close();
                throw e;
            }
        }

        private static String nameOf(Path p) {
            Path n = p.toAbsolutePath().normalize().getFileName();
            return n == null ? p.toString() : n.toString();
        }
    }
}
