package dev.tandem.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;

/** Raw HTTP against a running server with the JDK's client: statuses, bodies, server-sent events. */
final class ServerHarness {
    static final ObjectMapper JSON = new ObjectMapper();
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();

    record Reply(int status, JsonNode body, HttpResponse<String> raw) {
    }

    private ServerHarness() {
    }

    static Reply post(String url, String path, String body, String... headers) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofMinutes(2))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body));
        for (int i = 0; i < headers.length; i += 2) {
            b.header(headers[i], headers[i + 1]);
        }
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), parse(r.body()), r);
    }

    static Reply get(String url, String path) throws IOException, InterruptedException {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url + path)).GET().build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), parse(r.body()), r);
    }

    private static JsonNode parse(String s) {
        try {
            return JSON.readTree(s);
        } catch (IOException e) {
            return null; // not JSON (metrics)
        }
    }

    /** An open server-sent event stream. */
    static final class Events implements AutoCloseable {
        final int status;
        private final InputStream in;
        private final BufferedReader reader;

        Events(int status, InputStream in) {
            this.status = status;
            this.in = in;
            this.reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
        }

        /** The next event's data (e.g. a JSON chunk or [DONE]), or null at the end of the stream. */
        String next() throws IOException {
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.startsWith("data: ")) {
                    return line.substring(6);
                }
            }
            return null;
        }

        /** Every remaining event's data, up to and including [DONE]. */
        List<String> rest() throws IOException {
            List<String> out = new ArrayList<>();
            String e;
            while ((e = next()) != null) {
                out.add(e);
                if (e.equals("[DONE]")) {
                    break;
                }
            }
            return out;
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }

    static Events stream(String url, String path, String body) throws IOException, InterruptedException {
        HttpRequest req = HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofMinutes(5))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
        HttpResponse<InputStream> r = HTTP.send(req, HttpResponse.BodyHandlers.ofInputStream());
        return new Events(r.statusCode(), r.body());
    }

    /** The text of a completion or chat stream's chunks, in order; fails on an error event. */
    static String streamedText(List<String> events) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (String e : events) {
            if (e.equals("[DONE]")) {
                continue;
            }
            JsonNode chunk = JSON.readTree(e);
            if (chunk.has("error")) {
                throw new AssertionError("error event: " + e);
            }
            for (JsonNode ch : chunk.path("choices")) {
                JsonNode t = ch.has("delta") ? ch.path("delta").path("content") : ch.path("text");
                if (t.isTextual()) {
                    sb.append(t.asText());
                }
            }
        }
        return sb.toString();
    }

    static void await(BooleanSupplier condition, Duration limit, String what) throws InterruptedException {
        long deadline = System.nanoTime() + limit.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(20);
        }
    }

    /**
     * A streaming request on a plain socket, so that a test can hang up the way a crashed client does: at once, with a
     * reset ({@link #abort()}), rather than the JDK client's polite close, which may drain the rest first.
     */
    static final class RawStream implements AutoCloseable {
        private final java.net.Socket socket;
        private final BufferedReader reader;

        RawStream(String url, String path, String body) throws IOException {
            URI u = URI.create(url);
            socket = new java.net.Socket(u.getHost(), u.getPort());
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            String head = "POST " + path + " HTTP/1.1\r\nHost: " + u.getHost() + ":" + u.getPort()
                    + "\r\nContent-Type: application/json\r\nContent-Length: " + bytes.length + "\r\n\r\n";
            socket.getOutputStream().write(head.getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().write(bytes);
            socket.getOutputStream().flush();
            reader = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        }

        /** The next event's data (chunk-size lines and headers skipped). */
        String next() throws IOException {
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.startsWith("data: ")) {
                    return line.substring(6);
                }
            }
            return null;
        }

        /** Hangs up with a TCP reset. */
        void abort() throws IOException {
            socket.setSoLinger(true, 0);
            socket.close();
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }
}
