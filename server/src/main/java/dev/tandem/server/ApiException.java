package dev.tandem.server;

/**
 * A request the server answers with an OpenAI-style error object instead of a result:
 * {@code {"error": {"message", "type", "param", "code"}}} with an HTTP status. The message is one sentence.
 */
final class ApiException extends RuntimeException {
    private final int status;
    private final String type;
    private final String param;
    private final String code;

    ApiException(int status, String type, String param, String code, String message) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400, {@code invalid_request_error}, naming the offending field. */
    static ApiException invalid(String param, String message) {
        return new ApiException(400, "invalid_request_error", param, null, message);
    }

    /** 400 with a code as OpenAI spells it ({@code model_not_found}, {@code context_length_exceeded}, ...). */
    static ApiException invalid(String param, String code, String message) {
        return new ApiException(400, "invalid_request_error", param, code, message);
    }

    int status() {
        return status;
    }

    String type() {
        return type;
    }

    String param() {
        return param;
    }

    String code() {
        return code;
    }
}
