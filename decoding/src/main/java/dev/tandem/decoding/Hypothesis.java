package dev.tandem.decoding;

/**
 * One finished hypothesis of a search: an entry of beam search's n-best list
 * ({@link GenerationResult#hypotheses()}, best first).
 *
 * @param generatedIds the tokens after the prompt, with a final EOS token when it ended on one
 * @param text         its text, as a result's (without the EOS token's text, cut before a stop string)
 * @param score        what the search ranked it by: the sum of its tokens' processed log-probabilities divided
 *                     by (number of generated tokens)^length-penalty
 * @param logprob      the sum of its tokens' log-probabilities under the model's raw distribution
 * @param finishReason why it ended (an EOS token, a stop string, the token limit or the context)
 * @param group        its group in diverse beam search (0 in plain beam search)
 */
public record Hypothesis(int[] generatedIds, String text, double score, double logprob, FinishReason finishReason, int group) {
}
