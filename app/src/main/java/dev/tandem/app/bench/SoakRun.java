package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.FinishReason;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.speculative.AdedDecoding;
import dev.tandem.decoding.speculative.LookaheadDecoding;
import dev.tandem.decoding.speculative.PearlDecoding;
import dev.tandem.decoding.speculative.PromptLookupDecoding;
import dev.tandem.decoding.speculative.SpeculativeDecoding;
import dev.tandem.decoding.speculative.TreeDecoding;
import dev.tandem.decoding.speculative.TrigramTable;
import dev.tandem.runtime.Progress;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code bench --suite soak}: many generations from many client threads through one {@link Engine} —
 * every lossless method, greedy and sampled, mixed lengths, some cancelled after their first token —
 * with resident memory, the backend's live activation bytes, KV blocks in use and the JVM's thread count
 * sampled throughout. It passes when, at the end, every KV block is free, the backend holds exactly the
 * bytes it held after the warm-up, resident memory outside the Java heap is flat over the second half of
 * the run (it grew by at most {@value #FLAT_FRACTION_PERCENT}% or 32 MiB from the second half's first
 * sample; the heap itself grows and shrinks as the collector chooses), and every
 * result equals the request run alone (a cancelled one: a prefix of it).
 */
public final class SoakRun {
    static final int FLAT_FRACTION_PERCENT = 5;

    /**
     * True when the JVM touches its heap as it commits it (-XX:+AlwaysPreTouch): only then is resident memory
     * less the committed heap exactly what is resident outside the heap.
     */
    static boolean heapPreTouched() {
        try {
            var bean = java.lang.management.ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class);
            return bean != null && Boolean.parseBoolean(bean.getVMOption("AlwaysPreTouch").getValue());
        } catch (RuntimeException e) {
            return false;
        }
    }

    /**
     * @param requests generations in the timed part (after one warm-up pass over the request pool)
     * @param clients  threads submitting them at once
     * @param threads  threads of the models' backend
     */
    public record Options(int requests, int clients, int threads) {
        public Options {
            if (requests < 1 || clients < 1 || threads < 1) {
                throw new IllegalArgumentException("--soak-requests, --soak-clients and --threads must be at least 1.");
            }
        }
    }

    /**
     * One sample; {@code heapCommittedBytes} is the Java heap the JVM has committed, so that
     * {@link #outsideHeapBytes()} is what is resident besides it (native memory, off-heap segments, code,
     * stacks), where a leak of Tandem's would show.
     */
    public record Sample(double seconds, long residentBytes, long heapCommittedBytes, long backendBytes, int usedBlocks,
                         int jvmThreads, long finished) {
        /** Resident memory less the committed Java heap. */
        public long outsideHeapBytes() {
            return residentBytes - heapCommittedBytes;
        }
    }

    public record Result(String model, String draft, Options options, int poolSize, double seconds, long cancelled,
                         long warmBackendBytes, long endBackendBytes, int endUsedBlocks, long secondHalfStartOutsideHeap,
                         long secondHalfMaxOutsideHeap, long peakResident, List<Sample> samples, List<String> failures) {
        public boolean passed() {
            return failures.isEmpty();
        }
    }

    private SoakRun() {
    }

    private static final List<String> PROMPTS = List.of("ROMEO:", "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?",
            "First Citizen:\nWe are accounted poor citizens", "KING RICHARD III:\nNow is the winter of our discontent",
            "A", "HAMLET:\nTo be, or not to be", "MENENIUS:\nEither you must\nConfess yourselves wondrous malicious,",
            "GLOUCESTER:\n");

    public static Result run(Path targetDir, Path draftDir, Options o, Progress progress) {
        ModelLoader.Options load = ModelLoader.Options.defaults().withThreads(o.threads()).withKvMemory(256L << 20);
        try (LanguageModel target = ModelLoader.load(targetDir, load);
             LanguageModel draft = ModelLoader.load(draftDir, ModelLoader.Options.defaults().withBackend(target.backend())
                     .withKvMemory(128L << 20))) {
            Map<String, DecodingStrategy> methods = new LinkedHashMap<>();
            methods.put("plain", new Generator(target));
            methods.put("speculative", new SpeculativeDecoding(target, draft, 3));
            methods.put("ngram", new PromptLookupDecoding(target));
            methods.put("tree", new TreeDecoding(target, draft, 8, 2, 3));
            methods.put("aded", new AdedDecoding(target, TrigramTable.empty()));
            methods.put("lookahead", new LookaheadDecoding(target));
            methods.put("pearl", new PearlDecoding(target, draft, 3));
            List<DecodingStrategy> strategies = List.copyOf(methods.values());
            // The pool: each prompt with each method, greedy or sampled, of mixed lengths.
            List<GenerationRequest> pool = new ArrayList<>();
            List<DecodingStrategy> poolMethod = new ArrayList<>();
            for (int p = 0; p < PROMPTS.size(); p++) {
                for (int m = 0; m < strategies.size(); m++) {
                    int i = pool.size();
                    GenerationRequest r = GenerationRequest.of(PROMPTS.get(p)).withMaxTokens(6 + (i * 7) % 29).withStreamId(i);
                    if (i % 2 == 1) {
                        r = r.withSampling(SamplingParams.greedy().withTemperature(0.8f).withSeed(100 + i));
                    }
                    pool.add(r);
                    poolMethod.add(strategies.get(m));
                }
            }
            long total = pool.size() + (long) o.requests();
            AtomicLong done = new AtomicLong();
            List<GenerationResult> alone = new ArrayList<>();
            for (int i = 0; i < pool.size(); i++) {
                alone.add(poolMethod.get(i).generate(pool.get(i)));
            }
            List<String> failures = new java.util.concurrent.CopyOnWriteArrayList<>();
            List<Sample> samples = new java.util.concurrent.CopyOnWriteArrayList<>();
            AtomicLong cancelled = new AtomicLong();
            long warmBytes;
            long t0;
            try (Engine engine = new Engine(target)) {
                // Warm-up: the whole pool at once, so buffers reach the sizes the run will need.
                List<EngineHandle> warm = new ArrayList<>();
                for (int i = 0; i < pool.size(); i++) {
                    warm.add(engine.submit(pool.get(i), poolMethod.get(i), null));
                }
                for (int i = 0; i < warm.size(); i++) {
                    check(alone.get(i), warm.get(i).result(), false, "warm-up request " + i, failures);
                    progress.update(done.incrementAndGet(), total);
                }
                warmBytes = target.backend().allocatedBytes();
                t0 = System.nanoTime();
                AtomicInteger next = new AtomicInteger();
                long start = t0;
                Thread sampler = Thread.ofPlatform().daemon().name("tandem-soak-sampler").start(() -> {
                    while (!Thread.currentThread().isInterrupted()) {
                        samples.add(sample(start, target, draft, done.get() - pool.size()));
                        try {
                            Thread.sleep(100);
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                });
                ExecutorService clients = Executors.newFixedThreadPool(o.clients());
                try {
                    List<Future<?>> futures = new ArrayList<>();
                    for (int c = 0; c < o.clients(); c++) {
                        futures.add(clients.submit(() -> {
                            for (int n = next.getAndIncrement(); n < o.requests(); n = next.getAndIncrement()) {
                                int i = n % pool.size();
                                boolean cancel = n % 10 == 3;
                                try (EngineHandle h = engine.submit(pool.get(i), poolMethod.get(i), null)) {
                                    if (cancel && h.hasNext()) {
                                        h.next();
                                        h.close();
                                        cancelled.incrementAndGet();
                                    }
                                    check(alone.get(i), h.result(), cancel, "request " + n + " (" + h.method() + ")", failures);
                                } catch (RuntimeException e) {
                                    failures.add("request " + n + " failed: " + e);
                                }
                                progress.update(done.incrementAndGet(), total);
                            }
                            return null;
                        }));
                    }
                    for (Future<?> f : futures) {
                        f.get();
                    }
                } catch (Exception e) {
                    failures.add("a client thread failed: " + e);
                } finally {
                    clients.shutdownNow();
                    sampler.interrupt();
                }
                try {
                    sampler.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            Sample end = sample(t0, target, draft, done.get() - pool.size());
            samples.add(end);
            int endBlocks = target.kvCache().usedBlocks() + draft.kvCache().usedBlocks();
            if (endBlocks != 0) {
                failures.add(endBlocks + " KV blocks are still in use at the end");
            }
            if (end.backendBytes() != warmBytes) {
                failures.add("the backend holds " + end.backendBytes() + " activation bytes at the end, " + warmBytes + " after the warm-up");
            }
            List<Sample> ordered = new ArrayList<>(samples);
            ordered.sort(java.util.Comparator.comparingDouble(Sample::seconds));
            Sample half = ordered.get(ordered.size() / 2);
            // Outside the Java heap: the heap grows and shrinks as the collector sees fit, which says nothing about
            // leaks (the short run in verify once saw resident memory rise 71 MB in its second second).
            long secondMax = ordered.subList(ordered.size() / 2, ordered.size()).stream().mapToLong(Sample::outsideHeapBytes).max().orElse(0);
            long allowed = Math.max(32L << 20, half.outsideHeapBytes() * FLAT_FRACTION_PERCENT / 100);
            if (half.residentBytes() > 0 && secondMax - half.outsideHeapBytes() > allowed) {
                failures.add("resident memory outside the Java heap grew by " + (secondMax - half.outsideHeapBytes())
                        + " bytes over the second half" + (heapPreTouched() ? "" : " (the JVM ran without -XX:+AlwaysPreTouch, "
                        + "so heap pages committed earlier but first touched now count as growth too)"));
            }
            long peak = ordered.stream().mapToLong(Sample::residentBytes).max().orElse(0);
            return new Result(targetDir.getFileName().toString(), draftDir.getFileName().toString(), o, pool.size(), seconds,
                    cancelled.get(), warmBytes, end.backendBytes(), endBlocks, half.outsideHeapBytes(), secondMax, peak,
                    List.copyOf(ordered), List.copyOf(failures));
        }
    }

    private static void check(GenerationResult alone, GenerationResult got, boolean cancelled, String what, List<String> failures) {
        if (cancelled && got.finishReason() == FinishReason.CANCELLED) {
            int[] a = alone.generatedIds();
            int[] g = got.generatedIds();
            if (g.length > a.length || !Arrays.equals(a, 0, g.length, g, 0, g.length)) {
                failures.add(what + ": its tokens before the cancel are not a prefix of its run alone");
            }
            return;
        }
        if (!Arrays.equals(alone.generatedIds(), got.generatedIds()) || alone.finishReason() != got.finishReason()) {
            failures.add(what + ": its tokens differ from its run alone");
        }
    }

    private static Sample sample(long t0, LanguageModel target, LanguageModel draft, long finished) {
        return new Sample((System.nanoTime() - t0) / 1e9, MemorySnapshot.currentResidentBytes(),
                ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getCommitted(), target.backend().allocatedBytes(),
                target.kvCache().usedBlocks() + draft.kvCache().usedBlocks(),
                ManagementFactory.getThreadMXBean().getThreadCount(), finished);
    }

    public static ObjectNode toJson(Result r) {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("model", r.model());
        n.put("draft", r.draft());
        n.put("requests", r.options().requests());
        n.put("clients", r.options().clients());
        n.put("threads", r.options().threads());
        n.put("pool_size", r.poolSize());
        n.put("seconds", r.seconds());
        n.put("cancelled", r.cancelled());
        n.put("warm_backend_bytes", r.warmBackendBytes());
        n.put("end_backend_bytes", r.endBackendBytes());
        n.put("end_used_blocks", r.endUsedBlocks());
        n.put("second_half_start_outside_heap_bytes", r.secondHalfStartOutsideHeap());
        n.put("second_half_max_outside_heap_bytes", r.secondHalfMaxOutsideHeap());
        n.put("peak_resident_bytes", r.peakResident());
        n.put("passed", r.passed());
        ArrayNode failures = n.putArray("failures");
        r.failures().forEach(failures::add);
        ArrayNode samples = n.putArray("samples");
        for (Sample s : r.samples()) {
            ObjectNode e = samples.addObject();
            e.put("seconds", s.seconds());
            e.put("resident_bytes", s.residentBytes());
            e.put("heap_committed_bytes", s.heapCommittedBytes());
            e.put("backend_bytes", s.backendBytes());
            e.put("used_blocks", s.usedBlocks());
            e.put("jvm_threads", s.jvmThreads());
            e.put("finished", s.finished());
        }
        return n;
    }
}
