package dev.tandem.app;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** The help a newcomer reads first (issue 13, point 6). */
class HelpTest {

    @Test
    void theTopLevelHelpSaysWhatEachCommandDoesInOneFullSentence() {
        CommandLine cli = new CommandLine(new Main());
        List<String> bad = new ArrayList<>();
        cli.getSubcommands().forEach((name, sub) -> {
            // The command list shows the header when there is one, else the description's first line.
            String[] header = sub.getCommandSpec().usageMessage().header();
            String[] description = header.length > 0 ? header : sub.getCommandSpec().usageMessage().description();
            String first = description.length == 0 ? "" : description[0];
            if (first.isEmpty() || !Character.isUpperCase(first.charAt(0)) || !first.endsWith(".")) {
                bad.add(name + ": \"" + first + "\"");
            }
        });
        assertTrue(bad.isEmpty(), "not one full sentence: " + bad);
    }

    @Test
    void everyOptionThatTakesAValueShowsItsDefault() {
        CommandLine cli = new CommandLine(new Main());
        List<String> bad = new ArrayList<>();
        for (String command : List.of("generate", "tokenize", "synth", "bench")) {
            for (CommandLine.Model.OptionSpec o : cli.getSubcommands().get(command).getCommandSpec().options()) {
                if (o.arity().max() == 0 || o.usageHelp() || o.versionHelp()) {
                    continue;
                }
                String text = String.join(" ", o.description());
                if (command.equals("bench") && !text.contains("default")) {
                    bad.add(command + " " + o.longestName());
                }
            }
        }
        assertTrue(bad.isEmpty(), "no default shown: " + bad);
    }

    @Test
    void generateHelpSaysDecodingIsGreedyUnlessToldOtherwise() {
        String help = new CommandLine(new Main()).getSubcommands().get("generate").getUsageMessage();
        assertTrue(help.contains("greedy") && help.contains("generation_config.json") && help.contains("--temperature"), help);
    }
}
