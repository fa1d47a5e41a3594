package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.tandem.transformer.JsonLines;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.tokenizer.Tokenizer;
import dev.tandem.transformer.tokenizer.Tokenizers;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code tandem tokenize}: JSON lines in, JSON lines out. Each input line is a JSON string to encode
 * (or, with {@code --decode}, an array of ids to decode); each output line is the id array (or the
 * string). Blank lines are skipped. The first bad line stops the run with a sentence naming its number;
 * the lines before it have been answered already.
 */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        description = "Encode JSON strings (or decode JSON id arrays) read one per line on stdin; one JSON line out per line in.")
public final class TokenizeCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final InputStream in;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    static final class Source {
        @Option(names = "--model", paramLabel = "DIR|FILE.gguf",
                description = "Model directory whose tokenizer.json (or tokenizer.json.gz) to use, or a GGUF file whose tokenizer to use (default: models/bard-l).")
        Path model;

        @Option(names = "--tokenizer", paramLabel = "FILE", description = "A tokenizer.json file, plain or gzip-compressed.")
        Path tokenizer;
    }

    @ArgGroup(exclusive = true)
    Source source = new Source();

    @Option(names = "--decode", description = "Read arrays of ids and write the text they decode to.")
    boolean decode;

    @Option(names = "--add-special-tokens",
            description = "Add the special tokens the tokenizer's post-processor adds (such as BOS), as Hugging Face's add_special_tokens=True.")
    boolean addSpecialTokens;

    @Option(names = "--special-tokens-as-text",
            description = "Encode special tokens written in the text (such as <|endoftext|>) as the plain text they spell.")
    boolean specialTokensAsText;

    @Option(names = "--skip-special-tokens", description = "With --decode: leave special tokens out of the text.")
    boolean skipSpecialTokens;

    TokenizeCommand(InputStream in) {
        this.in = in;
    }

    public TokenizeCommand() {
        this(System.in);
    }

    @Override
    public Integer call() throws IOException {
        if (!decode && skipSpecialTokens) {
            throw new UsageException("--skip-special-tokens only applies with --decode.");
        }
        if (decode && (addSpecialTokens || specialTokensAsText)) {
            throw new UsageException("--add-special-tokens and --special-tokens-as-text only apply when encoding, not with --decode.");
        }
        Tokenizer tokenizer = source.tokenizer != null
                ? Tokenizers.load(source.tokenizer)
                : ModelLoader.tokenizer(source.model != null ? source.model : GenerateCommand.defaultModel());
        PrintWriter out = spec.commandLine().getOut();
        new JsonLines(in, "stdin").forEach(null, (lineNumber, where, value) -> {
            out.println(decode ? decodeLine(tokenizer, value, lineNumber) : encodeLine(tokenizer, value, lineNumber));
            out.flush();
        });
        return 0;
    }

    private String encodeLine(Tokenizer tokenizer, JsonNode value, int lineNumber) throws IOException {
        if (!value.isTextual()) {
            throw new IllegalArgumentException("stdin line " + lineNumber + " should be a JSON string to encode, got "
                    + kind(value) + (value.isArray() ? " (use --decode to decode ids)" : "") + ".");
        }
        int[] ids = tokenizer.encode(value.textValue(), !specialTokensAsText);
        if (addSpecialTokens) {
            ids = tokenizer.withSpecialTokens(ids);
        }
        return JSON.writeValueAsString(ids);
    }

    private String decodeLine(Tokenizer tokenizer, JsonNode value, int lineNumber) throws IOException {
        if (!value.isArray()) {
            throw new IllegalArgumentException("stdin line " + lineNumber + " should be a JSON array of token ids to decode, got "
                    + kind(value) + ".");
        }
        int[] ids = new int[value.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode id = value.get(i);
            if (!id.canConvertToInt() || !id.isIntegralNumber() || id.intValue() < 0 || id.intValue() >= tokenizer.vocabSize()) {
                throw new IllegalArgumentException("stdin line " + lineNumber + ": element " + i + " (" + id
                        + ") is not a token id; ids are integers from 0 to " + (tokenizer.vocabSize() - 1) + ".");
            }
            ids[i] = id.intValue();
        }
        try {
            return JSON.writeValueAsString(tokenizer.decode(ids, skipSpecialTokens));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("stdin line " + lineNumber + ": " + e.getMessage(), e);
        }
    }

    private static String kind(JsonNode value) {
        return switch (value.getNodeType()) {
            case ARRAY -> "an array";
            case OBJECT -> "an object";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL -> "null";
            case STRING -> "a string";
            default -> "a " + value.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
        };
    }
}
