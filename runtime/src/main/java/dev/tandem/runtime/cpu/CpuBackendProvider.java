package dev.tandem.runtime.cpu;

import dev.tandem.runtime.Backend;
import dev.tandem.runtime.BackendProvider;

/** {@code cpu}: the Vector API backend on this machine's cores; always available. */
public final class CpuBackendProvider implements BackendProvider {

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public String unavailableReason() {
        return null;
    }

    private static final System.Logger LOG = System.getLogger("dev.tandem.runtime");

    /**
     * A CPU backend of {@code threads} threads (0 = every processor), at most the processor count: more
     * threads than processors only take turns on them (decoding 100–500× slower, the machine's load in the
     * hundreds), so a larger request is capped, with a warning on the {@code dev.tandem.runtime} logger.
     * {@code new CpuBackend(n)} is not capped (tests run thread counts above the processors on purpose).
     */
    @Override
    public Backend open(int threads) {
        int processors = Runtime.getRuntime().availableProcessors();
        if (threads > processors) {
            LOG.log(System.Logger.Level.WARNING, "asked for " + threads + " CPU threads but this machine has "
                    + processors + " processors; using " + processors + ".");
            threads = processors;
        }
        return new CpuBackend(threads > 0 ? threads : processors);
    }
}
