package dev.tandem.runtime;

import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** Finds a {@link BackendProvider} by name and opens backends from it. */
public final class Backends {
    /** The backend models run on unless told otherwise. */
    public static final String DEFAULT = "cpu";

    private Backends() {
    }

    /** Every provider on the class path, in the order the service files list them. */
    public static List<BackendProvider> providers() {
        List<BackendProvider> out = new ArrayList<>();
        for (BackendProvider p : ServiceLoader.load(BackendProvider.class, Backends.class.getClassLoader())) {
            out.add(p);
        }
        return out;
    }

    /** The names of every provider, available here or not. */
    public static List<String> names() {
        return providers().stream().map(BackendProvider::name).toList();
    }

    /**
     * The provider called {@code name}.
     *
     * @throws TandemException when there is none of that name
     */
    public static BackendProvider provider(String name) {
        for (BackendProvider p : providers()) {
            if (p.name().equals(name)) {
                return p;
            }
        }
        throw new TandemException("unknown device \"" + name + "\"; this build has: " + String.join(", ", names()) + ".");
    }

    /**
     * A new backend from the provider called {@code name}, with {@code threads} host threads (0 = all
     * processors).
     *
     * @throws TandemException when there is no such provider or it cannot run here
     */
    public static Backend open(String name, int threads) {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0, got " + threads);
        }
        BackendProvider p = provider(name);
        String why = p.unavailableReason();
        if (why != null) {
            throw new TandemException("device \"" + name + "\" is not available: " + why);
        }
        return p.open(threads);
    }
}
