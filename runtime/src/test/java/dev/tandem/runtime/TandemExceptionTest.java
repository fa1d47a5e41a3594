package dev.tandem.runtime;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

/** A {@link TandemException}'s message is one line whatever it quotes, and safe to print on a terminal. */
class TandemExceptionTest {
    @Test
    void controlCharactersInAMessageAreWrittenAsEscapes() {
        TandemException e = new TandemException("tokenizer.json: model.merges[3] uses \"a\nb\r\tc\u001b[31m\u2028\u0085\u007f\", which is not in model.vocab.");
        assertEquals("tokenizer.json: model.merges[3] uses \"a\\nb\\r\\tc\\u001b[31m\\u2028\\u0085\\u007f\", which is not in model.vocab.",
                e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
        Throwable cause = new IllegalStateException();
        assertEquals("x\\ny.", new TandemException("x\ny.", cause).getMessage());
    }

    @Test
    void textWithoutControlCharactersIsLeftAsItIs() {
        String text = "naïve café, 東京, 🙂 — \"quoted\" \\ backslash.";
        assertSame(text, TandemException.oneLine(text));
        assertNull(TandemException.oneLine(null));
    }
}
