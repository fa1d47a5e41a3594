package dev.tandem.transformer.weights;

import dev.tandem.runtime.DType;
import dev.tandem.runtime.Progress;
import dev.tandem.runtime.TandemException;
import dev.tandem.runtime.Tensor;
import dev.tandem.runtime.quant.QuantBlocks;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.config.GenerationConfig;
import dev.tandem.transformer.config.ModelConfig;
import dev.tandem.transformer.config.RopeScaling;
import dev.tandem.transformer.tokenizer.GgufTokenizer;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.IntStream;

/**
 * Writes a Hugging Face model directory ({@code config.json}, safetensors, {@code tokenizer.json}) as one GGUF file
 * llama.cpp reads: tensors under llama.cpp's names, Llama and Mistral q/k rows in llama.cpp's rope order
 * ({@link RopeRowOrder}), the hyperparameters under {@code {arch}.*}, the tokenizer under {@code tokenizer.ggml.*}
 * ({@link GgufTokenizer#toMetadata}). 1-D tensors (norm weights, biases) stay f32, as llama.cpp keeps them; every
 * other tensor takes the type {@link Options#typeOf} picks and is encoded by {@link Options#encoder}, a row block at
 * a time from the memory-mapped source, so memory use does not grow with the model.
 */
public final class GgufExport {

    /** The most values converted at once (4 MiB of floats). */
    private static final int CHUNK_VALUES = 1 << 20;

    private GgufExport() {
    }

    /**
     * Encodes {@code rows} rows of {@code width} values ({@code values[0 .. rows·width)}, row-major) as {@code type}
     * into {@code out} (little-endian, exactly {@code type.bytesFor(rows·width)} bytes).
     */
    @FunctionalInterface
    public interface Encoder {
        void encode(DType type, float[] values, int rows, int width, ByteBuffer out);

        /** f32, f16 and bf16 (rounding to nearest even); a block format needs an encoder of its own. */
        Encoder FLOATS = (type, values, rows, width, out) -> {
            int n = rows * width;
            switch (type) {
                case F32 -> {
                    for (int i = 0; i < n; i++) {
                        out.putFloat(values[i]);
                    }
                }
                case F16 -> {
                    for (int i = 0; i < n; i++) {
                        out.putShort(Float.floatToFloat16(values[i]));
                    }
                }
                case BF16 -> {
                    for (int i = 0; i < n; i++) {
                        out.putShort(DType.floatToBf16(values[i]));
                    }
                }
                default -> throw new IllegalArgumentException("no encoder for " + type.lowerName()
                        + " was given (GgufExport.Options.withEncoder)");
            }
        };

        /**
         * f32, f16 and bf16 as {@link #FLOATS}; the block formats by {@link QuantBlocks#quantize}, the rows in parallel
         * (a row's blocks depend on that row alone, so the bytes are the same however the rows are shared out).
         */
        Encoder ANY = (type, values, rows, width, out) -> {
            if (!type.isQuantized()) {
                FLOATS.encode(type, values, rows, width, out);
                return;
            }
            long rowBytes = type.bytesFor(width);
            MemorySegment dst = MemorySegment.ofBuffer(out.slice());
            try {
                IntStream.range(0, rows).parallel().forEach(r ->
                        QuantBlocks.quantize(type, values, r * width, width, dst, r * rowBytes));
            } catch (IllegalArgumentException e) {
                throw new TandemException("a matrix cannot be written as " + type.lowerName() + ": " + e.getMessage() + ".", e);
            }
            out.position(out.position() + Math.toIntExact(rows * rowBytes));
        };
    }

    /**
     * The type a matrix with rows {@code width} wide is written in when {@code wanted} was asked for: {@code wanted}
     * when its rows are whole blocks of it, else q8_0 for a K-quant when they are whole blocks of 32, else f16
     * (llama-quantize falls back the same way, to formats Tandem does not have).
     */
    public static DType typeFor(DType wanted, long width) {
        if (width % wanted.blockElements() == 0) {
            return wanted;
        }
        if ((wanted == DType.Q4_K || wanted == DType.Q6_K) && width % DType.Q8_0.blockElements() == 0) {
            return DType.Q8_0;
        }
        return DType.F16;
    }

    /** Which type a 2-D tensor is written in, by its GGUF name and Tandem shape ({rows, width}). */
    @FunctionalInterface
    public interface TypeChoice {
        DType typeOf(String ggufName, long[] shape);
    }

    /**
     * @param typeOf  the type of each matrix (1-D tensors are always f32)
     * @param encoder turns rows of floats into bytes of the chosen type
     * @param name    {@code general.name}; null: the directory's name
     */
    public record Options(TypeChoice typeOf, Encoder encoder, String name) {
        public Options {
            Objects.requireNonNull(typeOf, "typeOf");
            Objects.requireNonNull(encoder, "encoder");
        }

        /** Every matrix in {@code type} (f32, f16 or bf16). */
        public static Options floats(DType type) {
            return new Options((n, s) -> type, Encoder.FLOATS, null);
        }

        /** Every matrix in {@code type}, any of Tandem's types, a block format falling back by {@link #typeFor}. */
        public static Options ofType(DType type) {
            return new Options((n, s) -> typeFor(type, s[1]), Encoder.ANY, null);
        }

        public Options withTypes(TypeChoice typeOf) {
            return new Options(typeOf, encoder, name);
        }

        public Options withEncoder(Encoder encoder) {
            return new Options(typeOf, encoder, name);
        }

        public Options withName(String name) {
            return new Options(typeOf, encoder, name);
        }
    }

    /** What was written. */
    public record Result(Path file, int tensors, long bytes, DType fileType) {
    }

    /**
     * Writes the model in {@code modelDir} to {@code out} (replacing it; nothing is left behind on failure).
     *
     * @param progress sees bytes written of the file's size
     * @throws TandemException when the directory cannot be read, a tensor has no GGUF name, its rows do not fit the
     *                         chosen block format, the tokenizer cannot be expressed in GGUF, or writing fails
     */
    public static Result export(Path modelDir, Path out, Options options, Progress progress) {
        ModelConfig config = ModelConfig.load(modelDir);
        GenerationConfig generation = GenerationConfig.load(modelDir);
        try (WeightStore weights = WeightStore.open(modelDir, false)) {
            Map<String, GgufValue> metadata = new LinkedHashMap<>();
            List<GgufWriter.Tensor> tensors = new ArrayList<>();
            Map<DType, Long> bytesByType = new LinkedHashMap<>();
            for (String hf : weights.names()) {
                String gguf = GgufCheckpoint.ggufName(hf);
                if (gguf == null) {
                    if (hf.endsWith("rotary_emb.inv_freq")) {
                        continue; // recomputed from the config, as llama.cpp's converter drops it too
                    }
                    throw new TandemException("tensor \"" + hf + "\" of " + modelDir + " has no llama.cpp name, so the model"
                            + " cannot be written as GGUF.");
                }
                Tensor source = weights.get(hf);
                long[] shape = source.shape();
                DType type = shape.length == 1 ? DType.F32 : options.typeOf().typeOf(gguf, shape);
                if (shape.length > 2) {
                    throw new TandemException("tensor \"" + hf + "\" of " + modelDir + " has " + shape.length
                            + " dimensions; only vectors and matrices are written to GGUF.");
                }
                long width = shape[shape.length - 1];
                if (width % type.blockElements() != 0) {
                    throw new TandemException("tensor \"" + hf + "\" has rows of " + width + " values, not a whole number of "
                            + type.lowerName() + " blocks (" + type.blockElements() + " values); choose another type for it.");
                }
                int heads = !GgufCheckpoint.ropeRowsReordered(config.modelType()) ? 0
                        : hf.endsWith(".self_attn.q_proj.weight") || hf.endsWith(".self_attn.q_proj.bias") ? config.numHeads()
                        : hf.endsWith(".self_attn.k_proj.weight") || hf.endsWith(".self_attn.k_proj.bias") ? config.numKvHeads()
                        : 0;
                GgufWriter.Tensor t = new GgufWriter.Tensor(gguf, type, shape,
                        sink -> writeRows(source, type, heads, options.encoder(), sink));
                tensors.add(t);
                bytesByType.merge(type, t.byteSize(), Long::sum);
            }
            DType fileType = DType.F32;
            for (Map.Entry<DType, Long> e : bytesByType.entrySet()) {
                if (e.getValue() > bytesByType.getOrDefault(fileType, -1L)) {
                    fileType = e.getKey();
                }
            }
            String name = options.name() != null ? options.name() : String.valueOf(modelDir.toAbsolutePath().normalize().getFileName());
            hparams(metadata, config, name, fileType);
            if (config.ropeScaling() != null && config.ropeScaling().type().equals(RopeScaling.LLAMA3)) {
                tensors.add(ropeFreqs(config));
            }
            Integer bos = generation.bosTokenId() != null ? generation.bosTokenId() : config.bosTokenId();
            List<Integer> eos = !generation.eosTokenIds().isEmpty() ? generation.eosTokenIds() : config.eosTokenIds();
            metadata.putAll(GgufTokenizer.toMetadata(ModelLoader.tokenizerFile(modelDir), config.vocabSize(), bos, eos));
            GgufWriter.write(out, metadata, tensors, progress);
            long bytes = 0;
            for (GgufWriter.Tensor t : tensors) {
                bytes += t.byteSize();
            }
            return new Result(out, tensors.size(), bytes, fileType);
        }
    }

    /** llama.cpp's {@code llama_ftype} of a file whose bulk is {@code type} (for {@code general.file_type}). */
    static int fileType(DType type) {
        return switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            case Q4_K -> 15; // Q4_K_M
            case Q6_K -> 18;
            case BF16 -> 32;
        };
    }

    private static void hparams(Map<String, GgufValue> m, ModelConfig c, String name, DType fileType) {
        // llama.cpp has no "mistral" architecture for these models: its converter writes them as llama
        String arch = c.modelType().equals("mistral") ? "llama" : c.modelType();
        String p = arch + ".";
        m.put(GgufCheckpoint.ARCHITECTURE, GgufValue.string(arch));
        m.put("general.name", GgufValue.string(name));
        m.put("general.file_type", GgufValue.u32(fileType(fileType)));
        m.put("general.quantization_version", GgufValue.u32(2));
        m.put(p + "vocab_size", GgufValue.u32(c.vocabSize()));
        m.put(p + "context_length", GgufValue.u32(c.maxContext()));
        m.put(p + "embedding_length", GgufValue.u32(c.hiddenSize()));
        m.put(p + "block_count", GgufValue.u32(c.numLayers()));
        m.put(p + "feed_forward_length", GgufValue.u32(c.intermediateSize()));
        m.put(p + "attention.head_count", GgufValue.u32(c.numHeads()));
        m.put(p + "attention.head_count_kv", GgufValue.u32(c.numKvHeads()));
        m.put(p + "attention.key_length", GgufValue.u32(c.headDim()));
        m.put(p + "attention.value_length", GgufValue.u32(c.headDim()));
        m.put(p + "rope.dimension_count", GgufValue.u32(c.headDim()));
        // f32, as llama.cpp reads them; Tandem computes with both as floats, so nothing is lost
        m.put(p + "attention.layer_norm_rms_epsilon", GgufValue.f32((float) c.rmsNormEps()));
        m.put(p + "rope.freq_base", GgufValue.f32((float) c.ropeTheta()));
        RopeScaling s = c.ropeScaling();
        if (s != null && s.type().equals(RopeScaling.LINEAR)) {
            m.put(p + "rope.scaling.type", GgufValue.string("linear"));
            m.put(p + "rope.scaling.factor", GgufValue.f32((float) s.factor()));
        } else if (s != null) {
            m.put(GgufCheckpoint.TandemKeys.LLAMA3_FACTOR, GgufValue.f64(s.factor()));
            m.put(GgufCheckpoint.TandemKeys.LLAMA3_LOW_FREQ_FACTOR, GgufValue.f64(s.lowFreqFactor()));
            m.put(GgufCheckpoint.TandemKeys.LLAMA3_HIGH_FREQ_FACTOR, GgufValue.f64(s.highFreqFactor()));
            m.put(GgufCheckpoint.TandemKeys.LLAMA3_ORIGINAL_CONTEXT, GgufValue.u32(s.originalMaxPositionEmbeddings()));
        }
    }

    /**
     * llama.cpp's Llama 3.1 rope scaling: per frequency the divisor of its inverse frequency
     * ({@code LlamaModel.generate_extra_tensors} in convert_hf_to_gguf.py), in f32.
     */
    private static GgufWriter.Tensor ropeFreqs(ModelConfig c) {
        float[] plain = ModelConfig.defaultInverseFrequencies(c.headDim(), c.ropeTheta());
        float[] scaled = c.ropeInverseFrequencies();
        float[] factors = new float[plain.length];
        for (int i = 0; i < plain.length; i++) {
            factors[i] = plain[i] / scaled[i];
        }
        return new GgufWriter.Tensor("rope_freqs.weight", DType.F32, new long[] {factors.length}, sink -> {
            ByteBuffer b = ByteBuffer.allocate(factors.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (float f : factors) {
                b.putFloat(f);
            }
            sink.put(b.flip());
        });
    }

    /**
     * Streams {@code source}'s rows, as {@code type}, into {@code sink}; with {@code heads} &gt; 0 each head's rows in
     * llama.cpp's rope order.
     */
    private static void writeRows(Tensor source, DType type, int heads, Encoder encoder, GgufWriter.Sink sink)
            throws java.io.IOException {
        long[] shape = source.shape();
        long rows = shape.length == 1 ? 1 : shape[0];
        int width = (int) (shape.length == 1 ? shape[0] : shape[1]);
        long perm = shape.length == 1 ? shape[0] : rows; // what the rope order reorders: a bias's values, a matrix's rows
        int chunkRows = (int) Math.max(1, Math.min(rows, CHUNK_VALUES / Math.max(1, width)));
        float[] values = new float[chunkRows * width];
        ByteBuffer bytes = ByteBuffer.allocate((int) type.bytesFor((long) chunkRows * width)).order(ByteOrder.LITTLE_ENDIAN);
        MemorySegment seg = source.segment();
        for (long r0 = 0; r0 < rows; r0 += chunkRows) {
            int n = (int) Math.min(chunkRows, rows - r0);
            for (int i = 0; i < n * width; i++) {
                long row = shape.length == 1 ? 0 : r0 + i / width;
                long col = shape.length == 1 ? i : i % width;
                long at = shape.length == 1 ? sourceRow(col, perm, heads) : sourceRow(row, perm, heads) * width + col;
                values[i] = source.dtype().read(seg, at);
            }
            bytes.clear();
            encoder.encode(type, values, n, width, bytes);
            if (bytes.position() != type.bytesFor((long) n * width)) {
                throw new IllegalStateException("the " + type.lowerName() + " encoder wrote " + bytes.position()
                        + " bytes for " + n + " rows of " + width + " values");
            }
            sink.put(bytes.flip());
        }
    }

    private static long sourceRow(long r, long rows, int heads) {
        return heads == 0 ? r : RopeRowOrder.hfRow(r, rows, heads);
    }
}
