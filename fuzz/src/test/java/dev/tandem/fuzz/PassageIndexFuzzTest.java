package dev.tandem.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.tandem.decoding.rag.PassageIndex;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * A passage index as a user hands it to {@code generate --passages}: magic, version, JSON header, vectors, chunk
 * table, ids, texts and checksum. Each input is read twice: as it is (most mutations stop at the checksum), and with
 * its last four bytes replaced by the checksum of the rest, so the fuzzer reaches the header and the arrays behind it.
 * A read index is searched and every chunk read back. Seed: a small index of the embedded MiniLM over two documents
 * for bard-s ({@code tandem index --chunk 8}).
 */
class PassageIndexFuzzTest {
    private static final Path DIR = Contract.scratchDirectory();

    @FuzzTest
    void passageIndex(byte[] bytes) throws Exception {
        Path file = Contract.write(DIR, "passages.idx", bytes);
        Contract.holds(() -> exercise(PassageIndex.read(file)));
        if (bytes.length >= 4) {
            Path fixed = Contract.write(DIR, "passages-checksummed.idx", withChecksum(bytes));
            Contract.holds(() -> exercise(PassageIndex.read(fixed)));
        }
    }

    /** {@code bytes} with the last four replaced by the CRC32C of the others, little-endian. */
    static byte[] withChecksum(byte[] bytes) {
        byte[] out = Arrays.copyOf(bytes, bytes.length);
        CRC32C crc = new CRC32C();
        crc.update(out, 0, out.length - 4);
        ByteBuffer.wrap(out, out.length - 4, 4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) crc.getValue());
        return out;
    }

    static void exercise(PassageIndex index) {
        index.encoder();
        index.decoder();
        for (int i = 0; i < index.size(); i++) {
            index.chunk(i).text();
            index.vector(i);
        }
        float[] query = new float[index.dimension()];
        Arrays.fill(query, 1f);
        index.search(query, 3);
    }
}
