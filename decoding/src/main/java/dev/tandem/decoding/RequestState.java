package dev.tandem.decoding;

import dev.tandem.decoding.sampling.LogProbs;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.TokenLogprob;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.tokenizer.StreamingDecoder;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The per-request half of decoding, driven by logits rather than by the model: it owns the request,
 * its KV sequence, the streaming decoder and the stop/EOS/logprob bookkeeping. Whoever runs the
 * forward passes ({@link Generation} alone, {@link Engine} batched) feeds it the logits that follow
 * its context, and {@link #accept} samples the next token exactly as a lone run would (the same
 * {@link Sampler} call with the request's seed, stream id and position), updates the text and decides
 * whether the generation ends. Not thread-safe: one driver at a time.
 *
 * <p>Public for {@link DecodingStrategy} implementations in other packages (speculative methods), which
 * choose tokens themselves and hand them to {@link #acceptToken}.
 */
public final class RequestState {
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private final int maxContext;
    private final KvSequence kv;
    private final StreamingDecoder decoder;
    private final StringBuilder text = new StringBuilder();
    private final List<TokenEvent> events = new ArrayList<>();
    private final int maxStopLength;
    private int[] context;
    private int contextLength;
    private int released;
    private FinishReason finish;
    private GenerationResult result;
    private long prefillNanos;
    private long decodeNanos;
    private int decodeSteps;

    RequestState(LanguageModel model, GenerationRequest request, int[] promptIds, int[] eos) {
        this(model, request, promptIds, eos, model.newSequence());
    }

    /**
     * A request's state over {@code kv}, an empty sequence of {@code model}'s cache (it closes it when it
     * ends), with the prompt ids and EOS ids already resolved ({@link Generator#promptIds},
     * {@link Generator#eosTokenIds}).
     */
    public RequestState(LanguageModel model, GenerationRequest request, int[] promptIds, int[] eos, KvSequence kv) {
        this.request = request;
        this.promptIds = promptIds;
        this.eos = eos;
        this.maxContext = model.config().maxContext();
        this.decoder = model.tokenizer().streamingDecoder();
        this.maxStopLength = request.stop().stream().mapToInt(String::length).max().orElse(0);
        // Generation ends at the context limit, so the buffer never needs more than that (maxTokens may be huge).
        int room = Math.max(1, maxContext - promptIds.length + 1);
        this.context = Arrays.copyOf(promptIds, promptIds.length + Math.min(request.maxTokens(), room));
        this.contextLength = promptIds.length;
        this.kv = kv;
    }

    /**
     * A request's state as {@link Generator#stream} starts it: the prompt encoded and checked, the EOS
     * tokens resolved, a new KV sequence of {@code model} (empty: the caller runs the prefill).
     */
    public static RequestState start(LanguageModel model, GenerationRequest request) {
        return new RequestState(model, request, Generator.promptIds(model, request), Generator.eosTokens(model, request));
    }

    /** As {@link #start(LanguageModel, GenerationRequest)}, over {@code kv} (an empty sequence of {@code model}). */
    public static RequestState start(LanguageModel model, GenerationRequest request, KvSequence kv) {
        return new RequestState(model, request, Generator.promptIds(model, request), Generator.eosTokens(model, request), kv);
    }

    public GenerationRequest request() {
        return request;
    }

    public int[] promptIds() {
        return promptIds;
    }

    public KvSequence kv() {
        return kv;
    }

    /** Whether the generation has ended (then the KV sequence is closed and {@link #result()} is set). */
    public boolean finished() {
        return finish != null;
    }

    /** The last sampled token: the row a decode step feeds next. */
    public int lastToken() {
        return context[contextLength - 1];
    }

    /** Tokens generated so far. */
    public int generated() {
        return contextLength - promptIds.length;
    }

    public void addPrefillNanos(long nanos) {
        prefillNanos += nanos;
    }

    public void addDecodeStep(long nanos) {
        decodeNanos += nanos;
        decodeSteps++;
    }

    /**
     * Takes the logits that follow the current context (the prompt's last row, then each fed token),
     * samples the next token and returns its event. When this token ends the generation, the result is
     * built and the KV sequence closed before returning.
     */
    public TokenEvent accept(float[] logits) {
        if (finish != null) {
            throw new IllegalStateException("the generation has ended (" + finish.wireName() + ")");
        }
        int token = Sampler.sample(logits, request.sampling(), context, contextLength, request.streamId(), contextLength);
        return acceptToken(token, logits);
    }

    /**
     * True when this request's next token is the argmax of the raw logits and nothing else is read from them
     * (greedy, no repetition penalty, no logprobs): a pass may then send back the token alone
     * ({@code Batch.Entry.withGreedyRows}) instead of the row of logits, and the token goes to {@link #acceptToken}.
     */
    public boolean needsOnlyGreedyToken() {
        var p = request.sampling();
        return p.isGreedy() && p.repetitionPenalty() == 1f && request.logprobs() == 0;
    }

    /** Number of tokens in the context: the prompt plus the tokens generated so far. */
    public int contextLength() {
        return contextLength;
    }

    /** A copy of the context (prompt and generated tokens) with {@code extra} free entries after it. */
    public int[] context(int extra) {
        return Arrays.copyOf(context, contextLength + extra);
    }

    /** The model's context length: generation ends (context_full) when the context reaches it. */
    public int maxContext() {
        return maxContext;
    }

    /**
     * Like {@link #accept} but with the token already chosen by the caller (for example verified from a
     * draft); {@code logits} are the raw logits it was chosen from, used only for logprobs (may be null
     * when the request asks for none). Updates the text and ends the generation as {@link #accept} does.
     */
    public TokenEvent acceptToken(int token, float[] logits) {
        if (finish != null) {
            throw new IllegalStateException("the generation has ended (" + finish.wireName() + ")");
        }
        int index = contextLength - promptIds.length;
        float logprob = Float.NaN;
        List<TokenLogprob> top = List.of();
        if (request.logprobs() > 0) {
            logprob = LogProbs.logSoftmax(logits)[token];
            top = LogProbs.top(logits, request.logprobs());
        }
        context[contextLength++] = token;

        boolean isEos = contains(eos, token);
        String delta;
        if (isEos) {
            finish = FinishReason.EOS;
            delta = releaseAll(decoder.flush());
        } else {
            text.append(decoder.push(token));
            int stopAt = findStop();
            if (stopAt >= 0) {
                text.setLength(stopAt);
                finish = FinishReason.STOP_STRING;
                delta = releaseUpTo(stopAt);
            } else if (index + 1 >= request.maxTokens()) {
                finish = FinishReason.MAX_TOKENS;
                delta = releaseAll(decoder.flush());
            } else if (contextLength >= maxContext) {
                finish = FinishReason.CONTEXT_FULL;
                delta = releaseAll(decoder.flush());
            } else {
                delta = releaseUpTo(text.length() - heldForStop());
            }
        }
        TokenEvent event = new TokenEvent(index, token, delta, logprob, top);
        events.add(event);
        if (finish != null) {
            finishUp();
        }
        return event;
    }

    /** Ends a generation that has not ended yet with {@code reason} (e.g. cancelled) and frees its KV blocks. */
    public void end(FinishReason reason) {
        if (finish == null) {
            finish = reason;
            finishUp();
        }
    }

    /** Frees the KV blocks without building a result (the request failed). */
    public void abandon() {
        kv.close();
    }

    private static boolean contains(int[] ids, int token) {
        for (int id : ids) {
            if (id == token) {
                return true;
            }
        }
        return false;
    }

    /** Index of the earliest stop string in the text, searching only where a new one can have appeared. */
    private int findStop() {
        if (maxStopLength == 0) {
            return -1;
        }
        int from = Math.max(0, released - maxStopLength);
        int best = -1;
        for (String s : request.stop()) {
            int i = text.indexOf(s, from);
            if (i >= 0 && (best < 0 || i < best)) {
                best = i;
            }
        }
        return best;
    }

    /** Length of the longest suffix of the text that is a proper prefix of some stop string. */
    private int heldForStop() {
        int held = 0;
        for (String s : request.stop()) {
            for (int len = Math.min(s.length() - 1, text.length()); len > held; len--) {
                if (text.substring(text.length() - len).equals(s.substring(0, len))) {
                    held = len;
                    break;
                }
            }
        }
        return held;
    }

    private String releaseUpTo(int end) {
        if (end <= released) {
            return "";
        }
        String delta = text.substring(released, end);
        released = end;
        return delta;
    }

    private String releaseAll(String flushed) {
        text.append(flushed);
        return releaseUpTo(text.length());
    }

    private void finishUp() {
        int generated = contextLength - promptIds.length;
        result = new GenerationResult(promptIds.clone(), Arrays.copyOfRange(context, promptIds.length, contextLength),
                text.toString(), finish, new Usage(promptIds.length, generated),
                new GenerationStats(prefillNanos / 1e6, decodeNanos / 1e6, decodeSteps), List.copyOf(events));
        kv.close();
    }

    /**
     * The result, once {@link #finished()}. Its stats are read now, not when the last token ended the
     * generation: a round-based method records its last round's decode step after accepting that
     * round's tokens.
     */
    public GenerationResult result() {
        if (result == null) {
            throw new IllegalStateException("the generation has not ended yet");
        }
        GenerationStats now = new GenerationStats(prefillNanos / 1e6, decodeNanos / 1e6, decodeSteps);
        if (!now.equals(result.stats())) {
            result = new GenerationResult(result.promptIds(), result.generatedIds(), result.text(), result.finishReason(),
                    result.usage(), now, result.logprobs(), null);
        }
        return result;
    }
}
