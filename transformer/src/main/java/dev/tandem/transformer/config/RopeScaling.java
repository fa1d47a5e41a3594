package dev.tandem.transformer.config;

import java.util.Objects;
import java.util.Set;

/**
 * A rotary-embedding frequency scaling from {@code config.json} ({@code rope_scaling}, or the scaling
 * keys of the newer {@code rope_parameters} object). Tandem supports two Hugging Face rope types:
 * <ul>
 *   <li>{@code "linear"} — every inverse frequency divided by {@link #factor()} (the other fields are
 *       0, unused);</li>
 *   <li>{@code "llama3"} — Llama 3.1's wavelength-banded interpolation, using all fields.</li>
 * </ul>
 * A config with no scaling, or rope type {@code "default"}, has {@code ropeScaling() == null}. The
 * formula is written once, on {@link ModelConfig#ropeInverseFrequencies()}.
 *
 * @param type                          "linear" or "llama3"
 * @param factor                        the scaling factor (&gt; 0)
 * @param lowFreqFactor                 llama3 {@code low_freq_factor}
 * @param highFreqFactor                llama3 {@code high_freq_factor} (&gt; lowFreqFactor)
 * @param originalMaxPositionEmbeddings llama3 {@code original_max_position_embeddings}
 */
public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor,
                          int originalMaxPositionEmbeddings) {

    public static final String LINEAR = "linear";
    public static final String LLAMA3 = "llama3";
    /** The rope types Tandem implements, as the config names them ("default" means no scaling). */
    public static final Set<String> SUPPORTED_TYPES = Set.of("default", LINEAR, LLAMA3);
    static final String SUPPORTED_TEXT = "default, linear, llama3";

    public RopeScaling {
        Objects.requireNonNull(type, "type");
        if (!type.equals(LINEAR) && !type.equals(LLAMA3)) {
            throw new IllegalArgumentException("unsupported rope scaling type " + type);
        }
        if (!(factor > 0) || !Double.isFinite(factor)) {
            throw new IllegalArgumentException("rope scaling factor must be positive and finite: " + factor);
        }
        if (type.equals(LLAMA3) && (!(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor)
                || !Double.isFinite(highFreqFactor) || originalMaxPositionEmbeddings <= 0)) {
            throw new IllegalArgumentException("invalid llama3 rope scaling: low_freq_factor " + lowFreqFactor
                    + ", high_freq_factor " + highFreqFactor + ", original_max_position_embeddings "
                    + originalMaxPositionEmbeddings);
        }
    }

    public static RopeScaling linear(double factor) {
        return new RopeScaling(LINEAR, factor, 0, 0, 0);
    }

    public static RopeScaling llama3(double factor, double lowFreqFactor, double highFreqFactor,
                                     int originalMaxPositionEmbeddings) {
        return new RopeScaling(LLAMA3, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings);
    }

    /**
     * Scales default inverse frequencies ({@code 1 / θ^(2i/d)}, float32) as Hugging Face's
     * {@code _compute_linear_scaling_rope_parameters} / {@code _compute_llama3_parameters} do, each
     * operation rounded to float32 in torch's order (see {@link ModelConfig#ropeInverseFrequencies()}).
     * Returns a new array.
     */
    public float[] apply(float[] invFreq) {
        float[] out = new float[invFreq.length];
        float f = (float) factor;
        if (type.equals(LINEAR)) {
            // inv_freq /= factor  (float32 tensor / python float: the scalar is cast to float32)
            for (int i = 0; i < out.length; i++) {
                out[i] = invFreq[i] / f;
            }
            return out;
        }
        double oldContext = originalMaxPositionEmbeddings;
        // python floats; compared against the float32 wavelen tensor, so cast to float32 (type promotion)
        float lowFreqWavelen = (float) (oldContext / lowFreqFactor);
        float highFreqWavelen = (float) (oldContext / highFreqFactor);
        float twoPi = (float) (2 * Math.PI);
        float oldContextF = (float) oldContext;
        float lowF = (float) lowFreqFactor;
        float bandF = (float) (highFreqFactor - lowFreqFactor);
        for (int i = 0; i < out.length; i++) {
            float inv = invFreq[i];
            // wavelen = 2 * math.pi / inv_freq  → Tensor.__rtruediv__ = inv_freq.reciprocal() * (2π)
            float wavelen = (1.0f / inv) * twoPi;
            // inv_freq_llama = where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
            float llama = wavelen > lowFreqWavelen ? inv / f : inv;
            boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            if (medium) {
                // smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
                float smooth = ((1.0f / wavelen) * oldContextF - lowF) / bandF;
                // smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
                llama = (1.0f - smooth) * llama / f + smooth * llama;
            }
            out[i] = llama;
        }
        return out;
    }

    /**
     * Parses a rope section ({@code rope_scaling} or {@code rope_parameters}, whose name the fields
     * carry into messages); null when it asks for no scaling.
     */
    static RopeScaling parse(JsonFields rope) {
        String typeKey = rope.hasValue("rope_type") ? "rope_type" : rope.hasValue("type") ? "type" : null;
        String type = typeKey == null ? "default" : rope.stringOrNull(typeKey);
        if (type.equals("default")) {
            return null;
        }
        if (!type.equals(LINEAR) && !type.equals(LLAMA3)) {
            throw rope.error(typeKey, "\"" + type + "\" is not supported (supported: " + SUPPORTED_TEXT + ")");
        }
        String ctx = " (required for rope type " + type + ")";
        double factor = rope.requiredDouble("factor", ctx);
        if (!JsonFields.positiveFinite(factor)) {
            throw rope.error("factor", "must be positive, got " + factor);
        }
        if (type.equals(LINEAR)) {
            return linear(factor);
        }
        double low = rope.requiredDouble("low_freq_factor", ctx);
        double high = rope.requiredDouble("high_freq_factor", ctx);
        int original = rope.requiredInt("original_max_position_embeddings", ctx);
        if (!JsonFields.positiveFinite(low)) {
            throw rope.error("low_freq_factor", "must be positive, got " + low);
        }
        if (!Double.isFinite(high) || !(high > low)) {
            throw rope.error("high_freq_factor", "must be greater than " + rope.name("low_freq_factor")
                    + " (" + low + "), got " + high);
        }
        if (original <= 0) {
            throw rope.error("original_max_position_embeddings", "must be positive, got " + original);
        }
        return llama3(factor, low, high, original);
    }
}
