package dev.tandem.bindings.cuda;

import dev.tandem.bindings.cuda.internal.CublasApi;
import dev.tandem.bindings.cuda.internal.MissingSymbolException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.ToIntFunction;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * One cuBLAS library bound through FFM: NVIDIA's {@code libcublas.so.*}, or the host shim
 * ({@code native/cuda/host/host_cublas.cpp}, {@code libtandem_cublas_host.so}) that does the same GEMMs over
 * the host build's memory. Raw downcalls ({@link CublasApi}, jextract's style) under a checked layer: every
 * failing {@code cublasStatus_t} becomes a {@link CublasException} naming the call and the status.
 * {@link #open} never throws: a library that is missing or lacks a required function gives an unavailable
 * instance whose {@link #reason()} says why, and whose calls throw that reason.
 *
 * <p>The GEMMs compute in strict f32: {@code CUBLAS_COMPUTE_32F} under {@code CUBLAS_DEFAULT_MATH} (no
 * TF32, no reduced-precision inputs), or {@code CUBLAS_COMPUTE_32F_PEDANTIC} under
 * {@code CUBLAS_PEDANTIC_MATH}; {@link Handle#setMathMode} accepts only those two. Matrices are
 * column-major, as cuBLAS defines them; device pointers are {@code long}s of the {@link CudaLibrary} whose
 * context is current.
 *
 * <p>{@link #find()} looks for cuBLAS where it is usually installed ({@link #system()} does so once per
 * process); without it the backend uses its own GEMM kernels, and {@link #noticeOnce} says so once.
 */
public final class CublasLibrary {
    /** The system property that names the cuBLAS library to use (a path or a name), skipping the search. */
    public static final String LIBRARY_PROPERTY = "tandem.cublas.library";
    /** The names {@link #find()} looks for, newest first. */
    public static final List<String> NAMES = List.of("libcublas.so.13", "libcublas.so.12", "libcublas.so");

    /** {@code CUBLAS_OP_N}: the matrix as stored. */
    public static final int OP_N = 0;
    /** {@code CUBLAS_OP_T}: the matrix transposed. */
    public static final int OP_T = 1;
    /** {@code CUDA_R_32F} ({@code cudaDataType}). */
    public static final int R_32F = 0;
    /** {@code CUDA_R_16F}. */
    public static final int R_16F = 2;
    /** {@code CUDA_R_16BF}. */
    public static final int R_16BF = 14;
    /** {@code CUBLAS_COMPUTE_32F}. */
    public static final int COMPUTE_32F = 68;
    /** {@code CUBLAS_COMPUTE_32F_PEDANTIC}. */
    public static final int COMPUTE_32F_PEDANTIC = 69;
    /** {@code CUBLAS_DEFAULT_MATH}. */
    public static final int DEFAULT_MATH = 0;
    /** {@code CUBLAS_PEDANTIC_MATH}. */
    public static final int PEDANTIC_MATH = 2;
    /** {@code CUBLAS_GEMM_DEFAULT}: cuBLAS picks the algorithm. */
    public static final int GEMM_DEFAULT = -1;
    /** {@code CUBLAS_STATUS_SUCCESS}. */
    public static final int STATUS_SUCCESS = 0;
    /** {@code CUBLAS_STATUS_NOT_SUPPORTED}. */
    public static final int STATUS_NOT_SUPPORTED = 15;

    /** {@code cublasStatus_t} names (cublas_api.h), for libraries without {@code cublasGetStatusName}. */
    private static final Map<Integer, String> STATUS_NAMES = Map.of(
            0, "CUBLAS_STATUS_SUCCESS",
            1, "CUBLAS_STATUS_NOT_INITIALIZED",
            3, "CUBLAS_STATUS_ALLOC_FAILED",
            7, "CUBLAS_STATUS_INVALID_VALUE",
            8, "CUBLAS_STATUS_ARCH_MISMATCH",
            11, "CUBLAS_STATUS_MAPPING_ERROR",
            13, "CUBLAS_STATUS_EXECUTION_FAILED",
            14, "CUBLAS_STATUS_INTERNAL_ERROR",
            15, "CUBLAS_STATUS_NOT_SUPPORTED",
            16, "CUBLAS_STATUS_LICENSE_ERROR");

    private final String library;
    private final String reason;
    private final CublasApi api;
    /** Whether the dynamic linker loaded the library (false: not found, or a dependency missing). */
    private final boolean loaded;

    private CublasLibrary(String library, String reason, CublasApi api, boolean loaded) {
        this.library = library;
        this.reason = reason;
        this.api = api;
        this.loaded = loaded;
    }

    /** Loads {@code library} (a name the dynamic linker looks up, or a path) and binds its functions; never throws. */
    @SuppressWarnings("restricted") // this layer is where native access is meant to happen
    public static CublasLibrary open(String library) {
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            return new CublasLibrary(library, library + " could not be loaded (not found, or a library it needs,"
                    + " such as libcublasLt, is missing).", null, false);
        } catch (IllegalCallerException e) {
            return new CublasLibrary(library, library + " could not be loaded because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).", null, false);
        }
        try {
            return new CublasLibrary(library, null, new CublasApi(lookup), true);
        } catch (MissingSymbolException e) {
            return new CublasLibrary(library, library + " was loaded but has no symbol " + e.symbol()
                    + " (not cuBLAS, or older than cuBLAS 11).", null, true);
        } catch (IllegalCallerException e) {
            return new CublasLibrary(library, library + " could not be bound because native access is disabled"
                    + " (run java with --enable-native-access=ALL-UNNAMED).", null, true);
        }
    }

    /**
     * cuBLAS as this process would use it: the library the system property {@value #LIBRARY_PROPERTY} names,
     * else the first of {@link #NAMES} that loads through the dynamic linker ({@code LD_LIBRARY_PATH},
     * {@code ld.so.cache}), in the CUDA toolkit ({@code $CUDA_HOME/lib64}, {@code $CUDA_PATH/lib64},
     * {@code /usr/local/cuda/lib64}, {@code $CONDA_PREFIX/lib}) or in an installed Python wheel
     * ({@code nvidia/cublas/lib} or {@code nvidia/cu13/lib} of the site-packages of {@code $VIRTUAL_ENV},
     * {@code $CONDA_PREFIX}, {@code ~/.local/lib/python3*}, {@code /usr/lib/python3*} and
     * {@code /usr/local/lib/python3*}). Without one, an unavailable instance whose reason names every place
     * looked. Never throws; searches anew on each call.
     */
    public static CublasLibrary find() {
        return find(System.getProperty(LIBRARY_PROPERTY, ""), System.getenv(), System.getProperty("user.home", ""), NAMES);
    }

    /** {@link #find()} with the property, environment, home directory and library names given. */
    static CublasLibrary find(String forced, Map<String, String> env, String home, List<String> names) {
        if (forced != null && !forced.isEmpty()) {
            CublasLibrary l = open(forced);
            return l.available() ? l : new CublasLibrary(forced, withoutPeriod(l.reason()) + " (named by -D"
                    + LIBRARY_PROPERTY + ").", null, l.loaded);
        }
        List<String> problems = new ArrayList<>();
        for (String name : names) {
            CublasLibrary l = open(name);
            if (l.available()) {
                return l;
            }
            if (l.loaded) {
                problems.add(withoutPeriod(l.reason()));
            }
        }
        List<Path> toolkit = toolkitDirectories(env);
        List<Path> sites = sitePackages(env, home);
        List<Path> directories = new ArrayList<>(toolkit);
        for (Path site : sites) {
            directories.add(site.resolve("nvidia/cublas/lib"));
            directories.add(site.resolve("nvidia/cu13/lib"));
        }
        for (Path directory : directories) {
            for (String name : names) {
                Path file = directory.resolve(name);
                if (Files.isRegularFile(file)) {
                    CublasLibrary l = open(file.toString());
                    if (l.available()) {
                        return l;
                    }
                    problems.add(withoutPeriod(l.reason()));
                }
            }
        }
        StringBuilder why = new StringBuilder("cuBLAS was not found: looked for ")
                .append(listed(names, "and")).append(" through the dynamic linker, in ")
                .append(listed(toolkit.stream().map(Path::toString).toList(), "and"));
        if (sites.isEmpty()) {
            why.append(", and in Python wheels, but found no site-packages ($VIRTUAL_ENV, $CONDA_PREFIX,"
                    + " ~/.local/lib/python3*, /usr/lib/python3*, /usr/local/lib/python3*)");
        } else {
            why.append(", and in nvidia/cublas/lib and nvidia/cu13/lib of ")
                    .append(listed(sites.stream().map(Path::toString).toList(), "and"));
        }
        for (String problem : problems) {
            why.append("; ").append(problem);
        }
        return new CublasLibrary(names.isEmpty() ? "libcublas" : names.getFirst(), why.append('.').toString(), null, false);
    }

    private static String withoutPeriod(String sentence) {
        return sentence.endsWith(".") ? sentence.substring(0, sentence.length() - 1) : sentence;
    }

    private static String listed(List<String> items, String conjunction) {
        if (items.size() <= 1) {
            return String.join("", items);
        }
        return String.join(", ", items.subList(0, items.size() - 1)) + " " + conjunction + " " + items.getLast();
    }

    /** The CUDA toolkit's library folders, in the order {@link #find()} tries them. */
    static List<Path> toolkitDirectories(Map<String, String> env) {
        Set<Path> out = new LinkedHashSet<>();
        for (String variable : List.of("CUDA_HOME", "CUDA_PATH")) {
            String root = env.get(variable);
            if (root != null && !root.isEmpty()) {
                addPath(out, root, "lib64");
            }
        }
        addPath(out, "/usr/local/cuda", "lib64");
        String conda = env.get("CONDA_PREFIX");
        if (conda != null && !conda.isEmpty()) {
            addPath(out, conda, "lib");
        }
        return List.copyOf(out);
    }

    /** The Python site-packages (and Debian's dist-packages) folders that exist, in the order {@link #find()} tries them. */
    static List<Path> sitePackages(Map<String, String> env, String home) {
        List<Path> libs = new ArrayList<>();
        for (String variable : List.of("VIRTUAL_ENV", "CONDA_PREFIX")) {
            String root = env.get(variable);
            if (root != null && !root.isEmpty()) {
                addPath(libs, root, "lib");
            }
        }
        if (home != null && !home.isEmpty()) {
            addPath(libs, home, ".local/lib");
        }
        addPath(libs, "/usr/local/lib", "");
        addPath(libs, "/usr/lib", "");
        Set<Path> out = new LinkedHashSet<>();
        for (Path lib : libs) {
            if (!Files.isDirectory(lib)) {
                continue;
            }
            try (DirectoryStream<Path> pythons = Files.newDirectoryStream(lib, "python3*")) {
                List<Path> sorted = new ArrayList<>();
                pythons.forEach(sorted::add);
                sorted.sort(null);
                for (Path python : sorted.reversed()) { // the newest Python first
                    for (String site : List.of("site-packages", "dist-packages")) {
                        Path dir = python.resolve(site);
                        if (Files.isDirectory(dir)) {
                            out.add(dir);
                        }
                    }
                }
            } catch (IOException | SecurityException e) {
                // an unreadable folder is one place fewer to look
            }
        }
        return List.copyOf(out);
    }

    private static void addPath(Collection<Path> out, String root, String child) {
        try {
            out.add(child.isEmpty() ? Path.of(root) : Path.of(root, child));
        } catch (InvalidPathException e) {
            // a malformed environment variable is ignored
        }
    }

    private static final class Holder {
        static final CublasLibrary SYSTEM = find();
    }

    private static final AtomicBoolean NOTICED = new AtomicBoolean();

    /** {@link #find()}, done once per process, on first use. */
    public static CublasLibrary system() {
        return Holder.SYSTEM;
    }

    /**
     * When {@link #system()} is unavailable, gives {@code sink} one sentence saying so and that Tandem's own
     * GEMM kernels are used instead, the first time it is called in this process; returns whether it did.
     */
    public static boolean noticeOnce(Consumer<String> sink) {
        CublasLibrary l = system();
        if (l.available() || !NOTICED.compareAndSet(false, true)) {
            return false;
        }
        sink.accept("notice: " + withoutPeriod(l.reason()) + "; using Tandem's own GEMM kernels instead.");
        return true;
    }

    /** True when the library loaded and has every required function. */
    public boolean available() {
        return reason == null;
    }

    /** One sentence saying what was looked for and why it failed, or null when available. */
    public String reason() {
        return reason;
    }

    /** The library's name or path as it was loaded (or, when unavailable, as looked for). */
    public String library() {
        return library;
    }

    private void requireAvailable() {
        if (reason != null) {
            throw new IllegalStateException(reason);
        }
    }

    /**
     * The name {@code cublas_api.h} gives {@code status} ({@code "CUBLAS_STATUS_NOT_SUPPORTED"}), from the
     * library's {@code cublasGetStatusName} where it has one and knows the status, else from this class's
     * table; null when neither knows it.
     */
    @SuppressWarnings("restricted") // reading cuBLAS's static NUL-terminated string
    public String statusName(int status) {
        if (api != null && api.isBound("cublasGetStatusName")) {
            MemorySegment text = api.cublasGetStatusName(status);
            if (!text.equals(MemorySegment.NULL)) {
                String name = text.reinterpret(4096).getString(0, StandardCharsets.UTF_8);
                if (name.startsWith("CUBLAS_STATUS_") && !name.equals("CUBLAS_STATUS_UNKNOWN")) {
                    return name;
                }
            }
        }
        return STATUS_NAMES.get(status);
    }

    /** {@code "CUBLAS_STATUS_NOT_SUPPORTED (15)"}, or {@code "cublasStatus_t 4242"} for a status nobody names. */
    String describe(int status) {
        String name = statusName(status);
        return name == null ? "cublasStatus_t " + status : name + " (" + status + ")";
    }

    /** Throws {@link CublasException}{@code ("<call> failed: <describe(status)>.")} unless status is success. */
    void check(int status, String call) {
        if (status != STATUS_SUCCESS) {
            throw new CublasException(call + " failed: " + describe(status) + ".", status);
        }
    }

    /** A downcall returning a {@code cublasStatus_t} and writing its output to {@code out}. */
    @FunctionalInterface
    private interface OutDowncall {
        int call(Arena arena, MemorySegment out);
    }

    private <T> T call(String name, MemoryLayout layout, OutDowncall downcall, Function<MemorySegment, T> read) {
        requireAvailable();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(layout);
            check(downcall.call(arena, out), name);
            return read.apply(out);
        }
    }

    private void call(String name, ToIntFunction<Arena> downcall) {
        call(name, JAVA_INT, (arena, unused) -> downcall.applyAsInt(arena), out -> null);
    }

    /**
     * A new cuBLAS handle ({@code cublasCreate_v2}) in strict f32 ({@link #DEFAULT_MATH},
     * {@link #COMPUTE_32F}) on the default stream; closing destroys it. Needs a current CUDA context.
     */
    public Handle create() {
        MemorySegment handle = call("cublasCreate_v2", ADDRESS, (arena, out) -> api.cublasCreate_v2(out),
                out -> out.get(ADDRESS, 0));
        Handle h = new Handle(handle);
        try {
            h.setMathMode(DEFAULT_MATH);
        } catch (RuntimeException e) {
            h.close();
            throw e;
        }
        return h;
    }

    /** A cuBLAS handle ({@code cublasHandle_t}): its stream, math mode and GEMMs. Not for use by two threads at once. */
    public final class Handle implements AutoCloseable {
        private final MemorySegment handle;
        private int computeType = COMPUTE_32F;
        private boolean closed;

        private Handle(MemorySegment handle) {
            this.handle = handle;
        }

        /** The {@code cublasHandle_t}. */
        public MemorySegment handle() {
            if (closed) {
                throw new IllegalStateException("cuBLAS handle 0x" + Long.toHexString(handle.address()) + " is closed");
            }
            return handle;
        }

        /** The library this handle belongs to. */
        public CublasLibrary library() {
            return CublasLibrary.this;
        }

        /** Queues this handle's work on {@code stream} (null: the default stream) ({@code cublasSetStream_v2}). */
        public void setStream(CudaLibrary.Stream stream) {
            MemorySegment s = stream == null ? MemorySegment.NULL : stream.handle();
            call("cublasSetStream_v2", arena -> api.cublasSetStream_v2(handle(), s));
        }

        /**
         * {@link #DEFAULT_MATH} (GEMMs in {@link #COMPUTE_32F}) or {@link #PEDANTIC_MATH} (in
         * {@link #COMPUTE_32F_PEDANTIC}) ({@code cublasSetMathMode}); the modes that trade f32 accuracy for
         * speed (TF32, reduced-precision inputs) are refused.
         *
         * @throws IllegalArgumentException for any other mode
         */
        public void setMathMode(int mode) {
            if (mode != DEFAULT_MATH && mode != PEDANTIC_MATH) {
                throw new IllegalArgumentException("math mode " + mode + " is not strict f32; use DEFAULT_MATH or PEDANTIC_MATH");
            }
            call("cublasSetMathMode", arena -> api.cublasSetMathMode(handle(), mode));
            computeType = mode == PEDANTIC_MATH ? COMPUTE_32F_PEDANTIC : COMPUTE_32F;
        }

        /** The {@code cublasComputeType_t} the GEMMs use: {@link #COMPUTE_32F} or {@link #COMPUTE_32F_PEDANTIC}. */
        public int computeType() {
            return computeType;
        }

        /**
         * {@code C = alpha · op(A) · op(B) + beta · C} ({@code cublasGemmEx}), column-major: {@code op(A)} is
         * {@code m × k}, {@code op(B)} {@code k × n}, {@code C} {@code m × n}; {@code transA}/{@code transB}
         * are {@link #OP_N} or {@link #OP_T}; {@code a}, {@code b}, {@code c} are device pointers of types
         * {@code aType}, {@code bType}, {@code cType} ({@link #R_32F}, {@link #R_16BF}, {@link #R_16F}) with
         * leading dimensions {@code lda}, {@code ldb}, {@code ldc}. With {@code beta == 0}, C is not read.
         * Queued on the handle's stream.
         */
        public void gemmEx(int transA, int transB, int m, int n, int k, float alpha, long a, int aType, int lda,
                           long b, int bType, int ldb, float beta, long c, int cType, int ldc) {
            int compute = computeType;
            call("cublasGemmEx", arena -> api.cublasGemmEx(handle(), transA, transB, m, n, k,
                    arena.allocateFrom(JAVA_FLOAT, alpha), MemorySegment.ofAddress(a), aType, lda,
                    MemorySegment.ofAddress(b), bType, ldb, arena.allocateFrom(JAVA_FLOAT, beta),
                    MemorySegment.ofAddress(c), cType, ldc, compute, GEMM_DEFAULT));
        }

        /**
         * {@link #gemmEx} for {@code batchCount} matrices, the i-th at {@code a + i·strideA},
         * {@code b + i·strideB}, {@code c + i·strideC} (strides in elements) ({@code cublasGemmStridedBatchedEx}).
         */
        public void gemmStridedBatchedEx(int transA, int transB, int m, int n, int k, float alpha, long a, int aType,
                                         int lda, long strideA, long b, int bType, int ldb, long strideB, float beta,
                                         long c, int cType, int ldc, long strideC, int batchCount) {
            int compute = computeType;
            call("cublasGemmStridedBatchedEx", arena -> api.cublasGemmStridedBatchedEx(handle(), transA, transB, m, n, k,
                    arena.allocateFrom(JAVA_FLOAT, alpha), MemorySegment.ofAddress(a), aType, lda, strideA,
                    MemorySegment.ofAddress(b), bType, ldb, strideB, arena.allocateFrom(JAVA_FLOAT, beta),
                    MemorySegment.ofAddress(c), cType, ldc, strideC, batchCount, compute, GEMM_DEFAULT));
        }

        /** Destroys the handle ({@code cublasDestroy_v2}); a second close does nothing. */
        @Override
        public void close() {
            if (!closed) {
                closed = true;
                call("cublasDestroy_v2", arena -> api.cublasDestroy_v2(handle));
            }
        }
    }
}
