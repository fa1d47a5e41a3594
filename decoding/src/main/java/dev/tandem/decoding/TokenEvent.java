package dev.tandem.decoding;

import dev.tandem.decoding.sampling.TokenLogprob;

import java.util.List;

/**
 * One generated token as it streams out.
 *
 * @param index       0-based index among the generated tokens
 * @param token       the token id
 * @param textDelta   text that became final with this token (may be empty: held-back partial
 *                    UTF-8 or a possible stop-string prefix is released later)
 * @param logprob     log-probability of the token under the model's raw distribution, or NaN
 *                    when logprobs were not requested
 * @param topLogprobs the most likely tokens at this step, when requested (else empty)
 */
public record TokenEvent(int index, int token, String textDelta, float logprob, List<TokenLogprob> topLogprobs) {
}
