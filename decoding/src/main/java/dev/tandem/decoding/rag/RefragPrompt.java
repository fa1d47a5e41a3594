package dev.tandem.decoding.rag;

import java.util.List;

/**
 * What {@link RefragDecoding} feeds the decoder for one request, one row per position, causally from position 0: the
 * system prefix's tokens, then for each chunk of each passage either its tokens (expanded) or one vector, its encoder
 * vector projected into the decoder's input-embedding space (compressed), then the question's tokens.
 *
 * @param ids      per row its token id, or -1 at a vector row
 * @param vectors  per row its vector (of the decoder's hidden size), or null at a token row
 * @param chunks   the chunks' token ids, passage after passage
 * @param expanded per chunk whether its tokens are fed (else its one vector row)
 * @param text     the prefix, every passage's tokens and the question: the prompt as text, what a result reports as its prompt ids
 */
public record RefragPrompt(int[] ids, float[][] vectors, List<int[]> chunks, boolean[] expanded, int[] text) {

    /** Decoder positions the prompt takes. */
    public int rows() {
        return ids.length;
    }

    /** Chunks fed as one vector each. */
    public int compressedChunks() {
        int n = 0;
        for (boolean e : expanded) {
            n += e ? 0 : 1;
        }
        return n;
    }
}
