package dev.tandem.decoding.rag;

import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.weights.SafetensorsFile;
import dev.tandem.transformer.weights.SafetensorsWriter;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Collectors;

/**
 * REFRAG's projection of an encoder's chunk vector into the decoder's input-embedding space, y = W·x + b, with W of
 * shape [decoder hidden, encoder dimension] and b (optional) of shape [decoder hidden], as PyTorch's
 * {@code nn.Linear(encoder dimension, decoder hidden)} stores them. The file is a safetensors file holding the tensors
 * {@code weight} and, optionally, {@code bias} (f32, bf16 or f16) and nothing else. Tandem ships no trained
 * projection: one trained elsewhere (with its encoder and decoder) is what makes compressed chunks mean something.
 *
 * <p>Each {@code y_h} is summed in double in index order — {@code b_h}, then {@code W[h,d]·x_d} for d = 0, 1, … — and
 * rounded to float once. Every product of two floats is exact in double, so a row depends only on W, b and x: not on
 * the machine, the batch or whether the compiler fuses a multiply and an add.
 */
public final class ChunkProjection {
    /** The tensor names of a projection file. */
    public static final String WEIGHT = "weight", BIAS = "bias";

    private final float[] weight; // [hidden][dimension], row-major
    private final float[] bias;   // [hidden], or null
    private final int hidden;
    private final int dimension;
    private final String source;

    private ChunkProjection(float[] weight, float[] bias, int hidden, int dimension, String source) {
        this.weight = weight;
        this.bias = bias;
        this.hidden = hidden;
        this.dimension = dimension;
        this.source = source;
    }

    /** A projection from {@code weight} ([decoder hidden][encoder dimension]) and {@code bias} ([decoder hidden], or null). */
    public static ChunkProjection of(float[][] weight, float[] bias) {
        int hidden = weight.length;
        if (hidden == 0 || weight[0].length == 0) {
            throw new IllegalArgumentException("a projection needs at least one row and one column");
        }
        int dimension = weight[0].length;
        float[] w = new float[hidden * dimension];
        for (int h = 0; h < hidden; h++) {
            if (weight[h].length != dimension) {
                throw new IllegalArgumentException("projection row " + h + " has " + weight[h].length + " columns, row 0 has " + dimension);
            }
            System.arraycopy(weight[h], 0, w, h * dimension, dimension);
        }
        if (bias != null && bias.length != hidden) {
            throw new IllegalArgumentException("a bias of " + bias.length + " values for a projection of " + hidden + " rows");
        }
        return new ChunkProjection(w, bias == null ? null : bias.clone(), hidden, dimension, "in memory");
    }

    /**
     * Reads the projection in {@code file} and checks it against the encoder's vectors ({@code encoderDimension}
     * wide) and the decoder's hidden size.
     *
     * @throws TandemException in one sentence naming the file, the tensor and the shapes when the file is missing or
     *                         malformed, a tensor is missing, has another shape or dtype, holds a NaN or an
     *                         infinity, or the file holds other tensors
     */
    public static ChunkProjection read(Path file, int encoderDimension, int decoderHidden) {
        if (!Files.exists(file)) {
            throw new TandemException("projection file not found: " + file + ".");
        }
        String name = file.getFileName().toString();
        String expected = "[" + decoderHidden + ", " + encoderDimension + "] (the decoder's hidden size, config.json hidden_size, "
                + "by the encoder's dimension)";
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            if (!f.contains(WEIGHT)) {
                throw new TandemException(name + " has no tensor \"" + WEIGHT + "\", the projection's " + expected + " matrix (it holds "
                        + (f.names().isEmpty() ? "no tensors" : quoted(f.names())) + ").");
            }
            for (String other : f.names()) {
                if (!other.equals(WEIGHT) && !other.equals(BIAS)) {
                    throw new TandemException(name + " holds the tensor \"" + other + "\", but a projection file holds only \""
                            + WEIGHT + "\" " + expected + " and optionally \"" + BIAS + "\" [" + decoderHidden + "]: a linear projection.");
                }
            }
            Tensor w = f.tensor(WEIGHT);
            if (!Arrays.equals(w.shape(), new long[] {decoderHidden, encoderDimension})) {
                boolean transposed = Arrays.equals(w.shape(), new long[] {encoderDimension, decoderHidden});
                throw new TandemException(name + ": tensor \"" + WEIGHT + "\" has the shape " + Arrays.toString(w.shape())
                        + ", but the projection must be " + expected + (transposed ? "; it looks transposed" : "") + ".");
            }
            float[] weight = finite(name, WEIGHT, w.toFloatArray());
            float[] bias = null;
            if (f.contains(BIAS)) {
                Tensor b = f.tensor(BIAS);
                if (!Arrays.equals(b.shape(), new long[] {decoderHidden})) {
                    throw new TandemException(name + ": tensor \"" + BIAS + "\" has the shape " + Arrays.toString(b.shape())
                            + ", but the projection's bias must be [" + decoderHidden + "] (the decoder's hidden size, config.json hidden_size).");
                }
                bias = finite(name, BIAS, b.toFloatArray());
            }
            return new ChunkProjection(weight, bias, decoderHidden, encoderDimension, file.toString());
        }
    }

    private static String quoted(java.util.Collection<String> names) {
        return names.stream().sorted().map(n -> "\"" + n + "\"").collect(Collectors.joining(", "));
    }

    private static float[] finite(String file, String tensor, float[] values) {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                throw new TandemException(file + ": tensor \"" + tensor + "\" holds " + (Float.isNaN(values[i]) ? "a NaN" : "an infinity")
                        + " at element " + i + ", so the projection is corrupt.");
            }
        }
        return values;
    }

    /** Writes this projection to {@code file} as f32 {@code weight} (and {@code bias}), the format {@link #read} reads. */
    public void write(Path file) {
        Map<String, SafetensorsWriter.Spec> tensors = new LinkedHashMap<>();
        tensors.put(WEIGHT, SafetensorsWriter.f32(new long[] {hidden, dimension}, weight));
        if (bias != null) {
            tensors.put(BIAS, SafetensorsWriter.f32(new long[] {hidden}, bias));
        }
        SafetensorsWriter.write(file, tensors);
    }

    /** The width of the encoder vectors it takes. */
    public int encoderDimension() {
        return dimension;
    }

    /** The width of the rows it makes: the decoder's hidden size. */
    public int decoderHidden() {
        return hidden;
    }

    /** Where it was read from (its file, or "in memory"), for messages. */
    public String source() {
        return source;
    }

    /** {@code W·vector + b}, each output summed in double in index order and rounded once. */
    public float[] project(float[] vector) {
        Objects.requireNonNull(vector, "vector");
        if (vector.length != dimension) {
            throw new IllegalArgumentException("a vector of width " + vector.length + " for a projection of " + dimension + " columns");
        }
        float[] out = new float[hidden];
        for (int h = 0; h < hidden; h++) {
            double s = bias == null ? 0 : bias[h];
            int row = h * dimension;
            for (int d = 0; d < dimension; d++) {
                s += (double) weight[row + d] * vector[d];
            }
            out[h] = (float) s;
        }
        return out;
    }
}
