package dev.tandem.transformer.chat;

import java.util.Objects;

/**
 * One message of a conversation as chat templates read it ({@code message['role']},
 * {@code message['content']}).
 *
 * @param role    {@code system}, {@code user}, {@code assistant}, {@code tool} or whatever the template knows
 * @param content the message text (may be empty, never null)
 */
public record ChatMessage(String role, String content) {
    public ChatMessage {
        Objects.requireNonNull(role, "role");
        Objects.requireNonNull(content, "content");
        if (role.isBlank()) {
            throw new IllegalArgumentException("a chat message's role must not be empty.");
        }
    }

    public static ChatMessage system(String content) {
        return new ChatMessage("system", content);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content);
    }
}
