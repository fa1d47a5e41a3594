package dev.tandem.app;

import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** {@code generate --device}: cpu by default and by name; any other name is a usage error in one sentence. */
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
    void anotherDeviceIsAUsageError() {
        String[] r = run("generate", "--model", TestModels.model("bard-s").toString(), "--prompt", "x", "--device", "cuda");
        assertEquals("2", r[0]);
        String last = r[2].strip().lines().reduce((a, b) -> b).orElse("");
        assertEquals("tandem: --device must be one of cpu, but was \"cuda\".", last);
    }
}
