package dev.tandem.runtime;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.management.ManagementFactory;
import java.util.Locale;
import java.util.Optional;

/**
 * Host memory: how much the machine has, and large zeroed buffers that cost nothing until written.
 *
 * <p>{@link #allocateLazily} maps anonymous memory ({@code mmap} through FFM) on Linux when native
 * access is enabled: the OS hands out zeroed pages only as they are first written, so a KV cache sized
 * for a large budget takes physical memory only as sequences fill its blocks (the allocator hands out low
 * block numbers first, so the touched part stays at the high-water mark of blocks in use), and creating it
 * neither takes time nor touches memory. Elsewhere it falls back to an arena's zero-filled allocation.
 */
public final class HostMemory {
    private static final long PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2, MAP_ANONYMOUS = 0x20, MAP_NORESERVE = 0x4000;
    private static final MethodHandle MMAP;
    private static final MethodHandle MUNMAP;

    static {
        MethodHandle mmap = null;
        MethodHandle munmap = null;
        boolean linux = System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux");
        String arch = System.getProperty("os.arch", "");
        if (linux && (arch.equals("amd64") || arch.equals("x86_64") || arch.equals("aarch64"))
                && HostMemory.class.getModule().isNativeAccessEnabled()) {
            try {
                Linker linker = Linker.nativeLinker();
                Optional<MemorySegment> m = linker.defaultLookup().find("mmap");
                Optional<MemorySegment> u = linker.defaultLookup().find("munmap");
                if (m.isPresent() && u.isPresent()) {
                    mmap = linker.downcallHandle(m.get(), FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS,
                            ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_LONG));
                    munmap = linker.downcallHandle(u.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS,
                            ValueLayout.JAVA_LONG));
                }
            } catch (RuntimeException | LinkageError e) {
                mmap = null;
                munmap = null;
            }
        }
        MMAP = mmap;
        MUNMAP = munmap;
    }

    private HostMemory() {
    }

    /** Whether {@link #allocateLazily} maps memory that is committed only when written (else it zero-fills up front). */
    public static boolean lazy() {
        return MMAP != null;
    }

    /**
     * The bytes of memory this process may use: the machine's physical memory, or its container's limit
     * when lower (as the JVM reads it); -1 when unknown.
     */
    public static long totalBytes() {
        return ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os
                ? os.getTotalMemorySize() : -1;
    }

    /**
     * Refuses a buffer of {@code bytes} for {@code what} when it is more than {@link #totalBytes()}: it could
     * never be filled, and the run would end killed.
     *
     * @param option what sets its size, named in the sentence (e.g. {@code --kv-memory})
     */
    public static void checkFits(long bytes, String what, String option) {
        long total = totalBytes();
        if (total > 0 && bytes > total) {
            throw new TandemException(what + " of " + gib(bytes) + " (" + option + ") is more than the " + gib(total)
                    + " of memory this machine (or its container) has; give it less.");
        }
    }

    /** {@code bytes} as GiB with two decimals. */
    public static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
    }

    /**
     * A zeroed buffer of {@code bytes} freed when {@code arena} closes: lazily committed where
     * {@link #lazy()}, else zero-filled now.
     *
     * @param what what the buffer is for, named in the sentence if memory runs out
     * @throws TandemException when the memory cannot be had
     */
    public static MemorySegment allocateLazily(long bytes, Arena arena, String what) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("a buffer needs at least one byte, not " + bytes);
        }
        if (MMAP != null) {
            MemorySegment address;
            try {
                address = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, bytes, (int) (PROT_READ | PROT_WRITE),
                        (int) (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE), -1, 0L);
            } catch (Throwable t) {
                throw new IllegalStateException("mmap failed", t);
            }
            if (address.address() == -1L || address.address() == 0L) {
                throw outOfMemory(bytes, what);
            }
            return address.reinterpret(bytes, arena, segment -> unmap(segment, bytes));
        }
        try {
            return arena.allocate(bytes, 64);
        } catch (OutOfMemoryError e) {
            throw outOfMemory(bytes, what);
        }
    }

    /** One sentence for an allocation the machine refused. */
    public static TandemException outOfMemory(long bytes, String what) {
        long total = totalBytes();
        return new TandemException("could not get " + gib(bytes) + " of memory for " + what
                + (total > 0 ? " (this machine has " + gib(total) + " in all)" : "") + "; give it less.");
    }

    private static void unmap(MemorySegment segment, long bytes) {
        try {
            int ignored = (int) MUNMAP.invokeExact(segment, bytes);
        } catch (Throwable t) {
            // Nothing to do: the mapping goes with the process.
        }
    }
}
