package dev.tandem.runtime.cuda;

import dev.tandem.bindings.cuda.CudaDriver;
import dev.tandem.bindings.cuda.CudaLibrary;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Tandem's CUDA kernels run through the Java driver bindings ({@link CudaLibrary}) and compared with
 * double-precision references, on two drivers: the host build ({@code native/cuda/host}: the same sources
 * compiled by g++ behind the driver's entry points), in every build; and NVIDIA's driver with the embedded
 * fatbin, where a GPU is present (elsewhere those cases report themselves skipped, with the reason). This
 * is the path a GPU takes — module load, function lookup, device memory, launch, copy back; the
 * backend-equivalence suite of issue 14 grows from here.
 */
class CudaKernelsTest {
    private static long seed;

    /** A driver with the kernels' module loaded in its primary context. */
    private record Target(CudaLibrary cuda, MemorySegment module) {
    }

    private static Target host;
    private static Target gpu;

    @BeforeAll
    static void chooseTheSeed() {
        seed = Long.getLong("tandem.test.seed", new SplittableRandom().nextLong());
        System.out.println("CudaKernelsTest seed " + seed + " (replay with -Dtandem.test.seed=" + seed + ")");
    }

    /** {@code "host"}: the host build; {@code "gpu"}: libcuda.so.1 and the fatbin. Skips with the reason when absent. */
    private static synchronized Target target(String which) {
        if (which.equals("host")) {
            if (host == null) {
                String path = System.getProperty("tandem.cuda.host.library", "");
                assumeTrue(!path.isEmpty() && Files.isRegularFile(Path.of(path)),
                        "the host build of the CUDA kernels was not made (no g++; see native/cuda/host/build-host.sh): " + path);
                host = open(CudaLibrary.open(path), Fatbin.embedded().map(Fatbin::bytes).orElse(new byte[] {0}));
            }
            return host;
        }
        if (gpu == null) {
            assumeTrue(CudaDriver.isAvailable(), () -> "no GPU here: " + CudaDriver.unavailableReason());
            Fatbin fatbin = Fatbin.embedded().orElse(null);
            assumeTrue(fatbin != null, "this build embedded no CUDA kernels (no nvcc where it was built)");
            gpu = open(CudaDriver.library(), fatbin.bytes());
        }
        return gpu;
    }

    private static Target open(CudaLibrary cuda, byte[] image) {
        assertTrue(cuda.available(), cuda.reason());
        assertTrue(cuda.deviceCount() >= 1);
        cuda.usePrimaryContext(0);
        return new Target(cuda, cuda.loadModule(image));
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void everyKernelInTheSourcesCanBeLaunched(String which) throws IOException {
        Target t = target(which);
        Path sources = Path.of(System.getProperty("tandem.cuda.sources", "../native/cuda"));
        Pattern kernel = Pattern.compile("extern \"C\" __global__ void(?:\\s+__launch_bounds__\\([^)]*\\))?\\s+(\\w+)\\s*\\(");
        List<String> names = new ArrayList<>();
        try (Stream<Path> files = Files.list(sources)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".cuh") || p.toString().endsWith(".cu")).toList()) {
                Matcher m = kernel.matcher(Files.readString(f).replaceAll("\\s+", " "));
                while (m.find()) {
                    names.add(m.group(1));
                }
            }
        }
        assertTrue(names.contains("tandem_rmsnorm_f32"), "kernels found in " + sources + ": " + names);
        for (String name : names) {
            t.cuda().function(t.module(), name); // throws, naming the kernel, where the module lacks it
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void rmsnormMatchesTheReferenceOnRowsWiderThanABlock(String which) {
        Target t = target(which);
        SplittableRandom rnd = new SplittableRandom(seed);
        int rows = 3;
        int width = 300; // wider than the kernel's 256 threads, so each thread sums more than one element
        float eps = 1e-5f;
        float[] x = random(rnd, rows * width);
        float[] w = random(rnd, width);
        float[] out = run(t, "tandem_rmsnorm_f32", rows, 256, rows * width, x, w,
                args -> args.i32(rows).i32(width).f32(eps));
        for (int r = 0; r < rows; r++) {
            double sum = 0;
            for (int c = 0; c < width; c++) {
                sum += (double) x[r * width + c] * x[r * width + c];
            }
            double scale = 1 / Math.sqrt(sum / width + eps);
            double err = 0;
            double norm = 0;
            for (int c = 0; c < width; c++) {
                double ref = x[r * width + c] * scale * w[c];
                err += (out[r * width + c] - ref) * (out[r * width + c] - ref);
                norm += ref * ref;
            }
            assertTrue(Math.sqrt(err / norm) <= 1e-5, "row " + r + ": normwise error " + Math.sqrt(err / norm));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"host", "gpu"})
    void addIsExactAndEmbeddingGatherPoisonsABadId(String which) {
        Target t = target(which);
        SplittableRandom rnd = new SplittableRandom(seed + 1);
        int n = 1000;
        float[] a = random(rnd, n);
        float[] b = random(rnd, n);
        float[] sum = run(t, "tandem_add_f32", (n + 127) / 128, 128, n, a, b, args -> args.i64(n));
        for (int i = 0; i < n; i++) {
            assertEquals(a[i] + b[i], sum[i], "element " + i);
        }
        int vocab = 5;
        int width = 7;
        float[] table = random(rnd, vocab * width);
        float[] ids = {Float.intBitsToFloat(3), Float.intBitsToFloat(5), Float.intBitsToFloat(0)}; // ids as int bits
        float[] rows = run(t, "tandem_embedding_gather_f32", 3, 32, 3 * width, table, ids, args -> args.i32(3).i32(width).i32(vocab));
        for (int c = 0; c < width; c++) {
            assertEquals(table[3 * width + c], rows[c]);
            assertTrue(Float.isNaN(rows[width + c]), "id 5 is outside a vocabulary of 5: its row must be NaN");
            assertEquals(table[c], rows[2 * width + c]);
        }
    }

    private interface MoreArgs {
        CudaLibrary.Args add(CudaLibrary.Args args);
    }

    /** Launches {@code name}(out, in1, in2, more...) over device copies of the inputs; returns out. */
    private static float[] run(Target t, String name, int grid, int block, int outLength, float[] in1, float[] in2, MoreArgs more) {
        CudaLibrary cuda = t.cuda();
        try (Arena arena = Arena.ofConfined()) {
            long out = cuda.allocate(4L * outLength);
            long d1 = upload(cuda, arena, in1);
            long d2 = upload(cuda, arena, in2);
            try {
                MemorySegment poison = arena.allocate(4L * outLength);
                poison.fill((byte) 0xFF); // NaNs: an element the kernel misses cannot pass
                cuda.copyToDevice(out, poison);
                cuda.launch(cuda.function(t.module(), name), grid, block, more.add(new CudaLibrary.Args().pointer(out).pointer(d1).pointer(d2)));
                MemorySegment host = arena.allocate(4L * outLength);
                cuda.copyToHost(host, out);
                return host.toArray(ValueLayout.JAVA_FLOAT);
            } finally {
                cuda.free(out);
                cuda.free(d1);
                cuda.free(d2);
            }
        }
    }

    private static long upload(CudaLibrary cuda, Arena arena, float[] values) {
        long d = cuda.allocate(4L * values.length);
        cuda.copyToDevice(d, arena.allocateFrom(ValueLayout.JAVA_FLOAT, values));
        return d;
    }

    private static float[] random(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return v;
    }
}
