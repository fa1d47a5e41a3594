package dev.tandem.transformer.synth;

import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.weights.SafetensorsWriter;
import dev.tandem.transformer.weights.SafetensorsWriter.TensorInfo;
import dev.tandem.transformer.weights.WeightStore;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileStore;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.LongConsumer;
import java.util.stream.IntStream;

/**
 * Writes a checkpoint directory whose weights are computed, not held: the machinery shared by
 * {@link SyntheticCheckpoints} (weights from a seed) and {@link PaddedCheckpoints} (weights from a smaller
 * checkpoint). Each tensor is a {@link ChunkFill}; {@code model.safetensors} is streamed to disk through
 * two 32 MiB buffers, one being filled in parallel while the other is written, so memory use does not
 * grow with the model.
 *
 * <p>The output appears atomically: everything is written into a sibling directory
 * {@code .NAME.partial-<random>}, forced to disk, and renamed into place; on any failure (an exception,
 * a full disk, a throwing {@link Progress}, the JVM shutting down) that directory is deleted.
 */
final class CheckpointWriter {

    /** Safetensors metadata, as transformers' {@code save_pretrained} writes it. */
    static final Map<String, String> METADATA = Map.of("format", "pt");

    /** Bytes per I/O buffer; a multiple of {@link #CHUNK_ELEMENTS} elements of every dtype. */
    private static final int BUFFER_BYTES = 32 << 20;

    /** Elements per {@link ChunkFill#fill} call (the last chunk of a tensor may be shorter). */
    static final int CHUNK_ELEMENTS = WeightFill.CHUNK_ELEMENTS;

    /**
     * Computes a tensor's values: elements {@code [firstElement, firstElement + count)} (row-major) into
     * {@code dst}, which is exactly {@code count} elements of {@code dtype} long (little-endian).
     * {@code firstElement} is a multiple of {@link #CHUNK_ELEMENTS} and {@code count} at most that; chunks
     * are filled on several threads at once.
     */
    @FunctionalInterface
    interface ChunkFill {
        void fill(MemorySegment dst, DType dtype, long firstElement, int count);
    }

    /** One tensor of the file and how its values are computed. */
    record Computed(TensorInfo info, ChunkFill fill) {
    }

    /** A small file written whole before the weights. */
    record SmallFile(String name, byte[] bytes) {
    }

    private CheckpointWriter() {
    }

    /**
     * The size of {@code model.safetensors} holding {@code tensors}.
     *
     * @throws TandemException naming {@code label} when the tensors are too large for a file
     */
    static long safetensorsBytes(List<TensorInfo> tensors, String label) {
        try {
            return SafetensorsWriter.fileSize(tensors, METADATA);
        } catch (IllegalArgumentException e) {
            throw new TandemException(label + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes {@code small} and then {@code model.safetensors} of {@code tensors} (in list order) into
     * {@code outDir}, atomically.
     *
     * @param replace  whether an existing {@code outDir} may be replaced (it is, only once the new
     *                 checkpoint is complete, and only if it is empty or holds a {@code config.json})
     * @param progress told the bytes written so far out of the total; if it throws, writing stops,
     *                 nothing is left behind, and the exception propagates
     * @param threads  threads filling the buffers (the bytes do not depend on it)
     * @return the bytes written, all files together
     * @throws TandemException when {@code outDir} exists and {@code replace} is false, the file system
     *                         lacks the space, or a file cannot be written; {@code outDir} is then as it
     *                         was and no temporary directory remains
     */
    static long write(Path outDir, boolean replace, Progress progress, int threads, List<SmallFile> small,
                      List<Computed> tensors, String label) {
        Objects.requireNonNull(progress, "progress");
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        Path out = outDir.toAbsolutePath().normalize();
        Path parent = out.getParent();
        if (parent == null || out.getFileName() == null) {
            throw new TandemException("cannot write a checkpoint to " + outDir + ": it has no parent directory.");
        }
        checkTarget(out, replace);

        long total = safetensorsBytes(tensors.stream().map(Computed::info).toList(), label);
        for (SmallFile f : small) {
            total += f.bytes().length;
        }

        try {
            Files.createDirectories(parent);
        } catch (IOException e) {
            throw new TandemException("could not create the directory " + parent + " (" + e.getMessage() + ").", e);
        }
        checkSpace(parent, total);

        Path tmp = parent.resolve("." + out.getFileName() + ".partial-" + randomSuffix());
        CountDownLatch cleanedUp = new CountDownLatch(1);
        Cancellation cancel = new Cancellation();
        Thread hook = new Thread(() -> {
            cancel.cancelled = true;
            try {
                cleanedUp.await(10, TimeUnit.SECONDS); // let the writer stop and clean up itself
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
            deleteTree(tmp);
        }, "tandem-synth-cleanup");
        Runtime.getRuntime().addShutdownHook(hook);
        boolean moved = false;
        try {
            try {
                Files.createDirectory(tmp);
            } catch (IOException e) {
                throw new TandemException("could not create " + tmp + " (" + e.getMessage() + ").", e);
            }
            long all = total;
            long[] done = {0};
            progress.update(0, all);
            for (SmallFile f : small) {
                cancel.check();
                writeSmall(tmp.resolve(f.name()), f.bytes());
                done[0] += f.bytes().length;
                progress.update(done[0], all);
            }
            writeWeights(tmp.resolve(WeightStore.SINGLE_FILE), tensors, threads, cancel, n -> {
                done[0] += n;
                progress.update(done[0], all);
            });
            cancel.check();
            forceDirectory(tmp);
            moveIntoPlace(tmp, out, replace);
            moved = true;
            forceDirectory(parent);
            return total;
        } finally {
            if (!moved) {
                deleteTree(tmp);
            }
            cleanedUp.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running or about to; it finds the directory gone
            }
        }
    }

    /** Set by the shutdown hook; the writer checks it between buffers. */
    private static final class Cancellation {
        volatile boolean cancelled;

        void check() {
            if (cancelled) {
                throw new TandemException("synth was interrupted (the JVM is shutting down); nothing was written.");
            }
        }
    }

    private static void checkTarget(Path out, boolean replace) {
        if (!Files.exists(out, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        if (!Files.isDirectory(out, LinkOption.NOFOLLOW_LINKS)) {
            throw new TandemException("the output " + out + " exists and is not a directory; it was left as it is.");
        }
        if (!replace) {
            throw new TandemException("the output directory " + out + " already exists and was left as it is"
                    + " (use --force to replace it).");
        }
        boolean empty;
        try (var s = Files.list(out)) {
            empty = s.findAny().isEmpty();
        } catch (IOException e) {
            throw new TandemException("could not read the output directory " + out + " (" + e.getMessage() + ").", e);
        }
        if (!empty && !Files.exists(out.resolve(ModelConfig.CONFIG_FILE))) {
            throw new TandemException("refusing to replace " + out + ": it is not empty and has no "
                    + ModelConfig.CONFIG_FILE + ", so it does not look like a model directory.");
        }
    }

    private static void checkSpace(Path dir, long needed) {
        long free;
        try {
            FileStore store = Files.getFileStore(dir);
            free = store.getUsableSpace();
        } catch (IOException e) {
            return; // cannot tell; a full disk still fails cleanly while writing
        }
        if (free < needed) {
            throw new TandemException("not enough free space in " + dir + ": the checkpoint needs "
                    + Progress.formatBytes(needed) + " but only " + Progress.formatBytes(free) + " is available.");
        }
    }

    private static String randomSuffix() {
        byte[] b = new byte[6];
        new SecureRandom().nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private static void writeSmall(Path file, byte[] bytes) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                ch.write(b);
            }
            ch.force(true);
        } catch (IOException e) {
            throw new TandemException("could not write " + file + " (" + e.getMessage() + ").", e);
        }
    }

    private static void forceDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not every platform can sync a directory; the files themselves are synced
        }
    }

    private static void moveIntoPlace(Path tmp, Path out, boolean replace) {
        try {
            if (replace && Files.exists(out, LinkOption.NOFOLLOW_LINKS)) {
                Path old = out.resolveSibling("." + out.getFileName() + ".old-" + randomSuffix());
                Files.move(out, old, StandardCopyOption.ATOMIC_MOVE);
                try {
                    Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
                } catch (IOException e) {
                    Files.move(old, out, StandardCopyOption.ATOMIC_MOVE);
                    throw e;
                }
                deleteTree(old);
            } else {
                if (Files.exists(out, LinkOption.NOFOLLOW_LINKS)) {
                    throw new TandemException("the output directory " + out + " appeared while synth was writing;"
                            + " it was left as it is.");
                }
                Files.move(tmp, out, StandardCopyOption.ATOMIC_MOVE);
            }
        } catch (AtomicMoveNotSupportedException e) {
            throw new TandemException("could not move " + tmp + " to " + out + " atomically (" + e.getMessage() + ").", e);
        } catch (IOException e) {
            throw new TandemException("could not move " + tmp + " to " + out + " (" + IoErrors.reason(e) + ").", e);
        }
    }

    /** Deletes {@code root} and everything below it, as far as possible; never throws. */
    static void deleteTree(Path root) {
        for (int attempt = 0; attempt < 3 && Files.exists(root, LinkOption.NOFOLLOW_LINKS); attempt++) {
            try {
                Files.walkFileTree(root, new SimpleFileVisitor<>() {
                    @Override
                    public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                        Files.deleteIfExists(file);
                        return FileVisitResult.CONTINUE;
                    }

                    @Override
                    public FileVisitResult postVisitDirectory(Path dir, IOException exc) throws IOException {
                        Files.deleteIfExists(dir);
                        return FileVisitResult.CONTINUE;
                    }
                });
            } catch (IOException | UncheckedIOException ignored) {
                // another try, in case a file appeared while walking
            }
        }
    }

    // ------------------------------------------------------------------------------------------------
    // The safetensors file

    /** A run of whole chunks of one tensor that fits one buffer. */
    private record Piece(Computed tensor, long firstElement, long elements, boolean first, boolean last) {
    }

    private static List<Piece> pieces(List<Computed> tensors) {
        List<Piece> out = new ArrayList<>();
        for (Computed t : tensors) {
            long perBuffer = (long) BUFFER_BYTES / t.info().dtype().byteSize(); // a multiple of CHUNK_ELEMENTS
            long n = t.info().elementCount();
            if (n == 0) {
                out.add(new Piece(t, 0, 0, true, true));
                continue;
            }
            for (long start = 0; start < n; start += perBuffer) {
                long len = Math.min(perBuffer, n - start);
                out.add(new Piece(t, start, len, start == 0, start + len == n));
            }
        }
        return out;
    }

    private static void fill(Piece piece, MemorySegment buffer) {
        DType dtype = piece.tensor().info().dtype();
        int chunks = (int) ((piece.elements() + CHUNK_ELEMENTS - 1) / CHUNK_ELEMENTS);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            long first = (long) c * CHUNK_ELEMENTS;
            int count = (int) Math.min(CHUNK_ELEMENTS, piece.elements() - first);
            MemorySegment dst = buffer.asSlice(first * dtype.byteSize(), (long) count * dtype.byteSize());
            piece.tensor().fill().fill(dst, dtype, piece.firstElement() + first, count);
        });
    }

    /**
     * Streams the tensors into {@code file}: while buffer k is written on this thread, buffer k+1 is
     * filled on the pool.
     */
    private static void writeWeights(Path file, List<Computed> tensors, int threads, Cancellation cancel,
                                     LongConsumer written) {
        List<Piece> pieces = pieces(tensors);
        List<TensorInfo> infos = tensors.stream().map(Computed::info).toList();
        ForkJoinPool pool = new ForkJoinPool(threads);
        Arena arena = Arena.ofShared();
        Future<?> pending = null;
        try (SafetensorsWriter.StreamingWriter w = SafetensorsWriter.open(file, infos, METADATA)) {
            written.accept(w.bytesWritten());
            MemorySegment[] buffers = {arena.allocate(BUFFER_BYTES, 64), arena.allocate(BUFFER_BYTES, 64)};
            pending = pieces.isEmpty() ? null : pool.submit(() -> fill(pieces.getFirst(), buffers[0]));
            for (int k = 0; k < pieces.size(); k++) {
                await(pending);
                pending = null;
                cancel.check();
                if (k + 1 < pieces.size()) {
                    Piece next = pieces.get(k + 1);
                    MemorySegment nextBuffer = buffers[(k + 1) & 1];
                    pending = pool.submit(() -> fill(next, nextBuffer));
                }
                Piece p = pieces.get(k);
                if (p.first()) {
                    w.beginTensor(p.tensor().info().name());
                }
                long bytes = p.elements() * p.tensor().info().dtype().byteSize();
                w.append(buffers[k & 1].asSlice(0, bytes).asByteBuffer());
                if (p.last()) {
                    w.endTensor();
                }
                written.accept(bytes);
            }
            w.finish();
        } finally {
            pool.shutdownNow();
            try {
                if (pending != null) {
                    pending.cancel(true);
                }
                // The arena may only be freed once no task touches its buffers.
                if (pool.awaitTermination(1, TimeUnit.MINUTES)) {
                    arena.close();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void await(Future<?> f) {
        if (f == null) {
            return;
        }
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new TandemException("synth was interrupted; nothing was written.", e);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) {
                throw r;
            }
            if (c instanceof Error err) {
                throw err;
            }
            throw new IllegalStateException(c);
        }
    }
}
