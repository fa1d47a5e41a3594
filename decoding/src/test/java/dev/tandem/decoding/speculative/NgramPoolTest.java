package dev.tandem.decoding.speculative;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The lookahead n-gram pool: filed by first token, most recent first, at most the capacity per first token. */
class NgramPoolTest {

    private static void assertContinuations(List<int[]> actual, int[]... expected) {
        assertEquals(expected.length, actual.size(), "number of continuations");
        for (int i = 0; i < expected.length; i++) {
            assertArrayEquals(expected[i], actual.get(i), "continuation " + i);
        }
    }

    @Test
    void anAddedNgramIsFoundUnderItsFirstTokenOnly() {
        NgramPool pool = new NgramPool(3, 2);
        pool.add(new int[] {7, 8, 9});
        assertContinuations(pool.continuations(7), new int[] {8, 9});
        assertTrue(pool.continuations(8).isEmpty());
        assertTrue(pool.continuations(9).isEmpty());
        assertEquals(1, pool.size());
    }

    @Test
    void continuationsComeMostRecentFirst() {
        NgramPool pool = new NgramPool(3, 5);
        pool.add(new int[] {1, 2, 3});
        pool.add(new int[] {1, 4, 5});
        pool.add(new int[] {6, 2, 3});
        pool.add(new int[] {1, 2, 6});
        assertContinuations(pool.continuations(1), new int[] {2, 6}, new int[] {4, 5}, new int[] {2, 3});
        assertContinuations(pool.continuations(6), new int[] {2, 3});
        assertEquals(4, pool.size());
    }

    @Test
    void theLeastRecentlyAddedIsDroppedBeyondTheCapacity() {
        NgramPool pool = new NgramPool(2, 2);
        pool.add(new int[] {1, 10});
        pool.add(new int[] {1, 11});
        pool.add(new int[] {1, 12});
        assertContinuations(pool.continuations(1), new int[] {12}, new int[] {11});
        pool.add(new int[] {2, 10}); // another first token has its own capacity
        assertContinuations(pool.continuations(1), new int[] {12}, new int[] {11});
        assertEquals(3, pool.size());
    }

    @Test
    void addingAHeldNgramAgainMakesItTheMostRecentWithoutADuplicate() {
        NgramPool pool = new NgramPool(3, 2);
        pool.add(new int[] {1, 2, 3});
        pool.add(new int[] {1, 4, 5});
        pool.add(new int[] {1, 2, 3});
        assertContinuations(pool.continuations(1), new int[] {2, 3}, new int[] {4, 5});
        pool.add(new int[] {1, 6, 7}); // {4, 5} is now the least recent
        assertContinuations(pool.continuations(1), new int[] {6, 7}, new int[] {2, 3});
    }

    @Test
    void lookupsReturnCopies() {
        NgramPool pool = new NgramPool(3, 2);
        int[] gram = {1, 2, 3};
        pool.add(gram);
        gram[1] = 99;
        pool.continuations(1).get(0)[0] = 42;
        assertContinuations(pool.continuations(1), new int[] {2, 3});
    }

    @Test
    void badShapesAreRefusedWithASentence() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new NgramPool(1, 2));
        assertEquals("an n-gram pool needs n of at least 2, but n was 1.", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new NgramPool(3, 0));
        assertTrue(e.getMessage().endsWith("the capacity was 0."), e.getMessage());
        NgramPool pool = new NgramPool(3, 2);
        e = assertThrows(IllegalArgumentException.class, () -> pool.add(new int[] {1, 2}));
        assertEquals("this pool holds 3-grams, but was given 2 tokens: [1, 2].", e.getMessage());
    }
}
