package dev.tandem.transformer.weights;

import java.lang.foreign.MemorySegment;

/**
 * The order of the rows of a Llama q or k projection. Hugging Face's checkpoints rotate each head's two halves
 * ({@code rotate_half}: element i pairs with i + d/2); llama.cpp's converter reorders the rows of each head so that
 * the pairs sit side by side (its rope pairs 2i with 2i + 1): GGUF row {@code 2i + j} of a head is Hugging Face row
 * {@code j·d/2 + i} ({@code LlamaModel.permute} in convert_hf_to_gguf.py). Qwen2 and Qwen3 files are not reordered
 * (llama.cpp runs their rope in the halves layout).
 *
 * <p>A row here is any run of bytes: a matrix's row (whole blocks, for a quantized type) or a bias's element, so
 * reordering never decodes a value.
 */
final class RopeRowOrder {
    private RopeRowOrder() {
    }

    /** The Hugging Face row that GGUF row {@code r} of {@code rows} rows in {@code heads} heads holds. */
    static long hfRow(long r, long rows, int heads) {
        if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0) {
            throw new IllegalArgumentException(rows + " rows are not " + heads + " heads of an even size");
        }
        long headRows = rows / heads;
        long within = r % headRows;
        return r - within + (within % 2) * (headRows / 2) + within / 2;
    }

    /** Copies {@code rows} rows of {@code rowBytes} in llama.cpp's order from {@code gguf} to {@code hf} in Hugging Face's. */
    static void copyToHfOrder(MemorySegment gguf, MemorySegment hf, long rows, long rowBytes, int heads) {
        for (long r = 0; r < rows; r++) {
            MemorySegment.copy(gguf, r * rowBytes, hf, hfRow(r, rows, heads) * rowBytes, rowBytes);
        }
    }
}
