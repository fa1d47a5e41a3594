package dev.tandem.decoding;

/** Token counts of one generation. */
public record Usage(int promptTokens, int completionTokens) {
    public int totalTokens() {
        return promptTokens + completionTokens;
    }
}
