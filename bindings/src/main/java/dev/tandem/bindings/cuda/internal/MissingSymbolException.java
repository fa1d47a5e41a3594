package dev.tandem.bindings.cuda.internal;

/** A required function that the library being bound does not export; {@link #symbol()} names it. */
public final class MissingSymbolException extends RuntimeException {
    private final String symbol;

    MissingSymbolException(String symbol) {
        super("unresolved symbol: " + symbol, null, false, false);
        this.symbol = symbol;
    }

    /** The C function the library lacks. */
    public String symbol() {
        return symbol;
    }
}
