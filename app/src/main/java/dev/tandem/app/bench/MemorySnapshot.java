package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.transformer.LanguageModel;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * Where a loaded model's memory is, taken while it is still open: the Java heap (small: logits and
 * bookkeeping), the KV cache and the memory-mapped weights (both off-heap), and the process's resident
 * memory as Linux reports it. {@code offHeapBytes} is resident memory outside the committed heap — an
 * estimate that covers mapped weight pages actually touched, the KV cache, activations and the JVM's
 * own native memory.
 */
public record MemorySnapshot(long heapUsedBytes, long heapCommittedBytes, long heapMaxBytes, long kvCacheBytes,
                             long weightsMappedBytes, long residentBytes, long peakResidentBytes) {

    public static MemorySnapshot of(LanguageModel model) {
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        return new MemorySnapshot(heap.getUsed(), heap.getCommitted(), heap.getMax(), model.kvCache().totalBytes(),
                weightFileBytes(model.directory()), procStatus("VmRSS:"), procStatus("VmHWM:"));
    }

    /** Resident memory outside the committed heap, or -1 where the OS does not say. */
    public long offHeapBytes() {
        return residentBytes < 0 ? -1 : Math.max(0, residentBytes - heapCommittedBytes);
    }

    /** The weight files' bytes: a directory's safetensors, or a GGUF file's size. */
    private static long weightFileBytes(Path dir) {
        if (Files.isRegularFile(dir)) {
            try {
                return Files.size(dir);
            } catch (IOException e) {
                return -1;
            }
        }
        try (Stream<Path> files = Files.list(dir)) {
            long total = 0;
            for (Path f : files.filter(p -> p.getFileName().toString().endsWith(".safetensors")).toList()) {
                total += Files.size(f);
            }
            return total;
        } catch (IOException e) {
            return -1;
        }
    }

    /** A "kB" line of /proc/self/status in bytes, or -1 off Linux. */
    /** Resident memory of this process (VmRSS), or -1 where the OS does not say. */
    static long currentResidentBytes() {
        return procStatus("VmRSS:");
    }

    private static long procStatus(String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(key)) {
                    return Long.parseLong(line.substring(key.length()).replace("kB", "").strip()) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return -1;
    }

    public ObjectNode toJson() {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("heap_used_bytes", heapUsedBytes);
        n.put("heap_committed_bytes", heapCommittedBytes);
        n.put("heap_max_bytes", heapMaxBytes);
        n.put("off_heap_bytes", offHeapBytes());
        n.put("kv_cache_bytes", kvCacheBytes);
        n.put("weights_mapped_bytes", weightsMappedBytes);
        n.put("process_resident_bytes", residentBytes);
        n.put("process_peak_resident_bytes", peakResidentBytes);
        return n;
    }
}
