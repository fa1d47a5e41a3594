package dev.tandem.decoding.speculative;

import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.DeviceSampling;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.cuda.CudaBackend;
import dev.tandem.runtime.cuda.CudaTestBackends;
import dev.tandem.runtime.rng.CounterRng;
import dev.tandem.runtime.rng.RngPurpose;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Chain verification on the CUDA backend ({@link DeviceSampling#verifyChain}) reaches {@link ChainVerifier}'s
 * verdict on the same logits for a temperature alone — the accepted count and the next token — with a draft
 * model's q and with a deterministic drafter, closed and open-ended, on the host build of the kernels in every
 * build and on a GPU where present. The two add their sums in different orders, so a verdict may differ where
 * a draw falls within rounding of p/q or of a cumulative boundary: never in this test's draws (the seed is
 * printed; -Dtandem.test.seed replays).
 */
class CudaVerificationTest {
    private static long seed;
    private static final CudaTestBackends.PerClass BACKENDS = new CudaTestBackends.PerClass();

    @BeforeAll
    static void chooseTheSeed() {
        seed = Long.getLong("tandem.test.seed", new SplittableRandom().nextLong());
        System.out.println("CudaVerificationTest seed " + seed + " (replay with -Dtandem.test.seed=" + seed + ")");
    }

    @AfterAll
    static void close() {
        BACKENDS.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void theDeviceReachesChainVerifiersVerdict(String which) {
        CudaBackend b = BACKENDS.get(which);
        SplittableRandom rnd = new SplittableRandom(seed);
        int verdicts = 0;
        int rejections = 0;
        for (int trial = 0; trial < 120; trial++) {
            int vocab = trial % 3 == 0 ? 2048 : 50 + rnd.nextInt(300);
            int n = rnd.nextInt(9);
            boolean withDraft = rnd.nextBoolean();
            boolean openEnded = n > 0 && trial % 4 == 3;
            float temperature = trial % 2 == 0 ? 1f : 0.6f;
            double noise = rnd.nextDouble() * 3;
            int rowsP = openEnded ? n : n + 1;
            float[][] target = new float[rowsP][vocab];
            float[][] draft = new float[n][vocab];
            for (int i = 0; i < rowsP; i++) {
                for (int t = 0; t < vocab; t++) {
                    target[i][t] = (float) (rnd.nextGaussian() * 2);
                }
            }
            for (int i = 0; i < n; i++) {
                for (int t = 0; t < vocab; t++) {
                    draft[i][t] = target[i][t] + (float) (rnd.nextGaussian() * noise);
                }
            }
            long drawSeed = rnd.nextLong();
            long stream = rnd.nextLong(1 << 20);
            long position = rnd.nextLong(100_000);
            SamplingParams sp = SamplingParams.greedy().withTemperature(temperature).withSeed(drawSeed);
            int[] tokens = new int[n];
            double[][] q = withDraft ? new double[n][] : null;
            for (int i = 0; i < n; i++) {
                if (withDraft) {
                    q[i] = Sampler.distribution(draft[i], sp, new int[0], 0);
                    tokens[i] = Sampler.inverseCdf(q[i], 1.0, CounterRng.uniform(drawSeed, stream, position + i, RngPurpose.DRAFT, 0));
                } else {
                    tokens[i] = rnd.nextInt(4) == 0 ? rnd.nextInt(vocab) : Sampler.argmax(target[i]);
                }
            }
            double[][] p = new double[rowsP][];
            for (int i = 0; i < rowsP; i++) {
                p[i] = Sampler.distribution(target[i], sp, new int[0], 0);
            }
            Verdict expected = openEnded ? ChainVerifier.sampleOpenEnded(tokens, p, q, drawSeed, stream, position)
                    : ChainVerifier.sample(tokens, p, q, drawSeed, stream, position);
            Tensor dTarget = b.allocate(rowsP, vocab);
            b.writeRows(target, dTarget, 0);
            Tensor dDraft = null;
            if (withDraft && n > 0) {
                dDraft = b.allocate(n, vocab);
                b.writeRows(draft, dDraft, 0);
            }
            DeviceSampling.ChainOutcome got = b.verifyChain(dTarget, dDraft, tokens, temperature, drawSeed, stream, position, openEnded);
            String where = "trial " + trial + " (n " + n + ", vocab " + vocab + ", draft " + withDraft + ", open " + openEnded
                    + ", seed " + seed + ")";
            if (expected == null) {
                assertEquals(new DeviceSampling.ChainOutcome(n, -1), got, where);
            } else {
                assertEquals(new DeviceSampling.ChainOutcome(expected.accepted(), expected.next()), got, where);
                verdicts++;
                if (expected.accepted() < n) {
                    rejections++;
                }
            }
            b.free(dTarget);
            if (dDraft != null) {
                b.free(dDraft);
            }
        }
        assertTrue(rejections > 10 && rejections < verdicts, "rejections " + rejections + " of " + verdicts + ": both outcomes seen");
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void badInputsAreRefusedInOneSentence(String which) {
        CudaBackend b = BACKENDS.get(which);
        Tensor target = b.allocate(3, 4);
        Tensor draft = b.allocate(2, 4);
        b.writeRows(new float[][] {{1, 2, 3, 4}, {1, 2, 3, 4}, {1, Float.NaN, 3, 4}}, target, 0);
        b.writeRows(new float[][] {{1, 2, 3, 4}, {1, 2, Float.NEGATIVE_INFINITY, 4}}, draft, 0);
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class,
                () -> b.verifyChain(target, draft, new int[] {0, 1}, 1f, 1, 0, 0, false));
        assertEquals("logits must be finite or -Infinity, but target row 2 holds NaN or +Infinity.", nan.getMessage());
        b.writeRows(new float[][] {{1, 2, 3, 4}}, target, 2);
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class,
                () -> b.verifyChain(target, draft, new int[] {0, 2}, 1f, 1, 0, 0, false));
        assertEquals("q[1][2] = 0, but draft[1] = 2 was drawn from q[1], so it must be > 0.", zero.getMessage());
        assertThrows(IllegalArgumentException.class, () -> b.verifyChain(target, draft, new int[] {0, 4}, 1f, 1, 0, 0, false));
        assertThrows(IllegalArgumentException.class, () -> b.verifyChain(target, draft, new int[] {0}, 1f, 1, 0, 0, false));
        assertThrows(IllegalArgumentException.class, () -> b.verifyChain(target, draft, new int[] {0, 1}, 0f, 1, 0, 0, false));
        assertThrows(IllegalArgumentException.class,
                () -> b.verifyChain(target, draft, new int[] {0, 1}, 1f, 1, 0, (1L << 32) - 2, false));
        Tensor long64 = b.allocate(65, 4);
        assertThrows(IllegalArgumentException.class, () -> b.verifyChain(long64, null, new int[64], 1f, 1, 0, 0, false));
        b.free(long64);
        b.free(target);
        b.free(draft);
    }
}
