package dev.tandem.app.bench;

import dev.tandem.runtime.Progress;
import dev.tandem.transformer.TestModels;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The soak test's short version (issue 13): 112 generations from 16 threads through one Engine, every
 * lossless method, some cancelled; at the end no KV block in use, the backend's activation bytes back to
 * their post-warm-up figure, resident memory flat over the second half, every result its solo run's.
 * The long run is {@code ./tandem bench --suite soak} (docs/reliability.md).
 */
class SoakRunTest {

    @Test
    void aShortSoakEndsWithEveryBlockFreeEveryByteBackAndEveryResultItsSoloRun() {
        SoakRun.Result r = SoakRun.run(TestModels.model("bard-m"), TestModels.model("bard-s"), new SoakRun.Options(112, 16, 2),
                Progress.NONE);
        assertTrue(r.passed(), String.join("\n", r.failures()));
        assertEquals(0, r.endUsedBlocks());
        assertEquals(r.warmBackendBytes(), r.endBackendBytes());
        assertTrue(r.cancelled() > 0, "some requests were cancelled");
        assertTrue(r.samples().size() >= 2);
    }
}
