package dev.tandem.runtime;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class Utf8TextTest {
    @Test
    void validTextOfAnyLengthPasses() {
        String text = "naïve café, 東京, 🙂\n".repeat(2000); // longer than the decoder's buffer
        assertEquals(-1, Utf8Text.firstInvalidByte(text.getBytes(StandardCharsets.UTF_8)));
        assertEquals(-1, Utf8Text.firstInvalidByte(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF, '{', '}'}));
        assertEquals(-1, Utf8Text.firstInvalidByte(new byte[0]));
    }

    @Test
    void theFirstBadSequenceIsNamedByLineAndByte() {
        byte[] bytes = "{\n  \"a\": \"x\u00e9\",\n  \"b\": \"??\"\n}".getBytes(StandardCharsets.UTF_8);
        int at = indexOf(bytes, (byte) '?');
        bytes[at] = (byte) 0xFF; // never UTF-8
        assertEquals(at, Utf8Text.firstInvalidByte(bytes));
        TandemException e = assertThrows(TandemException.class, () -> Utf8Text.requireValid(bytes, "config.json"));
        assertEquals("config.json is not valid UTF-8 at line 3, byte 9 of the line (byte " + at
                + " of the file); it must be UTF-8 text.", e.getMessage());
    }

    @Test
    void aSequenceCutShortAtTheEndIsInvalid() {
        byte[] bytes = {'"', 'a', (byte) 0xE6, (byte) 0x9D}; // the first two bytes of 東
        assertEquals(2, Utf8Text.firstInvalidByte(bytes));
    }

    private static int indexOf(byte[] bytes, byte b) {
        for (int i = 0; i < bytes.length; i++) {
            if (bytes[i] == b) {
                return i;
            }
        }
        return -1;
    }
}
