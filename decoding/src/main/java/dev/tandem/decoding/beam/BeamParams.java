package dev.tandem.decoding.beam;

/**
 * How beam search ({@code --method beam}) or diverse beam search ({@code --method diverse-beam}) runs.
 *
 * @param beams         B, hypotheses kept alive per step (≥ 1); B = 1 is greedy decoding
 * @param groups        G, groups the beams are split into (≥ 1, divides B); each group of B / G beams is a
 *                      beam search of its own, penalised for the tokens earlier groups chose at the same step
 * @param diversity     λ, subtracted from a token's score once for each beam of an earlier group that chose it
 *                      at this step (Hamming diversity; finite, ≥ 0; unused when G = 1)
 * @param lengthPenalty L, a finished hypothesis scores (sum of log-probabilities) / (generated tokens)^L: L &gt; 0
 *                      favours longer hypotheses, L &lt; 0 shorter ones (finite)
 * @param nBest         N, the best hypotheses returned (1 to B)
 */
public record BeamParams(int beams, int groups, double diversity, double lengthPenalty, int nBest) {

    /** L when none is given, as in Hugging Face: {@value}. */
    public static final double DEFAULT_LENGTH_PENALTY = 1.0;

    /** λ of diverse beam search when none is given: {@value} (the paper finds 0.2 to 0.8 works). */
    public static final double DEFAULT_DIVERSITY = 0.5;

    public BeamParams {
        if (beams < 1) {
            throw new IllegalArgumentException("--beams must be at least 1, but was " + beams + ".");
        }
        if (groups < 1) {
            throw new IllegalArgumentException("--groups must be at least 1, but was " + groups + ".");
        }
        if (beams % groups != 0) {
            throw new IllegalArgumentException("--groups " + groups + " does not divide --beams " + beams + ".");
        }
        if (!(diversity >= 0) || Double.isInfinite(diversity)) {
            throw new IllegalArgumentException("--diversity must be a finite number >= 0, but was " + diversity + ".");
        }
        if (!Double.isFinite(lengthPenalty)) {
            throw new IllegalArgumentException("--length-penalty must be a finite number, but was " + lengthPenalty + ".");
        }
        if (nBest < 1 || nBest > beams) {
            throw new IllegalArgumentException("--n-best must be between 1 and --beams " + beams + ", but was " + nBest + ".");
        }
    }

    /** Beam search with B beams, length penalty 1, the best hypothesis only. */
    public static BeamParams beam(int beams) {
        return new BeamParams(beams, 1, 0, DEFAULT_LENGTH_PENALTY, 1);
    }

    /** Diverse beam search: B beams in G groups, λ = {@value #DEFAULT_DIVERSITY}, length penalty 1, the best hypothesis only. */
    public static BeamParams diverse(int beams, int groups) {
        return new BeamParams(beams, groups, DEFAULT_DIVERSITY, DEFAULT_LENGTH_PENALTY, 1);
    }

    public BeamParams withGroups(int g) {
        return new BeamParams(beams, g, diversity, lengthPenalty, nBest);
    }

    public BeamParams withDiversity(double lambda) {
        return new BeamParams(beams, groups, lambda, lengthPenalty, nBest);
    }

    public BeamParams withLengthPenalty(double l) {
        return new BeamParams(beams, groups, diversity, l, nBest);
    }

    public BeamParams withNBest(int n) {
        return new BeamParams(beams, groups, diversity, lengthPenalty, n);
    }

    /** B / G: the beams of one group. */
    public int groupSize() {
        return beams / groups;
    }

    /** The method's name: {@code beam}, or {@code diverse-beam} when there are several groups. */
    public String method() {
        return groups > 1 ? BeamSearch.DIVERSE_NAME : BeamSearch.NAME;
    }
}
