package dev.tandem.bench;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Choosing one token from one row of logits, single-threaded: {@link Sampler#argmax} (greedy) and
 * {@link Sampler#sample} at temperature 0.8 with the {@code filter} knobs on (top-k 50, top-p 0.95),
 * no repetition penalty. Vocabularies of 32000 (Llama 2, TinyLlama) and 128256 (Llama 3). The logits
 * are Gaussian with standard deviation 3, so the nucleus is a few hundred tokens rather than the whole
 * vocabulary. {@code sample} copies the logits, applies the filters (top-k and top-p sort), and draws
 * with the counter-based RNG at a new position each call. Scores are tokens per second.
 * Not final: JMH subclasses benchmark states.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 2, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
public class SamplerBenchmark {

    /** One row of logits; its parameter applies to both benchmarks. Not final: JMH subclasses it. */
    @State(Scope.Thread)
    public static class Logits {
        /** Vocabulary size. */
        @Param({"32000", "128256"})
        public int vocab;

        float[] logits;

        @Setup(Level.Trial)
        public void setUp() {
            SplittableRandom random = new SplittableRandom(1);
            logits = new float[vocab];
            for (int i = 0; i < vocab; i++) {
                logits[i] = (float) (3 * random.nextGaussian());
            }
        }
    }

    /** The sampling knobs of {@code sample} only. Not final: JMH subclasses it. */
    @State(Scope.Thread)
    public static class Knobs {
        /** Which filters follow temperature 0.8: none, top-k 50, top-p 0.95, or both. */
        @Param({"temperature", "top-k", "top-p", "top-k+top-p"})
        public String filter;

        SamplingParams params;
        int[] context;
        long position;

        @Setup(Level.Trial)
        public void setUp() {
            SamplingParams p = new SamplingParams(0.8f, 0, 1f, 0f, 1f, 42L);
            params = switch (filter) {
                case "temperature" -> p;
                case "top-k" -> p.withTopK(50);
                case "top-p" -> p.withTopP(0.95f);
                case "top-k+top-p" -> p.withTopK(50).withTopP(0.95f);
                default -> throw new IllegalArgumentException("unknown filter " + filter);
            };
            context = new int[0];
        }
    }

    @Benchmark
    public int argmax(Logits l) {
        return Sampler.argmax(l.logits);
    }

    @Benchmark
    public int sample(Logits l, Knobs k) {
        return Sampler.sample(l.logits, k.params, k.context, 0, 7L, k.position++ & 0xFFFF_FFFFL);
    }
}
