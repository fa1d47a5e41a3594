package dev.tandem.decoding.speculative;

import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.mix.LogitMixDecoding;
import dev.tandem.transformer.LanguageModel;

import java.util.Objects;

/**
 * A logit-mixing method ({@link LogitMixDecoding}: contrastive decoding, proxy tuning, CAD, guidance) verifying a
 * draft model's chains: each round the draft proposes γ tokens, every view scores them in one pass of its model, the
 * views' rows are mixed position by position, and {@link ChainVerifier} verifies the chain against the mixed rows as
 * speculative decoding verifies a single target's logits. The mixed distribution at a position depends only on the
 * tokens before it, which is all speculative sampling needs, so greedy output equals the method's own greedy output
 * token for token and sampled output follows the method's distribution exactly (the draft changes only the speed).
 */
public final class SpeculativeMixDecoding implements DecodingStrategy {
    private final LogitMixDecoding target;
    private final LanguageModel draft;
    private final int draftLength;

    /**
     * @param target      the mixing method whose distribution the output follows
     * @param draft       the draft model; it must share the first view's tokenizer
     * @param draftLength γ, at least 1
     */
    public SpeculativeMixDecoding(LogitMixDecoding target, LanguageModel draft, int draftLength) {
        if (draftLength < 1) {
            throw new IllegalArgumentException("the draft length must be at least 1, but was " + draftLength + ".");
        }
        this.target = Objects.requireNonNull(target, "target");
        for (LogitMixDecoding.View v : target.views()) {
            if (v.rows() != 1 || v.layers()[0] != LogitMixDecoding.View.FINAL) {
                throw new IllegalArgumentException(target.name() + " mixes lower layers' logits, which a verification pass does not "
                        + "compute at every drafted row yet; it takes no --draft.");
            }
        }
        if (target.hasStateRow()) {
            throw new IllegalArgumentException(target.name() + " does not verify a draft's chains: its retrieved row comes from the "
                    + "model's state at each position, which a chain's verification does not make; decode it without --draft.");
        }
        SpeculativeDecoding.requireSameVocabulary(target.views().getFirst().model(), draft);
        this.draft = draft;
        this.draftLength = draftLength;
    }

    /** The method's name: the mixing method's ({@code contrastive}, {@code cad}, ...). */
    @Override
    public String name() {
        return target.name();
    }

    public int draftLength() {
        return draftLength;
    }

    @Override
    public DecodingTask task(GenerationRequest request) {
        return new MixedChainTask(target, new DrafterModel(draft, 0), draftLength, request);
    }
}
