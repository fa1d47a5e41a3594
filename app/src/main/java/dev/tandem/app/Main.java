package dev.tandem.app;

import dev.tandem.runtime.TandemException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** The {@code tandem} command line. */
@Command(name = "tandem", mixinStandardHelpOptions = true, version = "tandem 0.1.0",
        description = "Transformer inference for decoding with more than one model or view at once.",
        subcommands = {GenerateCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required (try: tandem generate --help).");
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs the command line with the given streams and returns the exit code (for tests and embedding). */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cli = new CommandLine(new Main());
        cli.setOut(out);
        cli.setErr(err);
        // Bad input: one sentence, last on stderr, exit 2 for usage and 1 for everything else.
        cli.setParameterExceptionHandler((ex, a) -> {
            err.println("tandem: " + ex.getMessage());
            err.flush();
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            if (ex instanceof TandemException || ex instanceof IllegalArgumentException) {
                err.println("tandem: " + ex.getMessage());
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
