package dev.tandem.transformer.tokenizer;

import java.util.Objects;
import java.util.function.IntFunction;

/**
 * Decodes one stream of token ids incrementally. Concatenating every {@link #push} result and the final
 * {@link #flush} gives exactly {@link Tokenizer#decode(int[])} of all the ids, for every decoder chain:
 * the batch decode runs the same steps (see {@code DecoderChain}). A push returns only text that no
 * later token can change, and never half a character: a byte-level token may end inside a UTF-8
 * character (an emoji is often two or three tokens), a run of byte-fallback tokens ({@code <0xE4>}...)
 * is held until it ends, and a rule for the end of the text (such as a Strip decoder's {@code stop})
 * holds back the characters it may remove. Rules for the start of the text (SentencePiece's Strip of
 * one leading space, Metaspace's first-token rule) apply to the first tokens pushed.
 *
 * <p>Not thread-safe: one decoder per stream. Instances come from {@link Tokenizer#streamingDecoder()}.
 */
public final class StreamingDecoder {
    private final DecoderChain chain;
    private final IntFunction<String> tokenContent;
    private DecoderChain.Stream stream;

    StreamingDecoder(DecoderChain chain, IntFunction<String> tokenContent) {
        this.chain = Objects.requireNonNull(chain, "chain");
        this.tokenContent = Objects.requireNonNull(tokenContent, "tokenContent");
        this.stream = chain.open();
    }

    /**
     * Adds one token and returns the text it completed (possibly empty). Malformed bytes are returned
     * as U+FFFD as soon as they are known to be malformed, exactly as {@code decode} renders them.
     *
     * @throws IllegalArgumentException if {@code id} names no token
     */
    public String push(int id) {
        stream.push(tokenContent.apply(id));
        return stream.take();
    }

    /**
     * Ends the text: returns whatever is held back (an unfinished character becomes U+FFFD) and
     * empties the decoder. A later push starts a new text, with the start-of-text rules applying again.
     */
    public String flush() {
        stream.end();
        String text = stream.take();
        stream = chain.open();
        return text;
    }
}
