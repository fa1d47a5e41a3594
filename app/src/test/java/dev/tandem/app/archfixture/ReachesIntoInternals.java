package dev.tandem.app.archfixture;

import dev.tandem.runtime.cpu.CpuBackend;
import dev.tandem.transformer.llama.LlamaModel;

/** Uses two modules' internals on purpose, so ArchitectureTest can check its rules report it. */
public final class ReachesIntoInternals {
    public static Class<?>[] internals() {
        return new Class<?>[] {CpuBackend.class, LlamaModel.class};
    }
}
