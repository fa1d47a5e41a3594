package dev.tandem.server;

import dev.tandem.decoding.NamedMethods;

import java.time.Duration;

/**
 * How {@code tandem serve} listens and what it admits.
 *
 * @param host           the address to bind ({@code 127.0.0.1} unless asked otherwise)
 * @param port           the port; 0 picks a free one
 * @param apiKey         when not null, every {@code /v1/} request needs {@code Authorization: Bearer apiKey}
 * @param maxRunning     requests decoded at once (each a row of every step)
 * @param maxQueued      requests waiting for a running slot; one more is answered 429 with {@code Retry-After}
 * @param maxTokensCap   the most tokens one choice may ask for ({@code max_tokens} above it is a 400)
 * @param maxBodyBytes   the largest request body; a larger one is answered 413
 * @param defaultMethod  the decoding method of requests that name none ({@link NamedMethods#NAMES})
 * @param shutdownGrace  on shutdown, how long running requests may finish before they are cancelled
 */
public record ServerOptions(String host, int port, String apiKey, int maxRunning, int maxQueued, int maxTokensCap,
                            long maxBodyBytes, String defaultMethod, Duration shutdownGrace) {

    public ServerOptions {
        if (host == null || host.isBlank()) {
            throw new IllegalArgumentException("the host to bind must not be empty.");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("the port must be between 0 and 65535, but was " + port + ".");
        }
        if (apiKey != null && apiKey.isBlank()) {
            throw new IllegalArgumentException("the API key must not be empty.");
        }
        if (maxRunning < 1 || maxQueued < 0 || maxTokensCap < 1 || maxBodyBytes < 1) {
            throw new IllegalArgumentException("maxRunning, maxTokensCap and maxBodyBytes must be at least 1 and maxQueued at "
                    + "least 0, but were " + maxRunning + ", " + maxTokensCap + ", " + maxBodyBytes + " and " + maxQueued + ".");
        }
        if (!NamedMethods.NAMES.contains(defaultMethod)) {
            throw new IllegalArgumentException("unknown method \"" + defaultMethod + "\"; the methods are "
                    + String.join(", ", NamedMethods.NAMES) + ".");
        }
        if (shutdownGrace.isNegative()) {
            throw new IllegalArgumentException("the shutdown grace period must not be negative.");
        }
    }

    /** Loopback on port 8080, no key, 32 running and 64 queued requests, 4096 tokens a choice, 4 MiB bodies, plain, 10 s grace. */
    public static ServerOptions defaults() {
        return new ServerOptions("127.0.0.1", 8080, null, 32, 64, 4096, 4L << 20, "plain", Duration.ofSeconds(10));
    }

    public ServerOptions withHost(String h) {
        return new ServerOptions(h, port, apiKey, maxRunning, maxQueued, maxTokensCap, maxBodyBytes, defaultMethod, shutdownGrace);
    }

    public ServerOptions withPort(int p) {
        return new ServerOptions(host, p, apiKey, maxRunning, maxQueued, maxTokensCap, maxBodyBytes, defaultMethod, shutdownGrace);
    }

    public ServerOptions withApiKey(String k) {
        return new ServerOptions(host, port, k, maxRunning, maxQueued, maxTokensCap, maxBodyBytes, defaultMethod, shutdownGrace);
    }

    public ServerOptions withMaxRunning(int n) {
        return new ServerOptions(host, port, apiKey, n, maxQueued, maxTokensCap, maxBodyBytes, defaultMethod, shutdownGrace);
    }

    public ServerOptions withMaxQueued(int n) {
        return new ServerOptions(host, port, apiKey, maxRunning, n, maxTokensCap, maxBodyBytes, defaultMethod, shutdownGrace);
    }

    public ServerOptions withMaxTokensCap(int n) {
        return new ServerOptions(host, port, apiKey, maxRunning, maxQueued, n, maxBodyBytes, defaultMethod, shutdownGrace);
    }

    public ServerOptions withMaxBodyBytes(long n) {
        return new ServerOptions(host, port, apiKey, maxRunning, maxQueued, maxTokensCap, n, defaultMethod, shutdownGrace);
    }

    public ServerOptions withDefaultMethod(String m) {
        return new ServerOptions(host, port, apiKey, maxRunning, maxQueued, maxTokensCap, maxBodyBytes, m, shutdownGrace);
    }

    public ServerOptions withShutdownGrace(Duration d) {
        return new ServerOptions(host, port, apiKey, maxRunning, maxQueued, maxTokensCap, maxBodyBytes, defaultMethod, d);
    }
}
