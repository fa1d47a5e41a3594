package dev.tandem.app;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.kv.KvCache;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.ModelConfig;

import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Byte sizes as users type them: {@code 1073741824}, {@code 512M}, {@code 2G}, {@code 1.5GiB}. */
final class Sizes {
    private static final Pattern SIZE = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*([kmgt]?)(?:i?b)?");

    private Sizes() {}

    /** KV cache memory for {@code sequences} full contexts of the model at {@code model} in {@code dtype}, at most 1 GiB. */
    static long kvMemoryFor(Path model, int sequences, DType dtype) {
        ModelConfig config = ModelLoader.config(model);
        long perToken = KvCache.bytesPerBlock(config.numLayers(), config.numKvHeads(), config.headDim(), 1, dtype);
        return Math.min(1L << 30, (long) sequences * config.maxContext() * perToken);
    }

    /**
     * Parses a size with an optional binary unit (K, M, G, T = 2^10 … 2^40; "KiB", "MB" and the like
     * mean the same), rounding down to whole bytes.
     *
     * @throws IllegalArgumentException naming {@code option} if the text is not a positive size
     */
    static long parseBytes(String text, String option) {
        Matcher m = SIZE.matcher(text.strip().toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            throw new UsageException(option + " takes a size such as 512M or 2G, but was \"" + text + "\".");
        }
        int shift = switch (m.group(2)) {
            case "k" -> 10;
            case "m" -> 20;
            case "g" -> 30;
            case "t" -> 40;
            default -> 0;
        };
        double value = Double.parseDouble(m.group(1)) * Math.pow(2, shift);
        if (value < 1 || value >= Long.MAX_VALUE) {
            throw new UsageException(option + " must be at least one byte and below 8 EiB, but was \"" + text + "\".");
        }
        return (long) value;
    }
}
