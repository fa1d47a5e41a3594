package dev.tandem.transformer.config;

import java.nio.file.Path;
import java.util.List;

/**
 * The model author's sampling defaults from the optional {@code generation_config.json}. Every field
 * is null (the list empty) when the file or the key is absent, so callers can tell "unset" from a
 * value; merging with {@link ModelConfig} and the user's options is the caller's business.
 *
 * @param eosTokenIds       {@code eos_token_id} (an int or a list)
 * @param bosTokenId        {@code bos_token_id}
 * @param doSample          {@code do_sample}
 * @param temperature       {@code temperature}
 * @param topK              {@code top_k}
 * @param topP              {@code top_p}
 * @param minP              {@code min_p}
 * @param repetitionPenalty {@code repetition_penalty}
 * @param maxNewTokens      {@code max_new_tokens}
 */
public record GenerationConfig(List<Integer> eosTokenIds, Integer bosTokenId, Boolean doSample, Float temperature,
                               Integer topK, Float topP, Float minP, Float repetitionPenalty,
                               Integer maxNewTokens) {

    public static final String FILE = "generation_config.json";

    /** No file: everything unset. */
    public static final GenerationConfig EMPTY =
            new GenerationConfig(List.of(), null, null, null, null, null, null, null, null);

    public GenerationConfig {
        eosTokenIds = eosTokenIds == null ? List.of() : List.copyOf(eosTokenIds);
    }

    /**
     * Reads {@code modelDir/generation_config.json}; {@link #EMPTY} when the file is absent.
     *
     * @throws dev.tandem.runtime.TandemException when the directory is missing, the file is not valid
     *                                            JSON, or a field has the wrong type (naming the file and field)
     */
    public static GenerationConfig load(Path modelDir) {
        Path dir = ModelConfig.requireModelDirectory(modelDir);
        JsonFields g = JsonFields.read(dir.resolve(FILE), true);
        if (g == null) {
            return EMPTY;
        }
        Integer bos = g.intOrNull("bos_token_id");
        if (bos != null && bos < 0) {
            throw g.error("bos_token_id", "must not be negative, got " + bos);
        }
        return new GenerationConfig(
                g.intList("eos_token_id", List.of()),
                bos,
                g.boolOrNull("do_sample"),
                floatOrNull(g, "temperature"),
                g.intOrNull("top_k"),
                floatOrNull(g, "top_p"),
                floatOrNull(g, "min_p"),
                floatOrNull(g, "repetition_penalty"),
                g.intOrNull("max_new_tokens"));
    }

    private static Float floatOrNull(JsonFields g, String key) {
        Double d = g.doubleOrNull(key);
        return d == null ? null : d.floatValue();
    }
}
