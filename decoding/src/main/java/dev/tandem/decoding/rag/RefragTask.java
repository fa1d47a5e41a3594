package dev.tandem.decoding.rag;

import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingTask;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;

import java.util.List;

/**
 * One {@link RefragDecoding} request as a {@link DecodingTask}: plain decoding after the prompt's rows (the task of
 * {@link dev.tandem.decoding.Generator#task(dev.tandem.decoding.GenerationRequest, int[], float[][])}), reported as
 * {@code refrag} with the prompt's text ids — prefix, every passage's tokens, question — as its prompt ids; usage
 * counts decoder positions (a compressed chunk is one).
 */
final class RefragTask implements DecodingTask {
    private final DecodingTask plain;
    private final int[] text;

    RefragTask(DecodingTask plain, int[] text) {
        this.plain = plain;
        this.text = text.clone();
    }

    @Override
    public String method() {
        return "refrag";
    }

    @Override
    public List<LanguageModel> models() {
        return plain.models();
    }

    @Override
    public int blocksNeeded(LanguageModel model) {
        return plain.blocksNeeded(model);
    }

    @Override
    public void start(KvSource kv) {
        plain.start(kv);
    }

    @Override
    public void beginStep() {
        plain.beginStep();
    }

    @Override
    public List<Batch.Entry> next(LanguageModel model, PrefillBudget prefill) {
        return plain.next(model, prefill);
    }

    @Override
    public void advance(LanguageModel model, ForwardResult result, long nanos) {
        plain.advance(model, result, nanos);
    }

    @Override
    public List<TokenEvent> endStep() {
        return plain.endStep();
    }

    @Override
    public boolean finished() {
        return plain.finished();
    }

    @Override
    public GenerationResult result() {
        GenerationResult r = plain.result();
        DecodeStats s = r.decodeStats();
        DecodeStats mine = new DecodeStats(method(), s.generatedTokens(), s.targetForwardPasses(), s.draftForwardPasses(),
                s.verifications(), s.draftedTokens(), s.acceptedTokens(), s.acceptedHistogram(), s.draftMillis(),
                s.verifyMillis(), s.otherMillis());
        return new GenerationResult(text.clone(), r.generatedIds(), r.text(), r.finishReason(), r.usage(), r.stats(),
                r.logprobs(), mine, r.hypotheses());
    }

    @Override
    public void end(FinishReason reason) {
        plain.end(reason);
    }

    @Override
    public void abandon() {
        plain.abandon();
    }
}
