package dev.tandem.app;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SizesTest {

    @Test
    void binaryUnitsAndPlainBytes() {
        assertEquals(100, Sizes.parseBytes("100", "--x"));
        assertEquals(512L << 20, Sizes.parseBytes("512M", "--x"));
        assertEquals(2L << 30, Sizes.parseBytes("2g", "--x"));
        assertEquals(3L << 29, Sizes.parseBytes("1.5GiB", "--x"));
        assertEquals(64L << 10, Sizes.parseBytes(" 64 KB ", "--x"));
    }

    @Test
    void anythingElseNamesTheOption() {
        for (String bad : new String[] {"", "abc", "-1", "0", "12Q", "1e9"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Sizes.parseBytes(bad, "--kv-memory"));
            assertTrue(e.getMessage().startsWith("--kv-memory "), e.getMessage());
        }
    }
}
