package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.runtime.AttentionRows;
import dev.tandem.runtime.Backend;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.Roofline;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.kv.KvStorage;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The attention suite: one decode row per sequence attending to a paged KV cache of each context length,
 * the op alone ({@link Backend#attention}), beside the memory bandwidth measured by the same backend in the
 * same run. A decode row reads every key and value of its sequence once, so the KV bytes over the time per
 * call say how close paged attention comes to the memory roofline at that context.
 *
 * <p>The cache's blocks are spread over the storage in a shuffled order, as a long-running engine leaves
 * them. Each figure is the time of a run of calls ended by a copy of one output row to the host (which
 * waits for the device), divided by the calls; the run is long enough (at least 50 ms) for that copy not
 * to count, and untimed calls come first at each context (two seconds of them at the first, for the JIT).
 */
public final class AttentionBench {
    /** Tokens per KV block (the engine's default). */
    static final int BLOCK_SIZE = 16;

    /**
     * @param contexts    KV lengths to time
     * @param batch       sequences (decode rows) per call
     * @param repetitions timed runs per context
     * @param kvDtype     f32 or bf16
     */
    public record Options(int[] contexts, int batch, int repetitions, DType kvDtype, long bandwidthBytes) {
        public Options {
            if (contexts.length == 0) {
                throw new IllegalArgumentException("--contexts needs at least one length.");
            }
            for (int c : contexts) {
                if (c < 1 || c > (1 << 24)) {
                    throw new IllegalArgumentException("--contexts must be between 1 and 16777216 tokens, got " + c + ".");
                }
            }
            if (batch < 1) {
                throw new IllegalArgumentException("the batch must be at least 1, got " + batch + ".");
            }
            if (repetitions < 1) {
                throw new IllegalArgumentException("--repetitions must be at least 1, got " + repetitions + ".");
            }
            if (kvDtype != DType.F32 && kvDtype != DType.BF16) {
                throw new IllegalArgumentException("the KV dtype must be f32 or bf16, got " + kvDtype.lowerName() + ".");
            }
            contexts = contexts.clone();
        }
    }

    /** One context length: seconds per call and KV bytes read per second. */
    public record Point(int context, long kvBytesPerCall, Stats secondsPerCall, Stats kvBytesPerSecond) {
    }

    public record Result(String backend, String shape, int heads, int kvHeads, int headDim, Options options, Roofline bandwidth,
                         List<Point> points) {
    }

    private AttentionBench() {
    }

    /** Runs the suite on {@code device} for heads of the given shape; {@code progress} counts timed runs. */
    public static Result run(String shape, int heads, int kvHeads, int headDim, Options options, String device, int threads,
                             Progress progress) {
        if (heads < 1 || kvHeads < 1 || headDim < 1 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("attention of " + heads + " heads over " + kvHeads + " KV heads of " + headDim
                    + " is not a grouped-query shape.");
        }
        long total = (long) options.contexts().length * options.repetitions() + 1;
        try (Backend backend = Backends.open(Backends.choose(device).name(), threads)) {
            Roofline bandwidth = backend.measureReadBandwidth(options.bandwidthBytes(), 5, Progress.NONE);
            progress.update(1, total);
            List<Point> points = new ArrayList<>();
            SplittableRandom rnd = new SplittableRandom(42);
            long done = 1;
            for (int context : options.contexts()) {
                points.add(time(backend, heads, kvHeads, headDim, context, options, rnd, points.isEmpty()));
                done += options.repetitions();
                progress.update(done, total);
            }
            return new Result(backend.name(), shape, heads, kvHeads, headDim, options, bandwidth, points);
        }
    }

    private static Point time(Backend backend, int heads, int kvHeads, int headDim, int context, Options options,
                              SplittableRandom rnd, boolean first) {
        int batch = options.batch();
        int blocksPerSequence = (context + BLOCK_SIZE - 1) / BLOCK_SIZE;
        int numBlocks = blocksPerSequence * batch;
        int width = kvHeads * headDim;
        int[] order = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) {
            order[i] = i;
        }
        for (int i = numBlocks - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int[][] tables = new int[batch][];
        for (int b = 0; b < batch; b++) {
            tables[b] = java.util.Arrays.copyOfRange(order, b * blocksPerSequence, (b + 1) * blocksPerSequence);
        }
        try (KvStorage kv = backend.allocateKv(1, kvHeads, headDim, BLOCK_SIZE, numBlocks, options.kvDtype())) {
            fill(backend, kv, tables, context, width, rnd);
            Tensor q = backend.allocate(batch, (long) heads * headDim);
            Tensor out = backend.allocate(batch, (long) heads * headDim);
            try {
                backend.writeRows(random(rnd, batch, heads * headDim), q, 0);
                int[] visible = new int[batch];
                java.util.Arrays.fill(visible, context);
                AttentionRows rows = new AttentionRows(tables, visible);
                float scale = (float) (1 / Math.sqrt(headDim));
                // Warm up (the caches; at the first context also the JIT, which on two cores took over a
                // second to settle), then double the calls per run until a run takes 50 ms.
                long warmUntil = System.nanoTime() + (first ? 2_000_000_000L : 250_000_000L);
                while (System.nanoTime() < warmUntil) {
                    run(backend, q, kv, rows, heads, scale, out, 1);
                }
                int calls = 1;
                while (true) {
                    double seconds = run(backend, q, kv, rows, heads, scale, out, calls);
                    if (seconds >= 0.05 || calls >= 1 << 20) {
                        break;
                    }
                    calls *= 2;
                }
                double[] perCall = new double[options.repetitions()];
                double[] rate = new double[options.repetitions()];
                long bytes = 2L * batch * context * width * options.kvDtype().byteSize();
                for (int r = 0; r < perCall.length; r++) {
                    perCall[r] = run(backend, q, kv, rows, heads, scale, out, calls) / calls;
                    rate[r] = bytes / perCall[r];
                }
                return new Point(context, bytes, Stats.of(perCall), Stats.of(rate));
            } finally {
                backend.free(q);
                backend.free(out);
            }
        }
    }

    private static double run(Backend backend, Tensor q, KvStorage kv, AttentionRows rows, int heads, float scale, Tensor out,
                              int calls) {
        long t0 = System.nanoTime();
        for (int i = 0; i < calls; i++) {
            backend.attention(q, kv, 0, rows, heads, scale, out);
        }
        backend.readRows(out, 0, 1); // waits for the device
        return (System.nanoTime() - t0) / 1e9;
    }

    /** Random keys and values at every position of every sequence, written through the backend. */
    private static void fill(Backend backend, KvStorage kv, int[][] tables, int context, int width, SplittableRandom rnd) {
        int chunk = Math.max(1, Math.min(context, (1 << 22) / width));
        Tensor k = backend.allocate(chunk, width);
        Tensor v = backend.allocate(chunk, width);
        try {
            for (int[] table : tables) {
                for (int from = 0; from < context; from += chunk) {
                    int n = Math.min(chunk, context - from);
                    int[] slots = new int[n];
                    for (int i = 0; i < n; i++) {
                        int p = from + i;
                        slots[i] = table[p / BLOCK_SIZE] * BLOCK_SIZE + p % BLOCK_SIZE;
                    }
                    backend.writeRows(random(rnd, n, width), k, 0);
                    backend.writeRows(random(rnd, n, width), v, 0);
                    backend.writeKv(kv, 0, k.rows(0, n), v.rows(0, n), slots);
                }
            }
        } finally {
            backend.free(k);
            backend.free(v);
        }
    }

    private static float[][] random(SplittableRandom rnd, int rows, int width) {
        float[][] out = new float[rows][width];
        for (float[] row : out) {
            for (int i = 0; i < width; i++) {
                row[i] = (float) (rnd.nextDouble() * 2 - 1);
            }
        }
        return out;
    }

    /** The result as the JSON written to {@code bench/results/}. */
    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.shape());
        n.put("backend", r.backend());
        n.put("dtype", r.options().kvDtype().lowerName());
        n.put("heads", r.heads());
        n.put("kv_heads", r.kvHeads());
        n.put("head_dim", r.headDim());
        ObjectNode o = n.putObject("options");
        o.put("batch", r.options().batch());
        o.put("repetitions", r.options().repetitions());
        o.put("block_size", BLOCK_SIZE);
        o.put("kv_dtype", r.options().kvDtype().lowerName());
        ObjectNode bw = n.putObject("memory_read_bytes_per_s");
        bw.put("best", r.bandwidth().best());
        bw.put("median", r.bandwidth().median());
        ArrayNode points = n.putArray("contexts");
        for (Point p : r.points()) {
            ObjectNode o2 = points.addObject();
            o2.put("context", p.context());
            o2.put("kv_bytes_per_call", p.kvBytesPerCall());
            o2.set("seconds_per_call", p.secondsPerCall().toJson());
            o2.set("kv_bytes_per_s", p.kvBytesPerSecond().toJson());
            o2.put("fraction_of_memory_bandwidth", p.kvBytesPerSecond().median() / r.bandwidth().best());
        }
        return n;
    }

    /** One line per context, for the terminal. */
    public static List<String> summary(Result r) {
        List<String> lines = new ArrayList<>();
        lines.add(String.format(Locale.ROOT, "attention on %s: %d heads over %d KV heads of %d, %s KV, %d row%s per call; "
                        + "memory bandwidth %.2f GB/s (best pass)", r.backend(), r.heads(), r.kvHeads(), r.headDim(),
                r.options().kvDtype().lowerName(), r.options().batch(), r.options().batch() == 1 ? "" : "s",
                r.bandwidth().best() / 1e9));
        for (Point p : r.points()) {
            lines.add(String.format(Locale.ROOT, "  context %d: %.1f µs per call, KV read at %.2f GB/s = %.2f of the bandwidth",
                    p.context(), p.secondsPerCall().median() * 1e6, p.kvBytesPerSecond().median() / 1e9,
                    p.kvBytesPerSecond().median() / r.bandwidth().best()));
        }
        return lines;
    }
}
