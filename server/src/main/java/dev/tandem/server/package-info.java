/** {@code tandem serve}: an OpenAI-compatible HTTP server over the continuous-batching {@code Engine}. */
package dev.tandem.server;
