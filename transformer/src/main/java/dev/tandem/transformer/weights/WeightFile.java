package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Tensor;

import java.nio.file.Path;
import java.util.Set;

/**
 * A file of weights as {@link WeightStore} serves them, under the names the model asks for: a safetensors file
 * (its own names) or a GGUF checkpoint (llama.cpp's names mapped to Hugging Face's, {@link GgufCheckpoint}).
 */
public interface WeightFile extends AutoCloseable {

    Path path();

    /** Every tensor name, in the file's order. */
    Set<String> names();

    /**
     * Tensor {@code name} as the model computes with it, valid until {@link #close()}.
     *
     * @throws dev.tandem.runtime.TandemException when there is no such tensor or its type cannot be served
     */
    Tensor tensor(String name);

    /** The type the file stores {@code name} in (a served tensor may be widened), or null when Tandem cannot serve it. */
    DType storedType(String name);

    /** The bytes {@code name} takes in the file (0 when its type cannot be served). */
    long storedBytes(String name);

    /** Frees the mapping and any copies; idempotent. */
    @Override
    void close();
}
