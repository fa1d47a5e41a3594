package dev.tandem.runtime.archfixture;

import dev.tandem.decoding.FinishReason;
import dev.tandem.runtime.cpu.CpuBackend;

/**
 * Breaks the layering on purpose, twice (a runtime class naming a decoding class; and see
 * {@link dev.tandem.app.ArchitectureTest}'s fixture for internals): ArchitectureTest checks its rules
 * report it, so a rule that can never fail is caught.
 */
public final class ReachesUpward {
    public static Object reason() {
        return FinishReason.values()[0];
    }

    public static Class<?> backend() {
        return CpuBackend.class;
    }
}
