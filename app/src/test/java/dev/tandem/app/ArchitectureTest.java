package dev.tandem.app;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import com.tngtech.archunit.library.Architectures;
import dev.tandem.app.archfixture.ReachesIntoInternals;
import dev.tandem.runtime.archfixture.ReachesUpward;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The module layering, enforced on the compiled classes of every module on this classpath (bindings,
 * runtime, transformer, decoding, app): data flows one way, app → decoding → transformer → runtime →
 * bindings, and no module reaches into another's internals — the CPU backend ({@code runtime.cpu}) is
 * reached through {@code Backend} and {@code Backends}, the Llama implementation
 * ({@code transformer.llama}) through {@code LanguageModel} and {@code ModelLoader}, and native
 * bindings only by runtime. The JMH module ({@code bench}) measures the CPU kernels themselves and
 * nothing depends on it, so it is outside these rules. Maven keeps the modules' own dependency order.
 */
class ArchitectureTest {

    private static JavaClasses main;

    @BeforeAll
    static void importMainClasses() {
        // Test classes are left out, including other modules' test jars (tests may build a backend by hand).
        main = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .withImportOption(location -> !location.contains("-tests.jar"))
                .importPackages("dev.tandem");
    }

    static Architectures.LayeredArchitecture layers() {
        return Architectures.layeredArchitecture()
                .consideringOnlyDependenciesInLayers()
                .withOptionalLayers(true) // bindings has no user yet; everyModuleIsImported checks the rest
                .layer("app").definedBy("dev.tandem.app..")
                .layer("server").definedBy("dev.tandem.server..")
                .layer("langchain4j").definedBy("dev.tandem.langchain4j..")
                .layer("decoding").definedBy("dev.tandem.decoding..")
                .layer("transformer").definedBy("dev.tandem.transformer..")
                .layer("runtime").definedBy("dev.tandem.runtime..")
                .layer("bindings").definedBy("dev.tandem.bindings..")
                .whereLayer("app").mayNotBeAccessedByAnyLayer()
                .whereLayer("server").mayOnlyBeAccessedByLayers("app")
                .whereLayer("langchain4j").mayOnlyBeAccessedByLayers("app")
                .whereLayer("decoding").mayOnlyBeAccessedByLayers("server", "langchain4j", "app")
                .whereLayer("transformer").mayOnlyBeAccessedByLayers("decoding", "server", "langchain4j", "app")
                .whereLayer("runtime").mayOnlyBeAccessedByLayers("transformer", "decoding", "server", "langchain4j", "app")
                .whereLayer("bindings").mayOnlyBeAccessedByLayers("runtime");
    }

    static List<ArchRule> internals() {
        return List.of(
                noClasses().that().resideOutsideOfPackage("dev.tandem.runtime..")
                        .should().dependOnClassesThat().resideInAPackage("dev.tandem.runtime.cpu..")
                        .because("the CPU backend is reached through Backend and Backends"),
                noClasses().that().resideOutsideOfPackage("dev.tandem.transformer..")
                        .should().dependOnClassesThat().resideInAPackage("dev.tandem.transformer.llama..")
                        .because("a model is reached through LanguageModel and ModelLoader"));
    }

    @Test
    void everyModuleIsImported() {
        // A class-file format the importer cannot read would make every rule pass on nothing.
        for (String name : List.of("dev.tandem.app.Main", "dev.tandem.server.TandemServer", "dev.tandem.langchain4j.TandemChatModel",
                "dev.tandem.decoding.Engine", "dev.tandem.transformer.ModelLoader", "dev.tandem.runtime.cpu.CpuBackend")) {
            assertTrue(main.contain(name), name + " was not imported");
        }
        assertTrue(main.size() > 200, "only " + main.size() + " classes imported");
    }

    @Test
    void noModuleReachesUpward() {
        layers().check(main);
    }

    @Test
    void noModuleReachesIntoAnotherModulesInternals() {
        for (ArchRule rule : internals()) {
            rule.check(main);
        }
    }

    @Test
    void theRulesReportViolations() {
        JavaClasses upward = new ClassFileImporter().importClasses(ReachesUpward.class, dev.tandem.decoding.FinishReason.class);
        assertTrue(layers().evaluate(upward).hasViolation(), "a runtime class using decoding was not reported");
        JavaClasses inside = new ClassFileImporter().importClasses(ReachesIntoInternals.class,
                dev.tandem.runtime.cpu.CpuBackend.class, dev.tandem.transformer.llama.LlamaModel.class);
        for (ArchRule rule : internals()) {
            assertTrue(rule.evaluate(inside).hasViolation(), "not reported: " + rule.getDescription());
        }
        assertFalse(layers().evaluate(new ClassFileImporter().importClasses(Main.class)).hasViolation());
    }
}
