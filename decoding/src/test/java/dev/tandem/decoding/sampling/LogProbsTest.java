package dev.tandem.decoding.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class LogProbsTest {

    private static final float NEG_INF = Float.NEGATIVE_INFINITY;

    @Test
    void logSoftmaxMatchesHandComputedValues() {
        float[] lp = LogProbs.logSoftmax(new float[] {0f, 0f, NEG_INF});
        assertEquals((float) Math.log(0.5), lp[0]);
        assertEquals((float) Math.log(0.5), lp[1]);
        assertEquals(NEG_INF, lp[2]);
    }

    @Test
    void logSoftmaxIsStableForLargeLogits() {
        float[] lp = LogProbs.logSoftmax(new float[] {1000f, 999f, -1000f});
        double lse = Math.log1p(Math.exp(-1) + Math.exp(-2000));
        assertEquals(-lse, lp[0], 1e-6);
        assertEquals(-1 - lse, lp[1], 1e-6);
        assertEquals(-2000 - lse, lp[2], 1e-3);
    }

    @Test
    void topSortsByLogprobThenTokenId() {
        float[] logits = {1f, 3f, 2f, 3f, NEG_INF, 2f};
        float[] lp = LogProbs.logSoftmax(logits);
        assertEquals(
                List.of(new TokenLogprob(1, lp[1]), new TokenLogprob(3, lp[3]), new TokenLogprob(2, lp[2]),
                        new TokenLogprob(5, lp[5])),
                LogProbs.top(logits, 4));
    }

    @Test
    void topCapsAtVocabularySizeAndRanksRemovedTokensLast() {
        List<TokenLogprob> all = LogProbs.top(new float[] {NEG_INF, 0f, NEG_INF}, 10);
        assertEquals(List.of(new TokenLogprob(1, 0f), new TokenLogprob(0, NEG_INF), new TokenLogprob(2, NEG_INF)), all);
        assertEquals(List.of(), LogProbs.top(new float[] {1f}, 0));
    }

    @Test
    void invalidInputsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> LogProbs.logSoftmax(new float[] {NEG_INF}));
        assertThrows(IllegalArgumentException.class, () -> LogProbs.logSoftmax(new float[] {Float.NaN, 1f}));
        assertThrows(IllegalArgumentException.class, () -> LogProbs.top(new float[] {1f}, -1));
    }
}
