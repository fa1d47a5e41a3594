package dev.tandem.transformer;

import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.weights.WeightStore;

import java.nio.file.Path;

/**
 * A checkpoint's final RMSNorm and LM head read straight from its safetensors and applied on the host in double: the
 * reference a layer's logits (its hidden state through the final norm and the head) are checked against, here and in
 * the decoding module's layer-contrast tests.
 */
public final class HostHead implements AutoCloseable {
    private final WeightStore weights;
    private final double eps;
    private final int hidden;
    private final int vocab;
    private final double[] norm;
    private final Tensor head;

    private HostHead(Path dir) {
        ModelConfig config = ModelConfig.load(dir);
        this.weights = WeightStore.open(dir);
        this.eps = config.rmsNormEps();
        this.hidden = config.hiddenSize();
        this.vocab = config.vocabSize();
        Tensor w = weights.get("model.norm.weight", hidden);
        this.norm = new double[hidden];
        for (int j = 0; j < hidden; j++) {
            norm[j] = w.getFloat(j);
        }
        this.head = weights.get(config.tieWordEmbeddings() ? "model.embed_tokens.weight" : "lm_head.weight", vocab, hidden);
    }

    /** The final norm and head of the model in {@code dir}. */
    public static HostHead of(Path dir) {
        return new HostHead(dir);
    }

    /** lm_head(rmsnorm(h) · w), in double: h / sqrt(mean(h²) + eps) · w, then one dot product per token. */
    public double[] logits(float[] h) {
        if (h.length != hidden) {
            throw new IllegalArgumentException("a hidden state of width " + h.length + ", not " + hidden);
        }
        double squares = 0;
        for (float v : h) {
            squares += (double) v * v;
        }
        double scale = 1 / Math.sqrt(squares / hidden + eps);
        double[] normed = new double[hidden];
        for (int j = 0; j < hidden; j++) {
            normed[j] = h[j] * scale * norm[j];
        }
        double[] out = new double[vocab];
        for (int t = 0; t < vocab; t++) {
            double dot = 0;
            long row = (long) t * hidden;
            for (int j = 0; j < hidden; j++) {
                dot += normed[j] * head.getFloat(row + j);
            }
            out[t] = dot;
        }
        return out;
    }

    @Override
    public void close() {
        weights.close();
    }
}
