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

    @Override
    public Backend open(int threads) {
        return new CpuBackend(threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
    }
}
