package dev.tandem.decoding.speculative;

import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.DeviceSampling;
import dev.tandem.runtime.Placement;
import dev.tandem.runtime.Tensor;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;

/**
 * Sampled chain verification where the logits are: on a device backend ({@link DeviceSampling}), the
 * verification pass keeps the target's rows of logits in device memory, the draft model keeps the row each draft
 * token was drawn from beside them (and draws the token there), and {@link DeviceSampling#verifyChain} decides,
 * so a round sends back the draft's ids and the verdict, not γ + 1 rows of logits and γ distributions.
 *
 * <p>Only where the device computes what the host would: a temperature alone (no top-k, top-p, min-p or
 * repetition penalty), no logprobs, a draft model without a threshold on the target's own backend or a
 * deterministic drafter, at most {@link DeviceSampling#MAX_VERIFY_DRAFT} draft tokens. The verdict is
 * {@link ChainVerifier#sample}'s except where a draw falls within rounding of a boundary (the device adds its
 * sums in another order). Holds two tensors of the target's backend until {@link #close}.
 */
final class DeviceVerification implements AutoCloseable {
    private final Backend backend;
    private final DeviceSampling sampling;
    private final Tensor targetRows; // [γ + 1, vocab]: the verification pass's logits
    private final Tensor draftRows;  // [γ, vocab]: the logits each draft token was drawn from, or null (deterministic)
    private final SamplingParams params;
    private final long stream;
    private boolean closed;

    private DeviceVerification(Backend backend, int draftLength, int vocab, boolean withDraft, GenerationRequest request) {
        this.backend = backend;
        this.sampling = (DeviceSampling) backend;
        this.params = request.sampling();
        this.stream = request.streamId();
        this.targetRows = backend.allocate(draftLength + 1, vocab);
        Tensor d = null;
        try {
            d = withDraft ? backend.allocate(draftLength, vocab) : null;
        } catch (RuntimeException | Error e) {
            backend.free(targetRows);
            throw e;
        }
        this.draftRows = d;
    }

    /**
     * Device verification for a request, or null where it does not apply (a host backend, other processors,
     * logprobs, another drafter): then the host verifies from rows of logits, as everywhere else. A draft model
     * is told to keep its rows and draw on the device.
     */
    static DeviceVerification open(LanguageModel target, Drafter drafter, int draftLength, GenerationRequest request) {
        Backend backend = target.backend();
        SamplingParams sp = request.sampling();
        if (!(backend instanceof DeviceSampling) || backend.placement() != Placement.DEVICE || !sp.temperatureOnly()
                || request.logprobs() != 0
                || draftLength < 1 || draftLength > DeviceSampling.MAX_VERIFY_DRAFT) {
            return null;
        }
        DrafterModel model = null;
        if (drafter.model() != null) {
            if (!(drafter instanceof DrafterModel m) || m.model().backend() != backend || !m.canDrawOnDevice()) {
                return null;
            }
            model = m;
        }
        DeviceVerification v = new DeviceVerification(backend, draftLength, target.config().vocabSize(), model != null, request);
        if (model != null) {
            model.drawOnDevice(v.draftRows, v.sampling);
        }
        return v;
    }

    /** The verification pass's entry ({@code entry} over the last token and the chain) keeping every row's logits here. */
    Batch.Entry ask(Batch.Entry entry) {
        int[] every = new int[entry.rows()];
        for (int i = 0; i < every.length; i++) {
            every[i] = i;
        }
        return entry.withLogitRows().withLogitsInto(targetRows, 0, every);
    }

    /**
     * The verdict on {@code tokens} (drawn at positions {@code position ..}), from the rows the last {@link #ask}ed
     * pass kept; null when {@code openEnded} and every token was accepted.
     */
    Verdict verify(int[] tokens, long position, boolean openEnded) {
        int n = tokens.length;
        Tensor target = targetRows.rows(0, openEnded ? n : n + 1);
        Tensor draft = draftRows == null || n == 0 ? null : draftRows.rows(0, n);
        DeviceSampling.ChainOutcome o = sampling.verifyChain(target, draft, tokens, params.temperature(), params.seed(), stream,
                position, openEnded);
        return openEnded && o.accepted() == n ? null : new Verdict(o.accepted(), o.next());
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            backend.free(targetRows);
            if (draftRows != null) {
                backend.free(draftRows);
            }
        }
    }
}
