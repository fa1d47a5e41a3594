package dev.tandem.decoding.diffusion;

import dev.tandem.runtime.LogitSummary;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The unmasking rules on constructed logits: which positions each commits, in which order, and how many. */
class UnmaskingTest {

    /**
     * Three positions' logits over four tokens: A = log(0.6, 0.39, 0.005, 0.005) (confident, close second),
     * B = log(0.5, 1/6, 1/6, 1/6) (less confident, a wide margin), C = flat.
     */
    private static final float[][] ROWS = {
            {(float) Math.log(0.6), (float) Math.log(0.39), (float) Math.log(0.005), (float) Math.log(0.005)},
            {(float) Math.log(0.5), (float) Math.log(1 / 6.0), (float) Math.log(1 / 6.0), (float) Math.log(1 / 6.0)},
            {0f, 0f, 0f, 0f},
    };
    private static final int[] POSITIONS = {7, 8, 9};

    private static double[] scores(UnmaskRule rule) {
        double[] s = new double[ROWS.length];
        for (int i = 0; i < ROWS.length; i++) {
            s[i] = Unmasking.score(rule, LogitSummary.of(ROWS[i], 2), 1, 0, POSITIONS[i], 0);
        }
        return s;
    }

    private static double[] softmax(float[] row) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : row) {
            max = Math.max(max, l);
        }
        double[] p = new double[row.length];
        double z = 0;
        for (int i = 0; i < row.length; i++) {
            p[i] = Math.exp(row[i] - max);
            z += p[i];
        }
        for (int i = 0; i < row.length; i++) {
            p[i] /= z;
        }
        return p;
    }

    @Test
    void eachRuleScoresWhatItsPaperDefines() {
        for (int i = 0; i < ROWS.length; i++) {
            double[] p = softmax(ROWS[i]);
            double[] sorted = Arrays.stream(p).map(x -> -x).sorted().map(x -> -x).toArray();
            double entropy = 0;
            for (double x : p) {
                entropy -= x * Math.log(x);
            }
            assertEquals(sorted[0], scores(UnmaskRule.LOW_CONFIDENCE)[i], 1e-12, "confidence");
            assertEquals(-entropy, scores(UnmaskRule.ENTROPY)[i], 1e-12, "entropy");
            assertEquals(sorted[0] - sorted[1], scores(UnmaskRule.MARGIN)[i], 1e-12, "margin");
        }
        // The orders: confidence puts A first, margin B (its wide margin), and entropy A (the most peaked), the flat C last.
        assertArrayEquals(new int[] {0, 1, 2}, Unmasking.choose(scores(UnmaskRule.LOW_CONFIDENCE), POSITIONS, 3, 0));
        assertArrayEquals(new int[] {1, 0, 2}, Unmasking.choose(scores(UnmaskRule.MARGIN), POSITIONS, 3, 0));
        assertArrayEquals(new int[] {0, 1, 2}, Unmasking.choose(scores(UnmaskRule.ENTROPY), POSITIONS, 3, 0));
        assertArrayEquals(new int[] {1}, Unmasking.choose(scores(UnmaskRule.MARGIN), POSITIONS, 1, 0));
        double[] random = scores(UnmaskRule.RANDOM);
        for (double r : random) {
            assertTrue(r >= 0 && r < 1);
        }
        assertEquals(random[1], Unmasking.score(UnmaskRule.RANDOM, LogitSummary.of(ROWS[0], 2), 1, 0, 8, 0),
                "a random score depends on the position and step, not on the logits");
    }

    @Test
    void tiesGoToTheLowestPositionAndCountsAreKept() {
        double[] scores = {0.5, 0.7, 0.5, 0.7};
        int[] positions = {10, 11, 12, 13};
        assertArrayEquals(new int[] {1, 3, 0, 2}, Unmasking.choose(scores, positions, 4, 0));
        assertArrayEquals(new int[] {1, 3}, Unmasking.choose(scores, positions, 2, 0));
        assertArrayEquals(new int[] {1, 3, 0, 2}, Unmasking.choose(scores, positions, 9, 0), "never more than the candidates");
    }

    @Test
    void thresholdCommitsEveryPositionAboveTauAndAtLeastOne() {
        double[] scores = {0.3, 0.05, 0.25, 0.1};
        int[] positions = {20, 21, 22, 23};
        assertArrayEquals(new int[] {0, 2}, Unmasking.choose(scores, positions, 0, 0.2));
        assertArrayEquals(new int[] {0}, Unmasking.choose(scores, positions, 0, 0.5), "none above τ: the single most confident");
        assertArrayEquals(new int[] {0}, Unmasking.choose(new double[] {0.3, 0.3}, new int[] {4, 9}, 0, 0.3), "exceeds, not reaches");
        assertEquals(0, Unmasking.choose(new double[0], new int[0], 0, 0.2).length);
    }

    /**
     * CCD on constructed histories (u = 1, so V = 5; window 2): a first pass has no history and falls back to the most
     * confident; at the second, the positions whose token held and that stayed in the top V are all committed; a
     * token that changed, or a position that left the top V, starts its streak again.
     */
    @Test
    void ccdCommitsThePositionsWhoseTokenHeldAndFallsBackToTheMostConfident() {
        int[] positions = {10, 11, 12, 13, 14, 15, 16};
        int[] lastToken = new int[20];
        int[] streak = new int[20];
        double[] scores = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3}; // position 16 is outside the top 5
        int[] tokens = {1, 2, 3, 4, 5, 6, 7};
        assertArrayEquals(new int[] {0}, Unmasking.chooseConsistent(scores, positions, tokens, 1, 2, lastToken, streak),
                "no history yet: the single most confident");
        assertEquals(1, streak[10]);
        assertEquals(0, streak[16], "outside the top V");
        // Second pass (position 10 was committed, so it is no longer a candidate): 12 changed its token, 15 its rank.
        int[] positions2 = {11, 12, 13, 14, 15, 16};
        double[] scores2 = {0.8, 0.7, 0.6, 0.5, 0.1, 0.45};
        int[] tokens2 = {2, 9, 4, 5, 6, 7};
        int[] chosen = Unmasking.chooseConsistent(scores2, positions2, tokens2, 1, 2, lastToken, streak);
        assertArrayEquals(new int[] {0, 2, 3}, chosen, "11, 13 and 14 held their tokens in the top V; 12 changed; 16 was not in it");
        assertEquals(1, streak[12], "a changed token starts again");
        assertEquals(1, streak[16], "entered the top V now");
        assertEquals(0, streak[15], "left the top V");
        // A window of 3 needs a third pass: the same history falls back to the most confident.
        int[] last3 = new int[20];
        int[] streak3 = new int[20];
        Unmasking.chooseConsistent(scores, positions, tokens, 1, 3, last3, streak3);
        assertArrayEquals(new int[] {0}, Unmasking.chooseConsistent(scores2, positions2, tokens2, 1, 3, last3, streak3));
        // u = 2 with only one consistent position: the two most confident instead.
        int[] last4 = new int[20];
        int[] streak4 = new int[20];
        Unmasking.chooseConsistent(new double[] {0.9, 0.8}, new int[] {1, 2}, new int[] {5, 6}, 2, 2, last4, streak4);
        assertArrayEquals(new int[] {0, 1},
                Unmasking.chooseConsistent(new double[] {0.9, 0.8, 0.1}, new int[] {1, 2, 3}, new int[] {5, 8, 1}, 2, 2, last4, streak4));
    }

    @Test
    void llaDasSpreadOfABlocksPositionsOverItsSteps() {
        assertArrayEquals(new int[] {1, 1, 1, 1}, Unmasking.transferCounts(4, 4));
        assertArrayEquals(new int[] {3, 3, 2}, Unmasking.transferCounts(8, 3));
        assertArrayEquals(new int[] {1, 1, 0, 0}, Unmasking.transferCounts(2, 4));
        assertEquals(32, Arrays.stream(Unmasking.transferCounts(32, 5)).sum());
    }

    @Test
    void badParametersAreOneSentenceEach() {
        assertEquals("--block-length must divide --gen-length 32, but was 5.",
                assertThrows(IllegalArgumentException.class, () -> DiffusionParams.lowConfidence(32).withBlockLength(5)).getMessage());
        assertEquals("--threshold must be in (0, 1], but was 1.5.",
                assertThrows(IllegalArgumentException.class, () -> DiffusionParams.lowConfidence(32).withThreshold(1.5)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> DiffusionParams.lowConfidence(32).withThreshold(0));
        assertEquals("--steps must be a multiple of the 4 blocks (--gen-length 32 / --block-length 8), but was 6.",
                assertThrows(IllegalArgumentException.class,
                        () -> DiffusionParams.lowConfidence(32).withBlockLength(8).withSteps(6)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> DiffusionParams.lowConfidence(0));
        assertEquals("--ccd-window must be at least 1, but was 0.",
                assertThrows(IllegalArgumentException.class, () -> DiffusionParams.lowConfidence(32).withCcdWindow(0)).getMessage());
        assertEquals("--unmask must be one of low-confidence, random, entropy, margin, threshold, ccd, but was \"best\".",
                assertThrows(IllegalArgumentException.class, () -> UnmaskRule.of("best")).getMessage());
    }
}
