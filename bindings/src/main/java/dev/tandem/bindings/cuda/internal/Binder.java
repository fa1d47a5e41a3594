package dev.tandem.bindings.cuda.internal;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.HashSet;
import java.util.Set;

/**
 * Binds the functions of one native library to downcall handles, as jextract's generated code does
 * ({@code findOrThrow} then {@code Linker.downcallHandle}), but per library instance rather than per class,
 * so that one process can bind NVIDIA's library and the host build side by side. A required symbol that is
 * missing throws {@link MissingSymbolException}; an optional one gives a null handle, and
 * {@link #bound()} says which symbols were found.
 */
final class Binder {
    private final Linker linker = Linker.nativeLinker();
    private final SymbolLookup lookup;
    private final Set<String> bound = new HashSet<>();

    Binder(SymbolLookup lookup) {
        this.lookup = lookup;
    }

    /** The handle of {@code name}; throws {@link MissingSymbolException} when the library lacks it. */
    MethodHandle required(String name, FunctionDescriptor descriptor) {
        MethodHandle handle = optional(name, descriptor);
        if (handle == null) {
            throw new MissingSymbolException(name);
        }
        return handle;
    }

    /** The handle of {@code name}, or null when the library lacks it. */
    @SuppressWarnings("restricted") // this layer is where native access is meant to happen
    MethodHandle optional(String name, FunctionDescriptor descriptor) {
        MemorySegment address = lookup.find(name).orElse(null);
        if (address == null) {
            return null;
        }
        bound.add(name);
        return linker.downcallHandle(address, descriptor);
    }

    /** The symbols found so far. */
    Set<String> bound() {
        return Set.copyOf(bound);
    }

    /** What a raw downcall of an optional function that the library lacks throws (jextract's wording). */
    static UnsatisfiedLinkError unresolved(String name) {
        return new UnsatisfiedLinkError("unresolved symbol: " + name);
    }
}
