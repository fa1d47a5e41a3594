package dev.tandem.transformer.onnx;

/**
 * The shape of a BERT encoder, named as Hugging Face's {@code BertGraphShape} names it ({@code hidden_size},
 * {@code num_hidden_layers}, ...). {@link BertOnnxWeights} derives it from an ONNX graph, which has no
 * config.json beside it.
 *
 * @param layerNormEps the epsilon every LayerNorm adds to the variance, as the f32 the graph holds
 * @param hiddenAct    the feed-forward activation, in Hugging Face's spelling: "gelu" (exact, with erf),
 *                     "gelu_new" (tanh approximation) or "relu"
 */
public record BertGraphShape(int hiddenSize, int numHiddenLayers, int numAttentionHeads, int intermediateSize,
                         int vocabSize, int maxPositionEmbeddings, int typeVocabSize, float layerNormEps,
                         String hiddenAct) {

    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    /**
     * This shape as the encoder's {@link dev.tandem.transformer.config.BertConfig}.
     *
     * @throws dev.tandem.runtime.TandemException if the activation is not the exact GELU, the only one the encoder runs
     */
    public dev.tandem.transformer.config.BertConfig toEncoderConfig(String source) {
        if (!"gelu".equals(hiddenAct)) {
            throw new dev.tandem.runtime.TandemException(source + " uses the activation " + hiddenAct
                    + "; Tandem's encoder runs the exact GELU (\"gelu\") only.");
        }
        return new dev.tandem.transformer.config.BertConfig(vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize,
                maxPositionEmbeddings, typeVocabSize, layerNormEps);
    }
}
