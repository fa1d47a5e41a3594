/** langchain4j's chat, streaming chat and embedding models on Tandem, in-process (no HTTP). */
package dev.tandem.langchain4j;
