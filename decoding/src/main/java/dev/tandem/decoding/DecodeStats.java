package dev.tandem.decoding;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What a {@link DecodingStrategy} spent on one generation.
 *
 * @param method              the strategy's name ({@code plain}, {@code speculative}, {@code ngram}, ...)
 * @param generatedTokens     tokens generated (including a final EOS token)
 * @param targetForwardPasses forward passes of the target model, prefill included
 * @param draftForwardPasses  forward passes of the draft model, prefill included (0 without one)
 * @param verifications       verification passes (target passes that checked a draft, possibly empty)
 * @param draftedTokens       draft tokens proposed in all verifications
 * @param acceptedTokens      draft tokens accepted in all verifications
 * @param acceptedHistogram   element k: verifications that accepted exactly k draft tokens
 * @param draftMillis         wall time spent drafting
 * @param verifyMillis        wall time spent in verification passes and verdicts
 * @param otherMillis         the rest (prefill, bookkeeping, cache rollback, text)
 */
public record DecodeStats(String method, int generatedTokens, long targetForwardPasses, long draftForwardPasses,
                          long verifications, long draftedTokens, long acceptedTokens, List<Long> acceptedHistogram,
                          double draftMillis, double verifyMillis, double otherMillis) {

    public DecodeStats {
        acceptedHistogram = List.copyOf(acceptedHistogram);
    }

    /** Plain decoding: one target pass for the prompt, one per later token, no drafts. */
    public static DecodeStats plain(GenerationStats stats, int generatedTokens) {
        return new DecodeStats("plain", generatedTokens, (stats.prefillMillis() > 0 || generatedTokens > 0 ? 1 : 0)
                + stats.decodeSteps(), 0, 0, 0, 0, List.of(), 0, 0, stats.prefillMillis() + stats.decodeMillis());
    }

    /** Accepted draft tokens per verification (0 when there was none). */
    public double meanAcceptedPerVerification() {
        return verifications == 0 ? 0 : (double) acceptedTokens / verifications;
    }

    /** Tokens emitted per verification: the accepted draft tokens plus the target's own token. */
    public double meanTokensPerVerification() {
        return verifications == 0 ? 0 : (double) (acceptedTokens + verifications) / verifications;
    }

    /** Accepted draft tokens over drafted ones (0 when nothing was drafted). */
    public double acceptanceRate() {
        return draftedTokens == 0 ? 0 : (double) acceptedTokens / draftedTokens;
    }

    /** Target forward passes per generated token (1 for plain decoding). */
    public double targetPassesPerToken() {
        return generatedTokens == 0 ? 0 : (double) targetForwardPasses / generatedTokens;
    }

    public double totalMillis() {
        return draftMillis + verifyMillis + otherMillis;
    }

    /** Generated tokens per second of the whole generation, prefill included (0 when no time was measured). */
    public double tokensPerSecond() {
        double ms = totalMillis();
        return ms <= 0 ? 0 : generatedTokens * 1000.0 / ms;
    }

    /** The stats as JSON-ready values with snake_case keys, derived figures included. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("method", method);
        m.put("generated_tokens", generatedTokens);
        m.put("target_forward_passes", targetForwardPasses);
        m.put("draft_forward_passes", draftForwardPasses);
        m.put("verifications", verifications);
        m.put("drafted_tokens", draftedTokens);
        m.put("accepted_tokens", acceptedTokens);
        m.put("acceptance_rate", round(acceptanceRate()));
        m.put("mean_accepted_per_verification", round(meanAcceptedPerVerification()));
        m.put("mean_tokens_per_verification", round(meanTokensPerVerification()));
        m.put("accepted_histogram", acceptedHistogram);
        m.put("target_passes_per_token", round(targetPassesPerToken()));
        m.put("tokens_per_s", round(tokensPerSecond()));
        Map<String, Object> phases = new LinkedHashMap<>();
        phases.put("draft", round(draftMillis));
        phases.put("verify", round(verifyMillis));
        phases.put("other", round(otherMillis));
        m.put("wall_ms", phases);
        return m;
    }

    /** One line for people: acceptance rate, mean accepted per verification, target passes per token. */
    public String summary() {
        return String.format(Locale.ROOT,
                "[%s: acceptance %.1f%%, %.2f accepted per verification (%d verifications), %.3f target passes per token, "
                        + "%d draft passes; draft %.1f ms, verify %.1f ms, other %.1f ms; %.1f tokens/s overall]",
                method, 100 * acceptanceRate(), meanAcceptedPerVerification(), verifications, targetPassesPerToken(),
                draftForwardPasses, draftMillis, verifyMillis, otherMillis, tokensPerSecond());
    }

    private static double round(double v) {
        return Math.round(v * 1000.0) / 1000.0;
    }

    /** Collects the stats of one generation as it runs; thread-safe (a step may count draft and target passes at once). */
    public static final class Recorder {
        private final String method;
        private final long started = System.nanoTime();
        private long targetPasses;
        private long draftPasses;
        private long verifications;
        private long drafted;
        private long accepted;
        private final List<Long> histogram = new ArrayList<>();
        private long draftNanos;
        private long verifyNanos;

        public Recorder(String method) {
            this.method = method;
        }

        public synchronized void targetPass() {
            targetPasses++;
        }

        public synchronized void draftPass() {
            draftPasses++;
        }

        /** One verification of {@code draftedTokens} draft tokens that accepted {@code acceptedTokens}. */
        public synchronized void verification(int draftedTokens, int acceptedTokens) {
            verifications++;
            drafted += draftedTokens;
            accepted += acceptedTokens;
            while (histogram.size() <= acceptedTokens) {
                histogram.add(0L);
            }
            histogram.set(acceptedTokens, histogram.get(acceptedTokens) + 1);
        }

        public synchronized void addDraftNanos(long nanos) {
            draftNanos += nanos;
        }

        public synchronized void addVerifyNanos(long nanos) {
            verifyNanos += nanos;
        }

        /** The stats so far; "other" time is the wall time since construction minus draft and verify. */
        public synchronized DecodeStats build(int generatedTokens) {
            long total = System.nanoTime() - started;
            return new DecodeStats(method, generatedTokens, targetPasses, draftPasses, verifications, drafted, accepted,
                    histogram, draftNanos / 1e6, verifyNanos / 1e6, Math.max(0, total - draftNanos - verifyNanos) / 1e6);
        }
    }
}
