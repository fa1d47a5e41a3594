package dev.tandem.app;

import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import dev.tandem.runtime.Backends;
import org.junit.jupiter.api.Assumptions;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code generate --device}: cpu by default and by name; cuda on the host build of the kernels gives the same
 * greedy text; auto says what it chose; an unknown name is a usage error and an unusable device an error, each
 * in one sentence.
 */
class DeviceCliTest {

    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int exit = Main.run(args, new PrintWriter(out, true), new PrintWriter(err, true));
        return new String[] {Integer.toString(exit), out.toString(), err.toString()};
    }

    @Test
    void cpuByNameIsTheDefault() {
        String bard = TestModels.model("bard-s").toString();
        String[] byDefault = run("generate", "--model", bard, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "6");
        String[] byName = run("generate", "--model", bard, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "6",
                "--device", "cpu");
        assertEquals("0", byDefault[0], byDefault[2]);
        assertEquals("0", byName[0], byName[2]);
        assertEquals(byDefault[1], byName[1]);
    }

    @Test
    void anUnknownDeviceIsAUsageError() {
        String[] r = run("generate", "--model", TestModels.model("bard-s").toString(), "--prompt", "x", "--device", "quantum");
        assertEquals("2", r[0]);
        assertEquals("tandem: --device must be one of cpu, cuda or auto, but was \"quantum\".", lastLine(r[2]));
    }

    private static String lastLine(String text) {
        return text.strip().lines().reduce((a, b) -> b).orElse("");
    }

    @Test
    void anUnusableCudaIsOneSentenceAndAutoFallsBackToTheCpuSayingWhy() {
        String why = Backends.provider("cuda").unavailableReason();
        Assumptions.assumeTrue(why != null, "a CUDA device is usable here");
        String bard = TestModels.model("bard-s").toString();
        String[] r = run("generate", "--model", bard, "--prompt", "x", "--device", "cuda");
        assertEquals("1", r[0]);
        assertEquals("tandem: device \"cuda\" is not available: " + why, lastLine(r[2]));
        String[] auto = run("generate", "--model", bard, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "6",
                "--device", "auto");
        assertEquals("0", auto[0], auto[2]);
        assertTrue(auto[2].startsWith("device: cpu (no accelerator is usable (cuda: "), auto[2]);
    }

    @Test
    void cudaOnTheHostBuildGeneratesTheCpusGreedyText() {
        String path = System.getProperty("tandem.cuda.host.library", "");
        Assumptions.assumeTrue(!path.isEmpty() && Files.isRegularFile(Path.of(path)), "the host build of the CUDA kernels was not made: " + path);
        String bard = TestModels.model("bard-s").toString();
        String[] onCpu = run("generate", "--model", bard, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "8");
        System.setProperty("tandem.cuda.library", path);
        try {
            String[] onCuda = run("generate", "--model", bard, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "8",
                    "--device", "cuda");
            assertEquals("0", onCuda[0], onCuda[2]);
            assertEquals(onCpu[1], onCuda[1]);
            String[] auto = run("generate", "--model", bard, "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "8",
                    "--device", "auto");
            assertEquals(onCpu[1], auto[1]);
            assertTrue(auto[2].startsWith("device: cuda (cuda is available)"), auto[2]);
        } finally {
            System.clearProperty("tandem.cuda.library");
        }
    }

    @Test
    void theMethodsBenchRunsEveryModelOnTheChosenDevice() throws Exception {
        String path = System.getProperty("tandem.cuda.host.library", "");
        Assumptions.assumeTrue(!path.isEmpty() && Files.isRegularFile(Path.of(path)), "the host build of the CUDA kernels was not made: " + path);
        Path out = Files.createTempDirectory("methods-cuda").resolve("methods.json");
        System.setProperty("tandem.cuda.library", path);
        try {
            String[] r = run("bench", "--suite", "methods", "--device", "cuda", "--model", TestModels.model("bard-m").toString(),
                    "--drafts", TestModels.model("bard-s").toString(), "--threads", "1", "--repetitions", "1",
                    "--method-tokens", "4", "--methods", "speculative", "--gammas", "2", "--modes", "greedy",
                    "--prompt-count", "1", "--out", out.toString());
            assertEquals("0", r[0], r[2]);
            var json = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toFile());
            assertTrue(json.get("backend").asText().startsWith("cuda"), json.toString());
            assertTrue(r[1].contains("backend cuda"), r[1]);
            java.util.List<String> lines = r[1].lines().filter(l -> l.contains(" of plain ")).toList();
            assertEquals(3, lines.size(), r[1]); // plain, speculative gamma=2, speculative auto
            assertTrue(lines.get(0).contains("x1.00 of plain"), lines.get(0));
        } finally {
            System.clearProperty("tandem.cuda.library");
        }
    }
}
