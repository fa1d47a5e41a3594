package dev.tandem.decoding.speculative;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * The n-gram pool of lookahead decoding: n-grams of a fixed size n (≥ 2), filed under their first token.
 * Each first token keeps at most {@code capacity} distinct continuations (the n-gram's other n − 1
 * tokens), least recently added dropped first; adding a continuation already held makes it the most recent.
 */
final class NgramPool {
    private final int n;
    private final int capacity;
    private final Map<Integer, Deque<int[]>> byFirst = new HashMap<>(); // most recent first

    NgramPool(int n, int capacity) {
        if (n < 2) {
            throw new IllegalArgumentException("an n-gram pool needs n of at least 2, but n was " + n + ".");
        }
        if (capacity < 1) {
            throw new IllegalArgumentException("an n-gram pool must keep at least 1 continuation per first token, but "
                    + "the capacity was " + capacity + ".");
        }
        this.n = n;
        this.capacity = capacity;
    }

    int n() {
        return n;
    }

    int capacity() {
        return capacity;
    }

    /** Files {@code ngram} (exactly n tokens) under its first token as the most recent continuation. */
    void add(int[] ngram) {
        if (ngram.length != n) {
            throw new IllegalArgumentException("this pool holds " + n + "-grams, but was given " + ngram.length
                    + " tokens: " + Arrays.toString(ngram) + ".");
        }
        int[] continuation = Arrays.copyOfRange(ngram, 1, n);
        Deque<int[]> held = byFirst.computeIfAbsent(ngram[0], k -> new ArrayDeque<>(capacity + 1));
        for (Iterator<int[]> it = held.iterator(); it.hasNext(); ) {
            if (Arrays.equals(it.next(), continuation)) {
                it.remove();
                break;
            }
        }
        held.addFirst(continuation);
        if (held.size() > capacity) {
            held.removeLast();
        }
    }

    /** The continuations (n − 1 tokens each) held under {@code first}, most recent first; copies. */
    List<int[]> continuations(int first) {
        Deque<int[]> held = byFirst.get(first);
        List<int[]> out = new ArrayList<>(held == null ? 0 : held.size());
        if (held != null) {
            for (int[] c : held) {
                out.add(c.clone());
            }
        }
        return out;
    }

    /** Number of n-grams held. */
    int size() {
        int s = 0;
        for (Deque<int[]> d : byFirst.values()) {
            s += d.size();
        }
        return s;
    }
}
