package dev.tandem.runtime.cuda;

import dev.tandem.runtime.TandemException;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Tandem's CUDA kernels as nvcc built them ({@code native/cuda/build-fatbin.sh}): one fatbin, a resource of
 * this module, holding device code for several GPU architectures. {@code cuModuleLoadData} takes the
 * bytes as they are and picks the entry for the device; this class reads the container's header so that
 * a build can be checked (which architectures it has) and a device without an entry refused in a
 * sentence rather than by the driver's error code.
 *
 * <p>The layout, as nvcc 12–13 write it (little-endian): a 16-byte header — magic {@code 0xBA55ED50},
 * version 1 (u16), header size (u16), size of the entries (u64) — then entries, each with its own header:
 * kind (u16: 1 = PTX, 2 = ELF cubin) at 0, header size (u32) at 4, payload size (u64) at 8, and the
 * architecture (u32, e.g. 90 for sm_90 or compute_90) at 28; the payload follows the entry header.
 */
public record Fatbin(byte[] bytes, List<Entry> entries) {
    /** Where the build puts the fatbin among this module's resources. */
    public static final String RESOURCE = "/dev/tandem/runtime/cuda/tandem.fatbin";
    static final int MAGIC = 0xBA55ED50;

    /** What an entry holds. */
    public enum Kind {
        /** PTX for {@code compute_XX}, compiled by the driver for newer devices. */
        PTX,
        /** Machine code (a cubin) for {@code sm_XX}. */
        ELF
    }

    /** One entry: its kind and architecture (e.g. 90), and where its payload lies in {@link #bytes}. */
    public record Entry(Kind kind, int arch, int offset, long size) {
        /** {@code sm_90} for machine code, {@code compute_90} for PTX. */
        public String target() {
            return (kind == Kind.ELF ? "sm_" : "compute_") + arch;
        }
    }

    public Fatbin {
        entries = List.copyOf(entries);
    }

    /** The targets of every entry, e.g. {@code [sm_80, compute_90, sm_90, sm_100]}, in file order. */
    public List<String> targets() {
        return entries.stream().map(Entry::target).toList();
    }

    /**
     * The fatbin this build embedded, or empty when it was built where nvcc was not found.
     *
     * @throws TandemException when the resource is there but is not a fatbin
     */
    public static Optional<Fatbin> embedded() {
        try (InputStream in = Fatbin.class.getResourceAsStream(RESOURCE)) {
            return in == null ? Optional.empty() : Optional.of(parse(in.readAllBytes(), "the embedded CUDA kernels (" + RESOURCE + ")"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Reads the header and the entries' headers of {@code bytes}.
     *
     * @param what what sentences call the bytes
     * @throws TandemException when they are not a fatbin, or an entry runs past the end
     */
    public static Fatbin parse(byte[] bytes, String what) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (bytes.length < 16 || b.getInt(0) != MAGIC) {
            throw new TandemException(what + " is not a CUDA fatbin (no 0xBA55ED50 magic at the start).");
        }
        int headerSize = Short.toUnsignedInt(b.getShort(6));
        long end = headerSize + b.getLong(8);
        if (headerSize < 16 || end > bytes.length || end < headerSize) {
            throw new TandemException(what + ": the fatbin header says " + b.getLong(8) + " bytes of entries after "
                    + headerSize + " bytes of header, but the file has " + bytes.length + " bytes.");
        }
        List<Entry> entries = new ArrayList<>();
        long at = headerSize;
        while (at < end) {
            if (at + 32 > end) {
                throw new TandemException(what + ": a fatbin entry header at byte " + at + " runs past the end.");
            }
            int kind = Short.toUnsignedInt(b.getShort((int) at));
            long entryHeader = Integer.toUnsignedLong(b.getInt((int) at + 4));
            long size = b.getLong((int) at + 8);
            int arch = b.getInt((int) at + 28);
            if (entryHeader < 32 || size < 0 || at + entryHeader + size > end) {
                throw new TandemException(what + ": the fatbin entry at byte " + at + " (" + entryHeader + " bytes of header, "
                        + size + " of payload) runs past the end.");
            }
            if (kind == 1 || kind == 2) {
                entries.add(new Entry(kind == 1 ? Kind.PTX : Kind.ELF, arch, (int) (at + entryHeader), size));
            }
            at += entryHeader + size;
        }
        return new Fatbin(bytes, entries);
    }
}
