package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** What a benchmark figure was measured on: CPU model, cores, memory, OS, JDK. */
public record MachineInfo(String cpuModel, int cores, long memoryBytes, long lastLevelCacheBytes, String os, String jdk) {

    public static MachineInfo current() {
        long memory = dev.tandem.runtime.HostMemory.totalBytes();
        return new MachineInfo(readCpuModel(), Runtime.getRuntime().availableProcessors(), memory, readLastLevelCache(),
                System.getProperty("os.name") + " " + System.getProperty("os.version") + " " + System.getProperty("os.arch"),
                System.getProperty("java.vm.name") + " " + Runtime.version());
    }

    /** The first "model name" of /proc/cpuinfo on Linux, else the OS architecture. */
    private static String readCpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).strip();
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux, or not readable: fall through
        }
        return "unknown CPU (" + System.getProperty("os.arch") + ")";
    }

    /**
     * The largest cache of CPU 0 as Linux's sysfs reports it (e.g. {@code 32768K}), or -1 when unknown.
     * A model whose weights fit in it is not bound by memory bandwidth.
     */
    private static long readLastLevelCache() {
        long largest = -1;
        Path caches = Path.of("/sys/devices/system/cpu/cpu0/cache");
        try (var dirs = Files.list(caches)) {
            for (Path index : dirs.filter(d -> d.getFileName().toString().startsWith("index")).toList()) {
                String size = Files.readString(index.resolve("size")).strip();
                long unit = size.endsWith("K") ? 1L << 10 : size.endsWith("M") ? 1L << 20 : 1;
                String digits = size.replaceAll("[^0-9]", "");
                if (!digits.isEmpty()) {
                    largest = Math.max(largest, Long.parseLong(digits) * unit);
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux, or not readable
        }
        return largest;
    }

    public String summary() {
        return String.format(Locale.ROOT, "%s, %d cores, %.1f GiB, %d MiB last-level cache, %s; %s", cpuModel, cores,
                memoryBytes / (double) (1L << 30), lastLevelCacheBytes >> 20, os, jdk);
    }

    public ObjectNode toJson() {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("cpu", cpuModel);
        n.put("cores", cores);
        n.put("memory_bytes", memoryBytes);
        n.put("last_level_cache_bytes", lastLevelCacheBytes);
        n.put("os", os);
        n.put("jdk", jdk);
        return n;
    }
}
