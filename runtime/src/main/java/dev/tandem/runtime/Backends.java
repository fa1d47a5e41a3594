package dev.tandem.runtime;

import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** Finds a {@link BackendProvider} by name and opens backends from it. */
public final class Backends {
    /** The backend models run on unless told otherwise. */
    public static final String DEFAULT = "cpu";
    /** The name that picks the first usable accelerator, else the CPU ({@link #choose}). */
    public static final String AUTO = "auto";

    /**
     * What {@link #AUTO} chose: the provider's name, and one sentence saying why (which accelerator, or why
     * none could be used).
     */
    public record Choice(String name, String why) {
    }

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
        throw new TandemException("unknown device \"" + name + "\"; this build has: " + String.join(", ", names()) + " (or auto).");
    }

    /**
     * The provider {@code name} stands for: {@link #AUTO} picks the first provider other than the CPU that
     * can run here, in service-file order, else the CPU; any other name stands for itself.
     */
    public static Choice choose(String name) {
        if (!AUTO.equals(name)) {
            return new Choice(name, "asked for by name");
        }
        List<String> unusable = new ArrayList<>();
        for (BackendProvider p : providers()) {
            if (p.name().equals(DEFAULT)) {
                continue;
            }
            String why = p.unavailableReason();
            if (why == null) {
                return new Choice(p.name(), p.name() + " is available");
            }
            unusable.add(p.name() + ": " + why.replaceAll("\\.$", ""));
        }
        return new Choice(DEFAULT, unusable.isEmpty() ? "this build has no accelerator"
                : "no accelerator is usable (" + String.join("; ", unusable) + ")");
    }

    /**
     * A new backend from the provider called {@code name} ({@link #AUTO}: the one {@link #choose} picks),
     * with {@code threads} host threads (0 = all processors).
     *
     * @throws TandemException when there is no such provider or it cannot run here
     */
    public static Backend open(String name, int threads) {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0, got " + threads);
        }
        BackendProvider p = provider(choose(name).name());
        String why = p.unavailableReason();
        if (why != null) {
            throw new TandemException("device \"" + name + "\" is not available: " + why);
        }
        return p.open(threads);
    }
}
