package dev.tandem.decoding.speculative;

import dev.tandem.decoding.ChiSquareFit;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A coarse end-to-end check of the sampled draft-and-verify loop (the exact statistical tests of the
 * verifiers are in {@code StatisticalVerifierTest}): the first two tokens of bard-s→bard-l speculative
 * sampling (γ = 1, so the paths accept-then-bonus and reject-then-residual-then-plain-step both occur)
 * and of prompt lookup and PEARL follow bard-l's exact joint distribution, computed from its logits. Fixed seed,
 * one stream per run; 3000 runs detect a gross error (a shifted row, q from the wrong step), not a
 * total-variation distance of 0.01.
 */
class SpeculativeSamplingEndToEndTest {
    static final long SEED = 0x5EEDL;
    static final int RUNS = 3000;
    static final double ALPHA = 1e-4;

    @Test
    void firstTwoSampledTokensFollowTheTargetsJointDistribution() {
        try (LanguageModel target = ModelLoader.load(TestModels.model("bard-l"));
             LanguageModel small = ModelLoader.load(TestModels.model("bard-s"),
                     ModelLoader.Options.defaults().withBackend(target.backend()))) {
            SamplingParams sampling = SamplingParams.greedy().withTemperature(1.0f).withTopK(4).withSeed(SEED);
            String prompt = "KING HENRY VI:\nWhat";
            double[] joint = jointOfFirstTwo(target, target.tokenizer().encode(prompt), sampling);
            // PEARL with γ = 1 and 3 tokens wanted: round 1 checks d1 and, open-ended, the draft's next token
            // against the target's second row, so the first two tokens go through the post-verify path.
            for (DecodingStrategy s : List.of(new SpeculativeDecoding(target, small, 1), new PromptLookupDecoding(target, 2, 1),
                    new PearlDecoding(target, small, 1))) {
                int maxTokens = s instanceof PearlDecoding ? 3 : 2;
                double pValue = firstTwoPValue(s, GenerationRequest.of(prompt).withMaxTokens(maxTokens).withSampling(sampling),
                        joint, RUNS);
                System.out.printf("%s end-to-end (seed %d, %d runs): chi-square p-value %.4g%n", s.name(), SEED, RUNS, pValue);
                assertTrue(pValue > ALPHA, s.name() + ": p-value " + pValue);
            }
        }
    }

    /** The exact joint distribution of the first two tokens (t1, t2), at index t1 · vocab + t2, under plain sampling of {@code target}. */
    static double[] jointOfFirstTwo(LanguageModel target, int[] ids, SamplingParams sampling) {
        int vocab = target.config().vocabSize();
        double[] joint = new double[vocab * vocab];
        double[] p1 = distribution(target, ids, sampling);
        for (int a = 0; a < vocab; a++) {
            if (p1[a] > 0) {
                int[] next = java.util.Arrays.copyOf(ids, ids.length + 1);
                next[ids.length] = a;
                double[] p2 = distribution(target, next, sampling);
                for (int b = 0; b < vocab; b++) {
                    joint[a * vocab + b] = p1[a] * p2[b];
                }
            }
        }
        return joint;
    }

    /**
     * The chi-square p-value of {@code runs} generations of {@code request} by {@code s} (EOS off, run i on stream i)
     * against {@code joint}, the distribution of their first two tokens.
     */
    static double firstTwoPValue(DecodingStrategy s, GenerationRequest request, double[] joint, int runs) {
        int vocab = (int) Math.round(Math.sqrt(joint.length));
        long[] observed = new long[joint.length];
        for (int run = 0; run < runs; run++) {
            GenerationResult r = s.generate(request.withEosTokenIds(List.of()).withStreamId(run));
            observed[r.generatedIds()[0] * vocab + r.generatedIds()[1]]++;
        }
        return ChiSquareFit.pValue(joint, observed);
    }

    private static double[] distribution(LanguageModel model, int[] context, SamplingParams sampling) {
        try (KvSequence kv = model.newSequence()) {
            float[] logits = model.forward(Batch.of(Batch.Entry.continuation(kv, context))).lastLogits(0);
            return Sampler.distribution(logits, sampling, context, context.length);
        }
    }

}
