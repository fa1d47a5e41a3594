package dev.tandem.app.bench;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/** What a benchmark figure was measured on: CPU model, cores, memory, OS, JDK. */
public record MachineInfo(String cpuModel, int cores, long memoryBytes, String os, String jdk) {

    public static MachineInfo current() {
        long memory = ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os
                ? os.getTotalMemorySize()
                : -1;
        return new MachineInfo(readCpuModel(), Runtime.getRuntime().availableProcessors(), memory,
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

    public String summary() {
        return String.format(Locale.ROOT, "%s, %d cores, %.1f GiB, %s; %s", cpuModel, cores,
                memoryBytes / (double) (1L << 30), os, jdk);
    }

    public ObjectNode toJson() {
        ObjectNode n = JsonNodeFactory.instance.objectNode();
        n.put("cpu", cpuModel);
        n.put("cores", cores);
        n.put("memory_bytes", memoryBytes);
        n.put("os", os);
        n.put("jdk", jdk);
        return n;
    }
}
