package dev.tandem.decoding.rag;

import java.util.List;

/** Finds the passages a question should read: their token ids in the decoder's vocabulary, most relevant first. */
@FunctionalInterface
public interface Retriever {
    List<int[]> passages(String question);
}
