package dev.tandem.runtime;

/**
 * Makes backends of one kind, found by {@link #name()} ({@code cpu}, later {@code cuda}). Providers are
 * listed in {@code META-INF/services/dev.tandem.runtime.BackendProvider} and looked up through
 * {@link Backends}; loading a provider's class must never fail, even where its device is missing.
 */
public interface BackendProvider {

    /** The name users pick it by ({@code --device NAME}): lower case, no spaces. */
    String name();

    /** Null when a backend can be opened here, else one sentence saying what is missing. */
    String unavailableReason();

    /**
     * A new backend.
     *
     * @param threads host threads it may use (0 = all processors)
     * @throws TandemException when {@link #unavailableReason()} is not null
     */
    Backend open(int threads);
}
