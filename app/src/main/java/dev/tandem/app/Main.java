package dev.tandem.app;

import dev.tandem.runtime.TandemException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.InputStream;
import java.io.PrintWriter;

/** The {@code tandem} command line. */
@Command(name = "tandem", mixinStandardHelpOptions = true, version = "tandem 0.1.0",
        description = "Transformer inference for decoding with more than one model or view at once.",
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        subcommands = {GenerateCommand.class, TokenizeCommand.class, EmbedCommand.class, IndexCommand.class, SynthCommand.class, QuantizeCommand.class, ServeCommand.class, BenchCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    static final String EXIT_CODES_HEADING = "%nExit codes:%n";
    static final String EXIT_0 = "0:success";
    static final String EXIT_1 = "1:any failure that is not a usage error (a bad file, a model that does not load, the machine), one sentence on stderr";
    static final String EXIT_2 = "2:a usage error (an unknown option, a bad value, options that do not go together), one sentence on stderr";
    static final String EXIT_130 = "130:interrupted (SIGINT, Ctrl-C)";
    static final String EXIT_143 = "143:terminated (SIGTERM)";

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required (try: tandem generate --help).");
    }

    /**
     * {@code threads}, or the processor count with a one-line note on {@code err} when it asks for more:
     * threads beyond the processors only take turns on them, which made decoding 100–500× slower.
     */
    static int capThreads(int threads, String option, PrintWriter err) {
        int processors = Runtime.getRuntime().availableProcessors();
        if (threads <= processors) {
            return threads;
        }
        err.println("tandem: note: " + option + " " + threads + " is more than the " + processors
                + " processors of this machine; using " + processors + ".");
        err.flush();
        return processors;
    }

    /** Picocli's own messages as one sentence: no "Error: " prefix, on one line, a full stop at the end. */
    static String sentence(String message) {
        String m = TandemException.oneLine(message.strip());
        if (m.startsWith("Error: ")) {
            m = m.substring("Error: ".length());
        }
        return m.endsWith(".") ? m : m + ".";
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs the command line with the given streams and returns the exit code (for tests and embedding). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        return run(args, System.in, out, err);
    }

    /** As {@link #run(String[], PrintWriter, PrintWriter)}, with {@code in} as the standard input. */
    public static int run(String[] args, InputStream in, PrintWriter out, PrintWriter err) {
        CommandLine.IFactory defaults = CommandLine.defaultFactory();
        CommandLine cli = new CommandLine(new Main(), new CommandLine.IFactory() {
            @Override
            public <K> K create(Class<K> cls) throws Exception {
                return cls == TokenizeCommand.class ? cls.cast(new TokenizeCommand(in))
                        : cls == EmbedCommand.class ? cls.cast(new EmbedCommand(in)) : defaults.create(cls);
            }
        });
        cli.setOut(out);
        cli.setErr(err);
        // "--context @FILE" reads a file itself; picocli would otherwise splice the file's words in as arguments.
        cli.setExpandAtFiles(false);
        GenerateCommand.addMethodTable(cli.getSubcommands().get("generate"));
        // Bad input: one sentence, last on stderr, exit 2 for usage (picocli's or a command's UsageException)
        // and 1 for everything else.
        cli.setParameterExceptionHandler((ex, a) -> {
            err.println("tandem: " + sentence(ex.getMessage()));
            err.flush();
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            if (ex instanceof UsageException) {
                err.println("tandem: " + sentence(ex.getMessage()));
                err.flush();
                return 2;
            }
            if (ex instanceof TandemException || ex instanceof IllegalArgumentException) {
                err.println("tandem: " + TandemException.oneLine(ex.getMessage()));
            } else {
                ex.printStackTrace(err);
                err.println("tandem: internal error: " + ex);
            }
            err.flush();
            return 1;
        });
        return cli.execute(args);
    }
}
