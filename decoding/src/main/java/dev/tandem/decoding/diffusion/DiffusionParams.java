package dev.tandem.decoding.diffusion;

/**
 * How a masked-diffusion model fills its canvas.
 *
 * @param genLength   canvas positions after the prompt (≥ 1)
 * @param blockLength positions per semi-autoregressive block (≥ 1, divides {@code genLength}); blocks are filled
 *                    left to right, each only once the one before is full
 * @param steps       forward passes over the whole canvas for the rules that commit a fixed number per step
 *                    (a multiple of the number of blocks; each block gets steps / blocks of them and commits its
 *                    masked positions spread over them as LLaDA does); {@link UnmaskRule#THRESHOLD} ignores it
 * @param rule        which masked positions a step commits
 * @param threshold   τ of {@link UnmaskRule#THRESHOLD}, in (0, 1]; ignored by the other rules
 * @param cache       what a step reuses from its block's first pass ({@link DiffusionCache#NONE}: exact)
 * @param ccdWindow   {@link UnmaskRule#CCD}'s window: passes a position's token must have held (≥ 1; ignored by the
 *                    other rules)
 */
public record DiffusionParams(int genLength, int blockLength, int steps, UnmaskRule rule, double threshold,
                              DiffusionCache cache, int ccdWindow) {

    /** {@link UnmaskRule#CCD}'s window when none is given: the current pass and the one before, as the authors' code compares. */
    public static final int DEFAULT_CCD_WINDOW = 2;

    /** The canvas length when nothing else says: {@value}. */
    public static final int DEFAULT_GEN_LENGTH = 64;

    public DiffusionParams {
        if (genLength < 1) {
            throw new IllegalArgumentException("--gen-length must be at least 1, but was " + genLength + ".");
        }
        if (blockLength < 1 || genLength % blockLength != 0) {
            throw new IllegalArgumentException("--block-length must divide --gen-length " + genLength + ", but was " + blockLength + ".");
        }
        if (rule == null) {
            throw new IllegalArgumentException("an unmasking rule is needed (--unmask " + UnmaskRule.names() + ").");
        }
        int blocks = genLength / blockLength;
        if (rule != UnmaskRule.THRESHOLD && (steps < blocks || steps % blocks != 0)) {
            throw new IllegalArgumentException("--steps must be a multiple of the " + blocks + " blocks (--gen-length " + genLength
                    + " / --block-length " + blockLength + "), but was " + steps + ".");
        }
        if (rule == UnmaskRule.THRESHOLD && !(threshold > 0 && threshold <= 1)) {
            throw new IllegalArgumentException("--threshold must be in (0, 1], but was " + threshold + ".");
        }
        if (cache == null) {
            cache = DiffusionCache.NONE;
        }
        if (rule == UnmaskRule.CCD && ccdWindow < 1) {
            throw new IllegalArgumentException("--ccd-window must be at least 1, but was " + ccdWindow + ".");
        }
    }

    /** Without a cache. */
    public DiffusionParams(int genLength, int blockLength, int steps, UnmaskRule rule, double threshold) {
        this(genLength, blockLength, steps, rule, threshold, DiffusionCache.NONE);
    }

    /** With the default CCD window. */
    public DiffusionParams(int genLength, int blockLength, int steps, UnmaskRule rule, double threshold, DiffusionCache cache) {
        this(genLength, blockLength, steps, rule, threshold, cache, DEFAULT_CCD_WINDOW);
    }

    /** Low-confidence remasking over one block of {@code genLength}, one position per step. */
    public static DiffusionParams lowConfidence(int genLength) {
        return new DiffusionParams(genLength, genLength, genLength, UnmaskRule.LOW_CONFIDENCE, 1);
    }

    public DiffusionParams withBlockLength(int b) {
        return new DiffusionParams(genLength, b, steps, rule, threshold, cache, ccdWindow);
    }

    public DiffusionParams withSteps(int s) {
        return new DiffusionParams(genLength, blockLength, s, rule, threshold, cache, ccdWindow);
    }

    public DiffusionParams withRule(UnmaskRule r) {
        return new DiffusionParams(genLength, blockLength, steps, r, threshold, cache, ccdWindow);
    }

    /** {@link UnmaskRule#THRESHOLD} at τ. */
    public DiffusionParams withThreshold(double tau) {
        return new DiffusionParams(genLength, blockLength, steps, UnmaskRule.THRESHOLD, tau, cache, ccdWindow);
    }

    /** With {@code c} as the cache. */
    public DiffusionParams withCache(DiffusionCache c) {
        return new DiffusionParams(genLength, blockLength, steps, rule, threshold, c, ccdWindow);
    }

    /** {@link UnmaskRule#CCD} with a window of {@code w} passes. */
    public DiffusionParams withCcdWindow(int w) {
        return new DiffusionParams(genLength, blockLength, steps, UnmaskRule.CCD, threshold, cache, w);
    }

    /** Number of blocks. */
    public int blocks() {
        return genLength / blockLength;
    }
}
