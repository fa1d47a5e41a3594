package dev.tandem.decoding.sampling;

/**
 * How a token is chosen from logits, with Hugging Face {@code generate} meanings. Each knob has an "off"
 * value: {@code topK = 0}, {@code topP = 1}, {@code minP = 0}, {@code repetitionPenalty = 1}; and
 * {@code temperature = 0} means greedy (argmax after the repetition penalty, the other knobs unused).
 *
 * @param temperature logits are divided by it; finite, ≥ 0 (0 = greedy)
 * @param topK keep the k highest logits (and every logit tied with the k-th); ≥ 0 (0 = off)
 * @param topP keep the smallest most-probable set with mass ≥ topP; in (0, 1] (1 = off)
 * @param minP keep tokens with probability ≥ minP × the top probability; in [0, 1) (0 = off)
 * @param repetitionPenalty divides positive / multiplies negative logits of context tokens; finite, &gt; 0 (1 = off)
 * @param seed the key of the counter-based RNG ({@link dev.tandem.runtime.rng.CounterRng})
 */
public record SamplingParams(
        float temperature, int topK, float topP, float minP, float repetitionPenalty, long seed) {

    public SamplingParams {
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException(
                    "temperature must be a finite number >= 0 (0 means greedy), but was " + temperature + ".");
        }
        if (topK < 0) {
            throw new IllegalArgumentException("topK must be >= 0 (0 turns it off), but was " + topK + ".");
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1] (1 turns it off), but was " + topP + ".");
        }
        if (!(minP >= 0 && minP < 1)) {
            throw new IllegalArgumentException("minP must be in [0, 1) (0 turns it off), but was " + minP + ".");
        }
        if (!(repetitionPenalty > 0) || Float.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetitionPenalty must be a finite number > 0 (1 turns it off), but was "
                    + repetitionPenalty + ".");
        }
    }

    /** Argmax decoding with every knob off. */
    public static SamplingParams greedy() {
        return new SamplingParams(0f, 0, 1f, 0f, 1f, 0L);
    }

    public boolean isGreedy() {
        return temperature == 0f;
    }

    /**
     * True when sampling sets a temperature and nothing else (no top-k, top-p, min-p or repetition penalty): the
     * distribution is the softmax of l / T, which a device backend draws from and verifies with where the logits are.
     */
    public boolean temperatureOnly() {
        return !isGreedy() && topK == 0 && topP == 1f && minP == 0f && repetitionPenalty == 1f;
    }

    public SamplingParams withTemperature(float temperature) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
    }

    public SamplingParams withTopK(int topK) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
    }

    public SamplingParams withTopP(float topP) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
    }

    public SamplingParams withMinP(float minP) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
    }

    public SamplingParams withRepetitionPenalty(float repetitionPenalty) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
    }

    public SamplingParams withSeed(long seed) {
        return new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, seed);
    }
}
