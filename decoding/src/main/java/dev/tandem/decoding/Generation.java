package dev.tandem.decoding;

import dev.tandem.decoding.sampling.LogProbs;
import dev.tandem.decoding.sampling.Sampler;
import dev.tandem.decoding.sampling.TokenLogprob;
import dev.tandem.runtime.kv.KvSequence;
import dev.tandem.transformer.Batch;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.tokenizer.StreamingDecoder;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * One running generation, pulled a token at a time. Text is released only when it is final: never
 * half a UTF-8 character, never the start of what may become a stop string. Close it (or drain it) to
 * free its KV blocks; {@link #result()} is available once it has ended.
 */
public final class Generation implements Iterator<TokenEvent>, AutoCloseable {
    private final LanguageModel model;
    private final GenerationRequest request;
    private final int[] promptIds;
    private final int[] eos;
    private final KvSequence kv;
    private final StreamingDecoder decoder;
    private final StringBuilder text = new StringBuilder();
    private final List<TokenEvent> events = new ArrayList<>();
    private final int maxStopLength;
    private int[] context;
    private int contextLength;
    private int released;
    private float[] nextLogits;
    private FinishReason finish;
    private GenerationResult result;
    private long prefillNanos;
    private long decodeNanos;
    private int decodeSteps;

    Generation(LanguageModel model, GenerationRequest request, int[] promptIds, int[] eos) {
        this.model = model;
        this.request = request;
        this.promptIds = promptIds;
        this.eos = eos;
        this.kv = model.newSequence();
        this.decoder = model.tokenizer().streamingDecoder();
        this.maxStopLength = request.stop().stream().mapToInt(String::length).max().orElse(0);
        // Generation ends at the context limit, so the buffer never needs more than that (maxTokens may be huge).
        int room = Math.max(1, model.config().maxContext() - promptIds.length + 1);
        this.context = Arrays.copyOf(promptIds, promptIds.length + Math.min(request.maxTokens(), room));
        this.contextLength = promptIds.length;
    }

    @Override
    public boolean hasNext() {
        return finish == null;
    }

    @Override
    public TokenEvent next() {
        if (finish != null) {
            throw new NoSuchElementException("the generation has ended (" + finish.wireName() + ")");
        }
        try {
            return step();
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private TokenEvent step() {
        if (nextLogits == null) {
            long t0 = System.nanoTime();
            nextLogits = model.forward(Batch.of(Batch.Entry.continuation(kv, promptIds))).lastLogits(0);
            prefillNanos = System.nanoTime() - t0;
        }
        float[] logits = nextLogits;
        int index = contextLength - promptIds.length;
        int token = Sampler.sample(logits, request.sampling(), context, contextLength, request.streamId(), contextLength);
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
            } else if (contextLength >= model.config().maxContext()) {
                finish = FinishReason.CONTEXT_FULL;
                delta = releaseAll(decoder.flush());
            } else {
                delta = releaseUpTo(text.length() - heldForStop());
            }
        }
        TokenEvent event = new TokenEvent(index, token, delta, logprob, top);
        events.add(event);
        if (finish == null) {
            long t0 = System.nanoTime();
            nextLogits = model.forward(Batch.of(Batch.Entry.continuation(kv, token))).lastLogits(0);
            decodeNanos += System.nanoTime() - t0;
            decodeSteps++;
        } else {
            finishUp();
        }
        return event;
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

    /** The finished generation's result. */
    public GenerationResult result() {
        if (result == null) {
            throw new IllegalStateException("the generation has not ended yet");
        }
        return result;
    }

    /** Stops early (finish reason {@code cancelled} unless it had already ended) and frees the KV blocks. */
    @Override
    public void close() {
        if (finish == null) {
            finish = FinishReason.CANCELLED;
            finishUp();
        }
    }
}
