package dev.tandem.decoding.speculative;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.decoding.DecodeStats;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.ForwardResult;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.TestModels;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.BiConsumer;
import java.util.function.Function;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * What the speculative-family tests share: bard-l's golden cases and paths, the plain greedy results a method
 * must reproduce and the check that it does (with its stats summed in {@link Totals}), the check that a kept
 * cache continues like a fresh prefill, the edge-case checks (max tokens, stop strings, logprobs, an EOS inside
 * an accepted draft, the end of the context, seeded sampling, the target's logits for sampled tokens) and the
 * choice of an EOS token to plant.
 */
final class SpeculativeFixtures {
    private SpeculativeFixtures() {}

    /** Tokens a fork of a kept cache is continued with after the round's own token. */
    private static final int[] CONTINUATION = {17, 400};

    /** The stop strings of the stop-string tests. */
    static final List<String> STOPS = List.of("\n\n", "my");

    /** The text that the context-limit tests repeat to nearly fill the context. */
    private static final String FILLER = "ROMEO:\nI love thee, and thou lovest me; what more is there to say? ";

    static JsonNode golden() throws IOException {
        return new ObjectMapper().readTree(TestModels.model("bard-l").resolve("golden.json").toFile());
    }

    /** bard-l's golden prompts followed by {@code more}. */
    static List<String> goldenPromptsAnd(List<String> more) throws IOException {
        List<String> prompts = new ArrayList<>();
        for (JsonNode c : golden().get("cases")) {
            prompts.add(c.get("prompt").asText());
        }
        prompts.addAll(more);
        return prompts;
    }

    /** The tests' usual request: {@code prompt}, 48 tokens at most. */
    static GenerationRequest request(String prompt) {
        return GenerationRequest.of(prompt).withMaxTokens(48);
    }

    /** Plain greedy decoding of {@code target} on each prompt's request: what every method must reproduce. */
    static List<GenerationResult> plainGreedy(LanguageModel target, List<String> prompts,
                                              Function<String, GenerationRequest> request) {
        Generator generator = new Generator(target);
        List<GenerationResult> plain = new ArrayList<>();
        for (String p : prompts) {
            plain.add(generator.generate(request.apply(p)));
        }
        return plain;
    }

    /** Stats summed over generations. */
    record Totals(int generations, long generated, long targetPasses, long draftPasses, long verifications,
                  long drafted, long accepted, double draftMillis, double verifyMillis, double otherMillis) {
        static final Totals NONE = new Totals(0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

        Totals plus(DecodeStats s) {
            return new Totals(generations + 1, generated + s.generatedTokens(), targetPasses + s.targetForwardPasses(),
                    draftPasses + s.draftForwardPasses(), verifications + s.verifications(), drafted + s.draftedTokens(),
                    accepted + s.acceptedTokens(), draftMillis + s.draftMillis(), verifyMillis + s.verifyMillis(),
                    otherMillis + s.otherMillis());
        }

        /** Accepted over drafted tokens (0 when nothing was drafted). */
        double acceptance() {
            return (double) accepted / Math.max(1, drafted);
        }

        double meanAcceptedPerVerification() {
            return (double) accepted / verifications;
        }

        /** The accepted draft tokens plus the target's own token, per verification. */
        double tokensPerVerification() {
            return (double) (accepted + verifications) / verifications;
        }

        double targetPassesPerToken() {
            return (double) targetPasses / generated;
        }

        double draftPassesPerToken() {
            return (double) draftPasses / generated;
        }

        double draftPassesPerVerification() {
            return (double) draftPasses / verifications;
        }

        /** Drafted tokens (tree nodes) per verification. */
        double nodesPerVerification() {
            return (double) drafted / verifications;
        }

        /** {@code label: acceptance …, mean accepted per verification …, target passes per token …}. */
        String summary(String label) {
            return String.format(Locale.ROOT, "%s: acceptance %.3f, mean accepted per verification %.3f, "
                    + "target passes per token %.3f", label, acceptance(), meanAcceptedPerVerification(), targetPassesPerToken());
        }
    }

    /** No extra checks for {@link #assertSameAsPlain}. */
    static final BiConsumer<GenerationResult, String> NO_EXTRA_CHECKS = (r, where) -> { };

    /**
     * Runs every prompt through {@code strategy} and asserts ids, text, streamed text, finish reason and usage
     * equal {@code plain} (the same index), the stats' bookkeeping (method, generated tokens, the accepted
     * histogram's count and weighted sum), then {@code extraChecks} with the result and a where-string;
     * returns the summed stats.
     */
    static Totals assertSameAsPlain(DecodingStrategy strategy, List<String> prompts, List<GenerationResult> plain,
                                    Function<String, GenerationRequest> request, String label,
                                    BiConsumer<GenerationResult, String> extraChecks) {
        assertEquals(prompts.size(), plain.size(), "plain results per prompt");
        Totals totals = Totals.NONE;
        for (int i = 0; i < prompts.size(); i++) {
            GenerationResult expected = plain.get(i);
            StringBuilder streamed = new StringBuilder();
            GenerationResult r = strategy.generate(request.apply(prompts.get(i)), e -> streamed.append(e.textDelta()));
            String where = label + " on " + prompts.get(i);
            assertArrayEquals(expected.generatedIds(), r.generatedIds(), where);
            assertEquals(expected.text(), r.text(), where);
            assertEquals(expected.text(), streamed.toString(), where);
            assertEquals(expected.finishReason(), r.finishReason(), where);
            assertEquals(expected.usage(), r.usage(), where);
            DecodeStats s = r.decodeStats();
            assertEquals(strategy.name(), s.method(), where);
            assertEquals(r.generatedIds().length, s.generatedTokens(), where);
            assertEquals(s.acceptedTokens(), sumWeighted(s.acceptedHistogram()), where);
            assertEquals(s.verifications(), s.acceptedHistogram().stream().mapToLong(Long::longValue).sum(), where);
            extraChecks.accept(r, where);
            totals = totals.plus(s);
        }
        return totals;
    }

    /** Σ k · histogram[k]: the accepted tokens an accepted-histogram stands for. */
    static long sumWeighted(List<Long> histogram) {
        long s = 0;
        for (int k = 0; k < histogram.size(); k++) {
            s += k * histogram.get(k);
        }
        return s;
    }

    /**
     * For methods without a draft model: no draft passes, and one target pass per verification plus the
     * prefill (when the prompt has more than one token).
     */
    static void assertOneTargetPassPerVerification(GenerationResult r, String where) {
        DecodeStats s = r.decodeStats();
        assertEquals(0, s.draftForwardPasses(), where);
        assertEquals(s.verifications() + (r.promptIds().length > 1 ? 1 : 0), s.targetForwardPasses(), where);
    }

    /**
     * Runs bard-l's golden cases (EOS off, each its own length) through {@code strategy}, asserting the golden
     * greedy ids; returns the summed stats.
     */
    static Totals assertReproducesGoldenPaths(DecodingStrategy strategy, String label) throws IOException {
        Totals totals = Totals.NONE;
        for (JsonNode c : golden().get("cases")) {
            int[] expected = new int[c.get("greedy_ids").size()];
            for (int i = 0; i < expected.length; i++) {
                expected[i] = c.get("greedy_ids").get(i).asInt();
            }
            GenerationResult r = strategy.generate(GenerationRequest.of(c.get("prompt").asText())
                    .withMaxTokens(expected.length).withEosTokenIds(List.of()));
            assertArrayEquals(expected, r.generatedIds(), label + " " + c.get("prompt").asText());
            totals = totals.plus(r.decodeStats());
        }
        return totals;
    }

    /**
     * Continues a fork of {@code kv} (which holds exactly {@code kept}) with {@code next} and two more tokens, and
     * asserts the logits equal, bit for bit, those of a fresh prefill of the same tokens; {@code kv} is left as it was.
     */
    static void assertContinuesLikeAFreshPrefill(LanguageModel target, KvSequence kv, int[] kept, int next, String where) {
        int[] more = concat(new int[] {next}, CONTINUATION);
        float[][] continued = new float[more.length][];
        try (KvSequence fork = kv.fork()) {
            ForwardResult fr = target.forward(Batch.of(Batch.Entry.continuationAllLogits(fork, more)));
            for (int i = 0; i < more.length; i++) {
                continued[i] = fr.logits(0, i);
            }
        }
        try (KvSequence fresh = target.newSequence()) {
            ForwardResult fr = target.forward(Batch.of(Batch.Entry.continuationAllLogits(fresh, concat(kept, more))));
            for (int i = 0; i < more.length; i++) {
                assertBitIdentical(fr.logits(0, kept.length + i), continued[i], where + " row " + i);
            }
        }
    }

    /**
     * A {@link TreeDecoding.RoundObserver} (tree and ADED rounds): after every round the target's cache holds exactly
     * the kept tokens, and every {@code every}-th round (the first, then every {@code every} more) it continues like
     * a fresh prefill ({@link #assertContinuesLikeAFreshPrefill}).
     */
    static final class KeptCacheCheck implements TreeDecoding.RoundObserver {
        private final LanguageModel target;
        private final int every;
        private int rounds;
        private int checked;

        KeptCacheCheck(LanguageModel target, int every) {
            this.target = target;
            this.every = every;
        }

        @Override
        public void afterRound(KvSequence kv, int[] kept, int next) {
            rounds++;
            assertEquals(kept.length, kv.length(), "cache length after round " + rounds);
            if ((rounds - 1) % every != 0) {
                return; // a fresh prefill per round is slow
            }
            checked++;
            assertContinuesLikeAFreshPrefill(target, kv, kept, next, "round " + rounds);
        }

        /** Rounds checked against a fresh prefill. */
        int checked() {
            return checked;
        }
    }

    static void assertBitIdentical(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int j = 0; j < expected.length; j++) {
            if (Float.floatToRawIntBits(expected[j]) != Float.floatToRawIntBits(actual[j])) {
                throw new AssertionError(what + ": value " + j + " differs: " + expected[j] + " vs " + actual[j]);
            }
        }
    }

    /**
     * {@code strategy} on {@code request} emits plain's {@code expected} ids and text, exactly max-tokens of them
     * with an event each, and stops for max tokens.
     */
    static void assertStopsAtMaxTokensLikePlain(DecodingStrategy strategy, GenerationRequest request,
                                                GenerationResult expected, String where) {
        List<TokenEvent> events = new ArrayList<>();
        GenerationResult r = strategy.generate(request, events::add);
        assertArrayEquals(expected.generatedIds(), r.generatedIds(), where);
        assertEquals(request.maxTokens(), r.generatedIds().length, where);
        assertEquals(request.maxTokens(), events.size(), where);
        assertEquals(FinishReason.MAX_TOKENS, r.finishReason(), where);
        assertEquals(expected.text(), r.text(), where);
    }

    /** {@code r} has plain's {@code expected} ids, text and finish reason. */
    static void assertSameOutputAsPlain(GenerationResult expected, GenerationResult r, String where) {
        assertArrayEquals(expected.generatedIds(), r.generatedIds(), where);
        assertEquals(expected.text(), r.text(), where);
        assertEquals(expected.finishReason(), r.finishReason(), where);
    }

    /** {@code strategy} on {@code request} has plain's {@code expected} ids, and its logprobs in the result and as the events. */
    static void assertSameIdsAndLogprobsAsPlain(DecodingStrategy strategy, GenerationRequest request,
                                                GenerationResult expected, String where) {
        List<TokenEvent> events = new ArrayList<>();
        GenerationResult r = strategy.generate(request, events::add);
        assertArrayEquals(expected.generatedIds(), r.generatedIds(), where);
        assertEquals(expected.logprobs(), r.logprobs(), where);
        assertEquals(expected.logprobs(), events, where);
    }

    /**
     * Makes {@code plainIds[index]} (plain greedy's output on {@code base}, which has no EOS) the EOS, asserts plain
     * greedy now stops right there, and that each strategy emits the same ids and text, stops for EOS and sends no
     * event after the EOS token; returns the request with the EOS.
     */
    static <S extends DecodingStrategy> GenerationRequest assertEosEndsTheOutputThere(
            LanguageModel target, GenerationRequest base, int[] plainIds, int index, List<S> strategies,
            Function<? super S, String> label) {
        int eos = plainIds[index];
        GenerationRequest request = base.withEosTokenIds(List.of(eos));
        GenerationResult expected = new Generator(target).generate(request);
        assertEquals(FinishReason.EOS, expected.finishReason());
        assertEquals(index + 1, expected.generatedIds().length);
        for (S s : strategies) {
            List<TokenEvent> events = new ArrayList<>();
            GenerationResult r = s.generate(request, events::add);
            String where = label.apply(s);
            assertArrayEquals(expected.generatedIds(), r.generatedIds(), where);
            assertEquals(FinishReason.EOS, r.finishReason(), where);
            assertEquals(expected.text(), r.text(), where);
            assertEquals(index + 1, events.size(), where + ": no token after EOS");
            assertEquals(eos, events.getLast().token(), where);
        }
        return request;
    }

    /**
     * Up to 20 tokens, EOS off, after a prompt (a line of ROMEO's over and over) that leaves {@code left}
     * positions of {@code model}'s context.
     */
    static GenerationRequest leavingPositions(LanguageModel model, int left) {
        int[] text = model.tokenizer().encode(FILLER);
        int[] prompt = new int[model.config().maxContext() - left];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = text[i % text.length];
        }
        return GenerationRequest.ofIds(prompt).withMaxTokens(20).withEosTokenIds(List.of());
    }

    /** Plain greedy decoding of {@code model} on {@code request}, asserted to stop at the end of the context. */
    static GenerationResult plainUpToTheContextEnd(LanguageModel model, GenerationRequest request) {
        GenerationResult expected = new Generator(model).generate(request);
        assertEquals(FinishReason.CONTEXT_FULL, expected.finishReason());
        return expected;
    }

    /** {@code strategy} on {@code request} emits plain's {@code expected} ids and stops at the end of the context too. */
    static GenerationResult assertEndsAtTheContextLikePlain(DecodingStrategy strategy, GenerationRequest request,
                                                            GenerationResult expected, String where) {
        GenerationResult r = strategy.generate(request);
        assertArrayEquals(expected.generatedIds(), r.generatedIds(), where);
        assertEquals(FinishReason.CONTEXT_FULL, r.finishReason(), where);
        return r;
    }

    /**
     * Samples 48 tokens after "ROMEO:" (temperature 1, EOS off) with each strategy: seed 11 twice gives the same
     * ids and text, not plain greedy's, and seed 12 gives other ids.
     */
    static <S extends DecodingStrategy> void assertSamplingIsReproducibleFromTheSeed(
            LanguageModel target, List<S> strategies, Function<? super S, String> label) {
        SamplingParams sampling = SamplingParams.greedy().withTemperature(1.0f).withSeed(11);
        GenerationRequest greedyRequest = GenerationRequest.of("ROMEO:").withMaxTokens(48).withEosTokenIds(List.of());
        GenerationRequest request = greedyRequest.withSampling(sampling);
        int[] greedy = new Generator(target).generate(greedyRequest).generatedIds();
        for (S s : strategies) {
            GenerationResult a = s.generate(request);
            GenerationResult b = s.generate(request);
            GenerationResult c = s.generate(request.withSampling(sampling.withSeed(12)));
            String where = label.apply(s);
            assertArrayEquals(a.generatedIds(), b.generatedIds(), where);
            assertEquals(a.text(), b.text(), where);
            assertEquals(48, a.generatedIds().length, where);
            assertFalse(Arrays.equals(greedy, a.generatedIds()), where + " sampled the greedy path");
            assertFalse(Arrays.equals(a.generatedIds(), c.generatedIds()), where + " ignored the seed");
        }
    }

    /**
     * The target's logits for each generated token of {@code r}, at that token's own position (row i predicts
     * output token i), from one prefill of the prompt and the output.
     */
    static float[][] targetLogitsOfEachToken(LanguageModel target, GenerationResult r) {
        int[] prompt = r.promptIds(), out = r.generatedIds();
        int[] all = concat(prompt, out);
        float[][] rows = new float[out.length][];
        try (KvSequence kv = target.newSequence()) {
            ForwardResult fr = target.forward(Batch.of(Batch.Entry.continuationAllLogits(kv, Arrays.copyOf(all, all.length - 1))));
            for (int i = 0; i < out.length; i++) {
                rows[i] = fr.logits(0, prompt.length - 1 + i);
            }
        }
        return rows;
    }

    /** How many logits are larger than {@code token}'s: 0 for the argmax. */
    static int rankOf(float[] logits, int token) {
        float mine = logits[token];
        int above = 0;
        for (float l : logits) {
            if (l > mine) {
                above++;
            }
        }
        return above;
    }

    /** {@code a} followed by {@code b}. */
    static int[] concat(int[] a, int[] b) {
        return IntStream.concat(Arrays.stream(a), Arrays.stream(b)).toArray();
    }

    /** {@code r}'s prompt followed by its output. */
    static int[] promptAndOutput(GenerationResult r) {
        return concat(r.promptIds(), r.generatedIds());
    }

    /**
     * The first index k ≥ 1 of {@code ids} that is the first occurrence of its token and not a bonus
     * token when rounds emit {@code period} tokens (period − 1 accepted drafts, then the target's own);
     * making that token the EOS ends the output inside an accepted draft. −1 if there is none.
     */
    static int tokenInsideAnAcceptedDraft(int[] ids, int period) {
        for (int k = 1; k < ids.length; k++) {
            if (k % period != period - 1 && firstIndexOf(ids, ids[k]) == k) {
                return k;
            }
        }
        return -1;
    }

    /** The first index of {@code v} in {@code a}, −1 if there is none. */
    static int firstIndexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }
}
