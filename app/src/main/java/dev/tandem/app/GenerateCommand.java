package dev.tandem.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.tandem.decoding.CollaborativeDecoding;
import dev.tandem.decoding.DecodingStrategy;
import dev.tandem.decoding.Engine;
import dev.tandem.decoding.EngineHandle;
import dev.tandem.decoding.GenerationRequest;
import dev.tandem.decoding.GenerationResult;
import dev.tandem.decoding.Generator;
import dev.tandem.decoding.TokenEvent;
import dev.tandem.decoding.diffusion.DiffusionCache;
import dev.tandem.decoding.diffusion.DiffusionDecoding;
import dev.tandem.decoding.diffusion.DiffusionParams;
import dev.tandem.decoding.diffusion.UnmaskRule;
import dev.tandem.decoding.beam.BeamParams;
import dev.tandem.decoding.beam.BeamSearch;
import dev.tandem.decoding.mix.LayerContrastDecoding;
import dev.tandem.decoding.mix.LogitMixDecoding;
import dev.tandem.decoding.rag.ChunkEmbeddingCache;
import dev.tandem.decoding.rag.Chunker;
import dev.tandem.decoding.rag.ChunkProjection;
import dev.tandem.decoding.rag.ExpansionPolicy;
import dev.tandem.decoding.rag.PassageCache;
import dev.tandem.decoding.rag.PassageIndex;
import dev.tandem.decoding.rag.RagDecoding;
import dev.tandem.decoding.rag.RefragDecoding;
import dev.tandem.decoding.rag.Retriever;
import dev.tandem.decoding.speculative.SpeculativeMixDecoding;
import dev.tandem.decoding.sampling.SamplingParams;
import dev.tandem.decoding.sampling.TokenLogprob;
import dev.tandem.decoding.speculative.AdedDecoding;
import dev.tandem.decoding.speculative.LookaheadDecoding;
import dev.tandem.decoding.speculative.PearlDecoding;
import dev.tandem.decoding.speculative.PromptLookupDecoding;
import dev.tandem.decoding.speculative.RapidDecoding;
import dev.tandem.decoding.speculative.SpeculativeDecoding;
import dev.tandem.decoding.speculative.TreeDecoding;
import dev.tandem.decoding.speculative.TrigramTable;
import dev.tandem.runtime.IoErrors;
import dev.tandem.runtime.Backends;
import dev.tandem.runtime.DType;
import dev.tandem.runtime.TandemException;
import dev.tandem.transformer.chat.ChatMessage;
import dev.tandem.transformer.chat.ChatTemplate;
import dev.tandem.transformer.chat.ChatTemplateException;
import dev.tandem.transformer.JsonLines;
import dev.tandem.transformer.LanguageModel;
import dev.tandem.transformer.ModelLoader;
import dev.tandem.transformer.bert.BertEncoder;
import dev.tandem.transformer.bert.Embedder;
import dev.tandem.transformer.bert.Encoders;
import dev.tandem.transformer.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code tandem generate}: one prompt, greedy or sampled, streamed as text or printed as one JSON object;
 * or, with {@code --prompt-file}, many prompts decoded together by an {@link Engine} and printed as JSON
 * lines in input order.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        exitCodeListHeading = Main.EXIT_CODES_HEADING, exitCodeList = {Main.EXIT_0, Main.EXIT_1, Main.EXIT_2, Main.EXIT_130, Main.EXIT_143},
        description = {"Generate text from a prompt.", "Options not given fall back to the model's generation_config.json; so decoding is greedy "
                + "unless that file sets do_sample (then its temperature, top-k and top-p apply) or --temperature is above 0."})
public final class GenerateCommand implements Callable<Integer> {

    enum Format { text, json }

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR|FILE.gguf",
            description = "Hugging Face model directory or GGUF file (default: the bard-l model shipped in models/).")
    Path model;

    @Option(names = "--prompt", paramLabel = "TEXT", description = "The prompt (or give --prompt-file).")
    String prompt;

    @Option(names = "--prompt-file", paramLabel = "FILE",
            description = "Prompts as JSON lines, decoded together: each line a JSON string, or an object "
                    + "{\"prompt\": TEXT, \"stream\": N} whose \"stream\" is optional; blank lines are skipped. A prompt's RNG "
                    + "stream is its own \"stream\", else its index among the prompts (0, 1, ...; blank lines not counted), "
                    + "so identical sampled prompts give different samples. Prints one compact JSON object per prompt, "
                    + "in input order, each what --prompt with that text, --stream its stream and the same options prints "
                    + "with --format json.")
    Path promptFile;

    @Option(names = "--chat",
            description = "Chat: the prompt (each prompt of --prompt-file) is the user's message, and the model reads the "
                    + "conversation [--system, user] through its chat template (tokenizer_config.json's chat_template, "
                    + "a GGUF file's tokenizer.chat_template, or --chat-template) with the assistant's turn opened.")
    boolean chat;

    @Option(names = "--system", paramLabel = "TEXT", description = "With --chat: a system message before the user's.")
    String system;

    @Option(names = "--chat-template", paramLabel = "FILE",
            description = "With --chat: the chat template to use instead of the model's, from a tokenizer_config.json "
                    + "(its chat_template, bos_token and eos_token) or a Jinja file.")
    Path chatTemplate;

    @Option(names = "--max-tokens", paramLabel = "N",
            description = "Most tokens to generate (default: generation_config max_new_tokens, else "
                    + GenerationRequest.DEFAULT_MAX_TOKENS + ").")
    Integer maxTokens;

    @Option(names = "--temperature", paramLabel = "T", description = "Sampling temperature; 0 = greedy.")
    Float temperature;

    @Option(names = "--top-k", paramLabel = "K", description = "Keep the K most likely tokens (0 = off).")
    Integer topK;

    @Option(names = "--top-p", paramLabel = "P", description = "Nucleus sampling mass in (0, 1] (1 = off).")
    Float topP;

    @Option(names = "--min-p", paramLabel = "P", description = "Keep tokens at least P × the top probability (0 = off).")
    Float minP;

    @Option(names = "--repetition-penalty", paramLabel = "R", description = "Penalty for tokens already present (1 = off).")
    Float repetitionPenalty;

    @Option(names = "--stop", paramLabel = "S", description = "Stop when the text reaches S (repeatable; S is cut).")
    List<String> stop = new ArrayList<>();

    @Option(names = "--seed", paramLabel = "S", description = "RNG seed (default: random, reported in JSON).")
    Long seed;

    @Option(names = "--stream", paramLabel = "N",
            description = "RNG stream of --prompt, 0 or more (default: 0, reported in JSON): the same seed on another "
                    + "stream draws other samples. Not with --prompt-file, whose lines carry their own streams.")
    Long stream;

    @Option(names = "--logprobs", paramLabel = "N", defaultValue = "0",
            description = "Record each token's log-probability and the N most likely tokens (JSON).")
    int logprobs;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0", description = "CPU threads (default: all; more than the processors are capped to them, with a note).")
    int threads;

    @Option(names = "--device", paramLabel = "NAME", defaultValue = "cpu",
            description = "The backend the models run on: cpu (default), cuda (an NVIDIA GPU), or auto (cuda when usable, "
                    + "else cpu; says on stderr which).")
    String device;

    /** What --device stands for, chosen once (auto says on stderr what it took). */
    private String chosenDevice;

    @Option(names = "--kv-memory", paramLabel = "SIZE",
            description = "KV-cache budget, e.g. 512M or 2G (binary units; plain bytes too). Default: the model's "
                    + "context (with --prompt-file, the context of every prompt), at most 1G.")
    String kvMemory;

    @Option(names = "--mmap",
            description = "Read the weights through the file mapping (zero-copy, starts faster, uses no memory of its own)"
                    + " instead of copying them into memory at load; on some machines mapped reads are slower and uneven.")
    boolean mmap;

    @Option(names = "--kv-dtype", paramLabel = "f32|bf16", defaultValue = "f32",
            description = "How the KV cache stores keys and values (default: f32; bf16 halves the memory).")
    String kvDtype;

    /** The encoder --method rag retrieves with, closed when the command ends. */
    private BertEncoder openEncoder;

    /** The names {@code --method} accepts. */
    static final List<String> METHODS = List.of("plain", "speculative", "pearl", "tree", "ngram", "aded", "lookahead", "collab",
            "diffusion", "contrastive", "proxy-tune", "cad", "cfg", "dola", "lol", "caad", "beam", "diverse-beam", "rag", "refrag", "rapid");

    /** Passages a retrieving method reads when --passages-k is not given. */
    static final int DEFAULT_PASSAGES_K = 4;

    /** rapid's defaults: the retrieval chunks its drafter reads, η (0: the target's distribution exactly) and γ. */
    static final int DEFAULT_RAPID_CHUNK_TOKENS = 128;
    static final double DEFAULT_RAPID_ETA = 0;
    static final int DEFAULT_RAPID_DRAFT_LENGTH = 4;

    static final double DEFAULT_CONTRASTIVE_ALPHA = 0.1, DEFAULT_CONTRASTIVE_BETA = 0.5, DEFAULT_PROXY_ALPHA = 1.0,
            DEFAULT_CAD_ALPHA = 0.5, DEFAULT_CFG_SCALE = 1.5;

    /** The mixing methods' optional draft: a chain verified against the mixed rows (SpeculativeMixDecoding). */
    private static final String DRAFT_WITH_MIX = "--draft DIR [none], --draft-length N [4]";

    /** Each method's own flags and their defaults: the table {@code --help} ends with (and the README repeats). */
    static final String METHOD_TABLE = methodTable(new String[][] {
            {"plain"},
            {"speculative", "--draft DIR", "--draft-length N|auto [4]", "--draft-threshold P [" + SpeculativeDecoding.DEFAULT_THRESHOLD
                    + ", with auto]"},
            {"pearl", "--draft DIR", "--draft-length N|auto [" + PearlDecoding.DEFAULT_DRAFT_LENGTH + "]", "--draft-threads N [1]"},
            {"tree", "--draft DIR", "--tree-budget N [" + TreeDecoding.DEFAULT_NODE_BUDGET + "]", "--tree-top-k K ["
                    + TreeDecoding.DEFAULT_TOP_K + "]", "--tree-depth D [" + TreeDecoding.DEFAULT_MAX_DEPTH + "]"},
            {"ngram", "--draft-length N [" + PromptLookupDecoding.DEFAULT_DRAFT_LENGTH + "]"},
            {"aded", "--ngram-corpus FILE [none]", "--aded-iterations N [" + AdedDecoding.DEFAULT_ITERATIONS + "]", "--tree-depth D ["
                    + AdedDecoding.DEFAULT_MAX_DEPTH + "]", "--tree-budget N [" + AdedDecoding.DEFAULT_NODE_CAP + "]"},
            {"lookahead", "--lookahead-window W [" + LookaheadDecoding.DEFAULT_WINDOW + "]", "--lookahead-ngram N ["
                    + LookaheadDecoding.DEFAULT_NGRAM + "]", "--lookahead-candidates G [" + LookaheadDecoding.DEFAULT_CANDIDATES + "]"},
            {"collab", "--draft DIR", "--collab-rule max-prob|top2-margin [max-prob]", "--collab-threshold P ["
                    + CollaborativeDecoding.DEFAULT_THRESHOLD + "]"},
            {"diffusion", "--gen-length N [" + DiffusionParams.DEFAULT_GEN_LENGTH + "]", "--block-length B [N]", "--steps S [N]",
                    "--unmask RULE [low-confidence]", "--threshold TAU", "--ccd-window W", "--cache none|prefix|dual [none]", "--trace"},
            {"contrastive", "--amateur DIR", "--alpha A [" + DEFAULT_CONTRASTIVE_ALPHA + "]", "--beta B [" + DEFAULT_CONTRASTIVE_BETA + "]",
                    DRAFT_WITH_MIX},
            {"proxy-tune", "--tuned DIR", "--base DIR", "--alpha A [" + DEFAULT_PROXY_ALPHA + "]", DRAFT_WITH_MIX},
            {"cad", "--context TEXT|@FILE", "--alpha A [" + DEFAULT_CAD_ALPHA + "]", DRAFT_WITH_MIX},
            {"cfg", "--negative-prompt TEXT", "--scale G [" + DEFAULT_CFG_SCALE + "]", DRAFT_WITH_MIX},
            {"dola", "--layers A,B,...", "--alpha A [" + LayerContrastDecoding.DEFAULT_ALPHA + "]", "--repetition-penalty R ["
                    + LayerContrastDecoding.DEFAULT_REPETITION_PENALTY + "]"},
            {"lol", "--amateur DIR", "--layer L", "--lambda W [" + LogitMixDecoding.DEFAULT_LOWER_LAYER_WEIGHT + "]", "--alpha A ["
                    + DEFAULT_CONTRASTIVE_ALPHA + "]", "--beta B [" + DEFAULT_CONTRASTIVE_BETA + "]"},
            {"caad", "--grounding FILE", "--neighbours N [" + LogitMixDecoding.DEFAULT_GROUNDING_NEIGHBOURS + "]", "--weight W ["
                    + LogitMixDecoding.DEFAULT_GROUNDING_WEIGHT + "]"},
            {"beam", "--beams B", "--length-penalty L [" + BeamParams.DEFAULT_LENGTH_PENALTY + "]", "--n-best N [1]"},
            {"diverse-beam", "--beams B", "--groups G", "--diversity D [" + BeamParams.DEFAULT_DIVERSITY + "]",
                    "--length-penalty L [" + BeamParams.DEFAULT_LENGTH_PENALTY + "]", "--n-best N [1]"},
            {"rag", "--passages INDEX", "--passages-k K [" + DEFAULT_PASSAGES_K + "]", "--encoder DIR [" + Encoders.MINILM
                    + "]"},
            {"refrag", "--passages INDEX", "--projection FILE", "--passages-k K [" + DEFAULT_PASSAGES_K + "]", "--chunk-tokens k ["
                    + RefragDecoding.DEFAULT_CHUNK_TOKENS + "]", "--expand F [" + ExpansionPolicy.DEFAULT_FRACTION + "]",
                    "--encoder DIR [" + Encoders.MINILM + "]"},
            {"rapid", "--context TEXT|@FILE", "--passages-k K [" + DEFAULT_PASSAGES_K + "]", "--chunk-tokens N ["
                    + DEFAULT_RAPID_CHUNK_TOKENS + "]", "--eta E [" + DEFAULT_RAPID_ETA + "]", "--draft DIR [the --model]",
                    "--draft-length N [" + DEFAULT_RAPID_DRAFT_LENGTH + "]", "--encoder DIR [" + Encoders.MINILM + "]"}});

    /** Rows of a method and its flags, the flags wrapped under each other within 80 columns. */
    private static String methodTable(String[][] rows) {
        StringBuilder b = new StringBuilder("Each method's flags, defaults in brackets (another method's flag is an error):");
        String indent = " ".repeat(15);
        for (String[] row : rows) {
            StringBuilder line = new StringBuilder("  " + row[0] + " ".repeat(13 - row[0].length()));
            if (row.length == 1) {
                line.append("-");
            }
            for (int i = 1; i < row.length; i++) {
                String flag = row[i] + (i + 1 < row.length ? "," : "");
                if (i > 1 && line.length() + 1 + flag.length() > 80) {
                    b.append("%n").append(line);
                    line = new StringBuilder(indent);
                } else if (i > 1) {
                    line.append(' ');
                }
                line.append(flag);
            }
            b.append("%n").append(line);
        }
        return b.append("%n").toString();
    }

    /** The methods that mix the logits of several views ({@link LogitMixDecoding}). */
    static final List<String> MIX_METHODS = List.of("contrastive", "proxy-tune", "cad", "cfg");

    /** The methods that contrast layers or add a retrieved row (one summary line, like the mixing methods'). */
    static final List<String> LAYER_METHODS = List.of("dola", "lol", "caad");

    /** Which methods each of these flags belongs to (the mixing methods' and the beam searches'). */
    private static final Map<String, List<String>> OWN_FLAGS = Map.ofEntries(
            Map.entry("--amateur", List.of("contrastive", "lol")), Map.entry("--tuned", List.of("proxy-tune")),
            Map.entry("--base", List.of("proxy-tune")), Map.entry("--alpha", List.of("contrastive", "proxy-tune", "cad", "dola", "lol")),
            Map.entry("--beta", List.of("contrastive", "lol")), Map.entry("--context", List.of("cad", "rapid")),
            Map.entry("--layers", List.of("dola")), Map.entry("--layer", List.of("lol")), Map.entry("--lambda", List.of("lol")),
            Map.entry("--grounding", List.of("caad")), Map.entry("--neighbours", List.of("caad")), Map.entry("--weight", List.of("caad")),
            Map.entry("--negative-prompt", List.of("cfg")), Map.entry("--scale", List.of("cfg")),
            Map.entry("--beams", List.of("beam", "diverse-beam")), Map.entry("--groups", List.of("diverse-beam")),
            Map.entry("--diversity", List.of("diverse-beam")), Map.entry("--length-penalty", List.of("beam", "diverse-beam")),
            Map.entry("--n-best", List.of("beam", "diverse-beam")), Map.entry("--passages", List.of("rag", "refrag")),
            Map.entry("--passages-k", List.of("rag", "refrag", "rapid")), Map.entry("--encoder", List.of("rag", "refrag", "rapid")),
            Map.entry("--projection", List.of("refrag")), Map.entry("--chunk-tokens", List.of("refrag", "rapid")),
            Map.entry("--expand", List.of("refrag")), Map.entry("--eta", List.of("rapid")));

    /** The methods that take a second, smaller model through {@code --draft}. */
    private static final List<String> WITH_DRAFT = List.of("speculative", "pearl", "tree", "collab");

    @Option(names = "--method", paramLabel = "NAME", defaultValue = "plain",
            description = "Decoding method: plain (one target pass per token), speculative (a draft model guesses, "
                    + "needs --draft), pearl (speculative with the draft drafting on its own threads while the target "
                    + "verifies; needs --draft), tree (the draft's top-k tokens grown into a tree, verified in one pass; needs --draft), "
                    + "ngram (prompt lookup), aded (trees searched in a trigram table of --ngram-corpus and the text so far), "
                    + "lookahead (Jacobi iterations feed an n-gram pool; no draft), collab (the --draft model decodes and calls the --model "
                    + "only where it is unsure; not lossless), diffusion (a masked-diffusion model fills a canvas of --gen-length "
                    + "positions, several per pass; the only method for such a model); contrastive, proxy-tune, cad, cfg, dola, lol and "
                    + "caad choose each token from a mix of several views' logits (models, prompts or layers); beam and diverse-beam "
                    + "search over hypotheses; rag and refrag answer over passages retrieved from a tandem index. The table at the end "
                    + "lists each method's flags. Greedy output of every guessing "
                    + "method (speculative to lookahead) is plain decoding's.")
    String method;

    @Option(names = "--passages", paramLabel = "INDEX",
            description = "rag, refrag: a passage index written by tandem index for this model's tokenizer; the prompt is the "
                    + "question and the passages most similar to it are read: rag attaches their KV (computed once and cached) for the "
                    + "answer to attend to; refrag feeds each chunk of them as one projected encoder vector, or as its tokens.")
    Path passages;

    @Option(names = "--passages-k", paramLabel = "K",
            description = "rag, refrag: how many passages to retrieve, most similar first (default " + DEFAULT_PASSAGES_K + "; --top-k keeps "
                    + "its sampling meaning).")
    Integer passagesK;

    @Option(names = "--eta", paramLabel = "E",
            description = "rapid: how far the target's distribution is nudged toward the drafter's before a draft is verified, "
                    + "p̂ = softmax(log p - E·m·(p - q)), E >= 0; 0 (the default) keeps the target's distribution exactly, 5-20 "
                    + "suit a drafter that is the model itself, 40-50 a larger one (the paper's). Greedy decoding ignores it.")
    Double eta;

    @Option(names = "--projection", paramLabel = "FILE",
            description = "refrag: a safetensors file holding \"weight\" [hidden size, encoder dimension] and optionally \"bias\" "
                    + "[hidden size], the linear map from a chunk's encoder vector to one decoder input row. None is shipped: it is "
                    + "trained elsewhere, and without a trained one the compressed chunks mean nothing to the decoder.")
    Path projection;

    @Option(names = "--chunk-tokens", paramLabel = "k",
            description = "refrag: the passages' tokens per chunk, each chunk one decoder position unless expanded (default "
                    + RefragDecoding.DEFAULT_CHUNK_TOKENS + "); rapid: the tokens per chunk of --context the drafter's passages are "
                    + "retrieved from (default " + DEFAULT_RAPID_CHUNK_TOKENS + ", at most 256).")
    Integer chunkTokens;

    @Option(names = "--expand", paramLabel = "F",
            description = "refrag: the fraction of chunks, most similar to the question first, fed as their tokens (default "
                    + ExpansionPolicy.DEFAULT_FRACTION + "; 1 feeds every token, plain decoding of the passages and the question).")
    Double expand;

    @Option(names = "--encoder", paramLabel = "DIR",
            description = "rag, refrag: the encoder the --passages index was built with, a Hugging Face BERT directory (default: the "
                    + "embedded " + Encoders.MINILM + "); another encoder than the index's is refused.")
    Path encoder;

    @Option(names = "--grounding", paramLabel = "FILE",
            description = "caad: JSON lines of {\"text\": ..., \"continuation\": ...}; the (state, logits) pair of every continuation "
                    + "token is stored once beside it, as FILE.MODEL.caad-store, and rebuilt when the file or the model changes.")
    Path grounding;

    @Option(names = "--neighbours", paramLabel = "N",
            description = "caad: the stored pairs nearest the current state (cosine) whose logits are averaged (default "
                    + LogitMixDecoding.DEFAULT_GROUNDING_NEIGHBOURS + ").")
    Integer neighbours;

    @Option(names = "--weight", paramLabel = "W",
            description = "caad: score z + W·(their similarity-weighted mean logits); 0 is plain decoding (default "
                    + LogitMixDecoding.DEFAULT_GROUNDING_WEIGHT + ").")
    Double weight;

    @Option(names = "--layers", paramLabel = "A,B,...",
            description = "dola: the candidate premature layers, 0-based decoder layers below the last (a layer's hidden state is its "
                    + "output); each step contrasts the final layer with the candidate farthest from it (Jensen-Shannon).")
    String layers;

    @Option(names = "--layer", paramLabel = "L",
            description = "lol: the lower layer (0-based, below the last layer of both models) whose contrast is added.")
    Integer layer;

    @Option(names = "--lambda", paramLabel = "W",
            description = "lol: the weight of the lower layer's contrast, >= 0 (default " + LogitMixDecoding.DEFAULT_LOWER_LAYER_WEIGHT + ").")
    Double lambda;

    @Option(names = "--beams", paramLabel = "B", description = "beam, diverse-beam: the number of beams, at least 1.")
    Integer beams;

    @Option(names = "--groups", paramLabel = "G", description = "diverse-beam: groups of --beams / G beams each; G divides B.")
    Integer groups;

    @Option(names = "--diversity", paramLabel = "D",
            description = "diverse-beam: the Hamming diversity penalty per earlier group's choice of a token (default "
                    + BeamParams.DEFAULT_DIVERSITY + ").")
    Double diversity;

    @Option(names = "--length-penalty", paramLabel = "L",
            description = "beam, diverse-beam: a hypothesis scores its summed log-probabilities / length^L (default "
                    + BeamParams.DEFAULT_LENGTH_PENALTY + ").")
    Double lengthPenalty;

    @Option(names = "--n-best", paramLabel = "N",
            description = "beam, diverse-beam: the hypotheses reported, best first, at most --beams (default 1; JSON lists "
                    + "them under \"hypotheses\").")
    Integer nBest;

    @Option(names = "--amateur", paramLabel = "DIR",
            description = "contrastive: the amateur (small) model directory; it must share the --model's tokenizer.")
    Path amateur;

    @Option(names = "--tuned", paramLabel = "DIR", description = "proxy-tune: the tuned small model directory.")
    Path tuned;

    @Option(names = "--base", paramLabel = "DIR", description = "proxy-tune: the untuned small model the --tuned one was tuned from.")
    Path base;

    @Option(names = "--alpha", paramLabel = "A",
            description = "contrastive: keep tokens whose expert probability is at least A times its largest, in [0, 1] (default "
                    + DEFAULT_CONTRASTIVE_ALPHA + "); proxy-tune: the weight of tuned minus base (default " + DEFAULT_PROXY_ALPHA
                    + "); cad: the context's extra weight, (1+A)·z(with) - A·z(without) (default " + DEFAULT_CAD_ALPHA + ").")
    Double alpha;

    @Option(names = "--beta", paramLabel = "B",
            description = "contrastive: score (1+B)·z_expert - B·z_amateur, B >= 0 (default " + DEFAULT_CONTRASTIVE_BETA + ").")
    Double beta;

    @Option(names = "--context", paramLabel = "TEXT|@FILE",
            description = "cad: the context (a text, or @FILE for a file's UTF-8 text); the first sequence is the context followed "
                    + "by the prompt, the second the prompt alone.")
    String context;

    @Option(names = "--negative-prompt", paramLabel = "TEXT",
            description = "cfg: the prompt to steer away from (\"\" for the BOS token alone, where the model has one).")
    String negativePrompt;

    @Option(names = "--scale", paramLabel = "G",
            description = "cfg: z_neg + G·(z - z_neg); 1 is plain decoding (default " + DEFAULT_CFG_SCALE + ").")
    Double scale;

    @Option(names = "--gen-length", paramLabel = "N",
            description = "diffusion: canvas positions after the prompt (default: generation_config max_new_tokens, else "
                    + DiffusionParams.DEFAULT_GEN_LENGTH + ").")
    Integer genLength;

    @Option(names = "--block-length", paramLabel = "B",
            description = "diffusion: semi-autoregressive blocks of B positions, filled left to right; must divide --gen-length "
                    + "(default: --gen-length, one block).")
    Integer blockLength;

    @Option(names = "--steps", paramLabel = "S",
            description = "diffusion: forward passes, spread over the blocks as LLaDA does (a multiple of the blocks; default: "
                    + "--gen-length, one position per pass); not used by --unmask threshold.")
    Integer steps;

    @Option(names = "--unmask", paramLabel = "RULE",
            description = "diffusion: which masked positions a pass commits: low-confidence (LLaDA; the default: highest top "
                    + "probability), random (LLaDA), entropy (Dream: lowest entropy), margin (Dream: widest top-2 margin), threshold "
                    + "(Fast-dLLM: every one above --threshold, at least one), ccd (coherent contextual decoding: every position "
                    + "whose token held over --ccd-window passes, else the most confident). Ties go to the lowest position.")
    String unmask;

    @Option(names = "--threshold", paramLabel = "TAU",
            description = "diffusion with --unmask threshold: commit every masked position of the block whose top probability "
                    + "exceeds TAU, in (0, 1] (default: " + DEFAULT_DIFFUSION_THRESHOLD + ").")
    Double diffusionThreshold;

    @Option(names = "--ccd-window", paramLabel = "W",
            description = "diffusion with --unmask ccd: passes a position's most likely token must hold, among the block's most "
                    + "confident, before it is committed without waiting its turn (default: " + DiffusionParams.DEFAULT_CCD_WINDOW + ").")
    Integer ccdWindow;

    @Option(names = "--cache", paramLabel = "none|prefix|dual",
            description = "diffusion: reuse keys and values from each block's first (full) pass: prefix (those before the "
                    + "block; a pass feeds the block and what follows) or dual (before and after; a pass feeds the block alone); "
                    + "approximate, as Fast-dLLM's caches are (default: none, every pass recomputes every position).")
    String diffusionCache;

    @Option(names = "--trace",
            description = "diffusion with --format json: add \"trace\", per pass the [position, token] pairs committed "
                    + "(positions count the prompt).")
    boolean trace;

    /** Fast-dLLM's τ when --threshold is not given. */
    static final double DEFAULT_DIFFUSION_THRESHOLD = 0.9;

    @Option(names = "--tree-budget", paramLabel = "N",
            description = "tree and aded: most draft tokens (nodes) per verification (default: "
                    + TreeDecoding.DEFAULT_NODE_BUDGET + " for tree, " + AdedDecoding.DEFAULT_NODE_CAP + " for aded).")
    Integer treeBudget;

    @Option(names = "--tree-top-k", paramLabel = "K",
            description = "tree: children per node, the draft's K most likely tokens (default: " + TreeDecoding.DEFAULT_TOP_K + ").")
    Integer treeTopK;

    @Option(names = "--tree-depth", paramLabel = "D",
            description = "tree and aded: deepest path drafted (default: " + TreeDecoding.DEFAULT_MAX_DEPTH + ").")
    Integer treeDepth;

    @Option(names = "--ngram-corpus", paramLabel = "FILE",
            description = "aded: a UTF-8 text whose trigrams, in the model's tokens, seed the table (default: none, "
                    + "the table starts empty and learns from the prompt and the output).")
    Path ngramCorpus;

    @Option(names = "--aded-iterations", paramLabel = "N",
            description = "aded: Monte-Carlo tree search iterations per round (default: " + AdedDecoding.DEFAULT_ITERATIONS + ").")
    Integer adedIterations;

    @Option(names = "--lookahead-window", paramLabel = "W",
            description = "lookahead: guesses per Jacobi level (default: " + LookaheadDecoding.DEFAULT_WINDOW + ").")
    Integer lookaheadWindow;

    @Option(names = "--lookahead-ngram", paramLabel = "N",
            description = "lookahead: n-gram size, N − 1 Jacobi levels and drafts of N − 1 tokens (default: "
                    + LookaheadDecoding.DEFAULT_NGRAM + ").")
    Integer lookaheadNgram;

    @Option(names = "--lookahead-candidates", paramLabel = "G",
            description = "lookahead: most pool n-grams verified per step (default: " + LookaheadDecoding.DEFAULT_CANDIDATES + ").")
    Integer lookaheadCandidates;

    @Option(names = "--collab-rule", paramLabel = "max-prob|top2-margin",
            description = "collab: when the small model counts as unsure: its top probability, or the margin between its "
                    + "top two, under --collab-threshold (default: max-prob).")
    String collabRule;

    @Option(names = "--collab-threshold", paramLabel = "P",
            description = "collab: call the large model when the rule's value is under P (default: "
                    + CollaborativeDecoding.DEFAULT_THRESHOLD + ").")
    Double collabThreshold;

    @Option(names = "--draft", paramLabel = "DIR|FILE.gguf", description = "The draft (small) model (directory or GGUF file) of --method speculative, pearl, "
            + "tree and collab (it must share the target's tokenizer).")
    Path draft;

    @Option(names = "--draft-length", paramLabel = "N|auto",
            description = "Draft tokens per verification: a number, or auto (speculative: stop drafting when the draft's "
                    + "top probability falls under " + SpeculativeDecoding.DEFAULT_THRESHOLD + ", at most "
                    + SpeculativeDecoding.DEFAULT_MAX_AUTO_LENGTH + "; pearl: from the measured ratio of target to draft pass "
                    + "time, at most " + PearlDecoding.MAX_ADAPTIVE_LENGTH + "). Default: 4 for speculative and pearl, "
                    + PromptLookupDecoding.DEFAULT_DRAFT_LENGTH + " for ngram.")
    String draftLength;

    @Option(names = "--draft-threads", paramLabel = "N",
            description = "pearl: CPU threads of the draft model's own thread group, taken from --threads "
                    + "(default: 1; the target keeps the rest, at least 1).")
    Integer draftThreads;

    @Option(names = "--draft-threshold", paramLabel = "P",
            description = "With --draft-length auto: stop drafting when the draft's top probability is under P, in [0, 1] "
                    + "(default " + SpeculativeDecoding.DEFAULT_THRESHOLD + ").")
    Double draftThreshold;

    @Option(names = "--format", paramLabel = "text|json",
            description = "text (the default) streams tokens as they come; json prints one object at the end "
                    + "(--prompt-file always prints JSON lines).")
    Format format;

    static Path defaultModel() {
        String home = System.getProperty("tandem.home");
        Path base = home != null ? Path.of(home) : Path.of("");
        return base.resolve("models").resolve("bard-l");
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (threads < 0) {
            throw new UsageException("--threads must be 0 (all processors) or more, but was " + threads + ".");
        }
        threads = Main.capThreads(threads, "--threads", err);
        if ((prompt == null) == (promptFile == null)) {
            throw new ParameterException(spec.commandLine(), prompt == null
                    ? "give the prompt with --prompt TEXT or --prompt-file FILE."
                    : "--prompt and --prompt-file cannot be used together; give one of them.");
        }
        if (stream != null && stream < 0) {
            throw new ParameterException(spec.commandLine(), "--stream must be 0 or more, but was " + stream + ".");
        }
        if (stream != null && promptFile != null) {
            throw new ParameterException(spec.commandLine(), "--stream applies to a single --prompt; in --prompt-file "
                    + "each prompt's stream is its own \"stream\" or, by default, its index among the prompts.");
        }
        if (promptFile != null && format == Format.text) {
            throw new ParameterException(spec.commandLine(),
                    "--prompt-file prints JSON lines, so it cannot be combined with --format text.");
        }
        Path dir = model != null ? model : defaultModel();
        checkMethodOptions();
        ChatTemplate template = chatTemplate(dir);
        List<PromptLine> prompts = promptFile != null ? readPromptFile(promptFile) : null;
        int sequences = prompts != null ? prompts.size() : 1;
        boolean pearl = method.equals("pearl");
        int[] split = pearl ? threadSplit() : null;
        // cad and cfg keep two sequences of the --model per prompt.
        // rag: the cached passages and the question's sequence besides.
        int modelSequences = method.equals("cad") || method.equals("cfg") || method.equals("rag") || method.equals("refrag")
                || (method.equals("rapid") && draft == null) ? 2 * sequences : sequences;
        try (LanguageModel lm = ModelLoader.load(dir, pearl ? loadOptions(dir, sequences).withThreads(split[0])
                : loadOptions(dir, modelSequences));
             LanguageModel draftModel = draft == null ? null : ModelLoader.load(draft, pearl
                     ? loadOptions(draft, sequences).withThreads(split[1]) // its own thread group, beside the target's
                     : loadOptions(draft, sequences).withBackend(lm.backend()));
             LoadedModels others = LoadedModels.load(helperDirectories(), d -> loadOptions(d, sequences).withBackend(lm.backend()))) {
            List<LanguageModel> helpers = others.models();
            if (prompts != null) {
                generateAll(lm, strategy(lm, draftModel, helpers), prompts, template, out);
                return 0;
            }
            long usedSeed = seed != null ? seed : new SecureRandom().nextLong();
            GenerationRequest request = asChat(withOptions(GenerationRequest.withModelDefaults(lm, prompt, usedSeed)), lm, template)
                    .withStreamId(stream != null ? stream : 0);
            DecodingStrategy generator = strategy(lm, draftModel, helpers);
            if (format != Format.json) {
                GenerationResult r = generator.generate(request, event -> {
                    out.print(event.textDelta());
                    out.flush();
                });
                out.println();
                out.flush();
                err.printf(Locale.ROOT, "[%d prompt + %d generated tokens, finish: %s, prefill %.1f ms, decode %.1f tokens/s]%n",
                        r.usage().promptTokens(), r.usage().completionTokens(), r.finishReason().wireName(),
                        r.stats().prefillMillis(), r.decodeTokensPerSecond());
                if (method.equals("collab")) {
                    CollaborativeDecoding.Collaboration c = CollaborativeDecoding.Collaboration.of(r.decodeStats());
                    err.printf(Locale.ROOT, "[collab: the large model was called on %.1f%% of tokens and changed %.1f%%]%n",
                            100 * c.callFrequency(), 100 * c.changeFrequency());
                } else if (method.equals("diffusion")) {
                    err.printf(Locale.ROOT, "[diffusion: %d positions in %d passes, %.2f per pass]%n", r.generatedIds().length,
                            r.decodeStats().targetForwardPasses(),
                            r.generatedIds().length / (double) Math.max(1, r.decodeStats().targetForwardPasses()));
                } else if (method.equals("beam") || method.equals("diverse-beam")) {
                    for (int i = 1; i < r.hypotheses().size(); i++) {
                        var h = r.hypotheses().get(i);
                        out.printf(Locale.ROOT, "--- hypothesis %d of %d (score %.4f, log-probability %.4f) ---%n%s%n", i + 1,
                                r.hypotheses().size(), h.score(), h.logprob(), h.text());
                    }
                    out.flush();
                    var best = r.hypotheses().getFirst();
                    err.printf(Locale.ROOT, "[%s: %d passes; the best hypothesis scores %.4f (log-probability %.4f)]%n", method,
                            r.decodeStats().targetForwardPasses(), best.score(), best.logprob());
                } else if ((MIX_METHODS.contains(method) && draftModel == null) || LAYER_METHODS.contains(method)) {
                    var d = r.decodeStats();
                    err.printf(Locale.ROOT, "[%s: %d passes of the --model and %d of the other models for %d tokens]%n", method,
                            d.targetForwardPasses(), d.draftForwardPasses(), d.generatedTokens());
                } else if (generator instanceof RefragDecoding refrag) {
                    err.printf(Locale.ROOT, "[refrag: chunks of %d tokens, %d chunk vectors encoded, %d found in the cache]%n",
                            refrag.chunkTokens(), refrag.cache().misses(), refrag.cache().hits());
                } else if (generator instanceof RagDecoding rag) {
                    err.printf(Locale.ROOT, "[rag: %d passages computed, %d found in the passage cache]%n", rag.cache().misses(),
                            rag.cache().hits());
                } else if (!method.equals("plain")) {
                    err.println(r.decodeStats().summary());
                }
                err.flush();
            } else if (generator instanceof DiffusionDecoding diffusion) {
                DiffusionDecoding.Traced t = diffusion.generateTraced(request, event -> { });
                out.println(toJson(t.result(), lm, request, true, t.trace(), trace));
                out.flush();
            } else {
                GenerationResult r = generator.generate(request);
                out.println(toJson(r, lm, request, true));
                out.flush();
            }
        } finally {
            if (openEncoder != null) {
                openEncoder.close();
            }
        }
        return 0;
    }

    /** Ends the help of {@code generate} with {@link #METHOD_TABLE}. */
    static void addMethodTable(picocli.CommandLine generate) {
        generate.getCommandSpec().usageMessage().footerHeading("%n").footer(METHOD_TABLE);
    }

    /** Checks --method, --draft and --draft-length together, before any model is loaded. */
    private void checkMethodOptions() {
        if (!METHODS.contains(method)) {
            throw new ParameterException(spec.commandLine(), "--method must be one of " + String.join(", ", METHODS)
                    + ", but was \"" + method + "\".");
        }
        checkOwnFlags();
        checkDiffusionOptions();
        if (WITH_DRAFT.contains(method) && draft == null) {
            throw new ParameterException(spec.commandLine(),
                    "--method " + method + " needs a draft model; give its directory with --draft DIR.");
        }
        if (!WITH_DRAFT.contains(method) && !MIX_METHODS.contains(method) && !method.equals("rapid") && draft != null) {
            throw new ParameterException(spec.commandLine(), "--draft is used by --method " + String.join(", ", WITH_DRAFT)
                    + ", rapid and, to verify its drafts against the mixed logits, " + String.join(", ", MIX_METHODS)
                    + " only, not by --method " + method + ".");
        }
        if (method.equals("rapid") && "auto".equals(draftLength)) {
            throw new ParameterException(spec.commandLine(), "--method rapid takes --draft-length N, a number.");
        }
        if (MIX_METHODS.contains(method) && draftLength != null && (draft == null || draftLength.equals("auto"))) {
            throw new ParameterException(spec.commandLine(), "--method " + method + " takes --draft-length N (a number) only with --draft DIR.");
        }
        if (!method.equals("collab") && (collabRule != null || collabThreshold != null)) {
            throw new ParameterException(spec.commandLine(), "--collab-rule and --collab-threshold apply to --method collab only.");
        }
        if (!method.equals("tree") && treeTopK != null) {
            throw new ParameterException(spec.commandLine(), "--tree-top-k applies to --method tree only.");
        }
        if (!method.equals("tree") && !method.equals("aded") && (treeBudget != null || treeDepth != null)) {
            throw new ParameterException(spec.commandLine(), "--tree-budget and --tree-depth apply to --method tree and aded only.");
        }
        if (!method.equals("aded") && (ngramCorpus != null || adedIterations != null)) {
            throw new ParameterException(spec.commandLine(), "--ngram-corpus and --aded-iterations apply to --method aded only.");
        }
        if (ngramCorpus != null && !java.nio.file.Files.exists(ngramCorpus)) {
            // Said before any model is loaded; TrigramTable names every other way the file can be bad.
            throw new TandemException("the corpus file " + ngramCorpus + " does not exist.");
        }
        if (!method.equals("lookahead") && (lookaheadWindow != null || lookaheadNgram != null || lookaheadCandidates != null)) {
            throw new ParameterException(spec.commandLine(), "--lookahead-window, --lookahead-ngram and --lookahead-candidates "
                    + "apply to --method lookahead only.");
        }
        for (Integer v : new Integer[] {adedIterations, lookaheadWindow, lookaheadCandidates}) {
            if (v != null && v < 1) {
                throw new ParameterException(spec.commandLine(), "--aded-iterations, --lookahead-window and "
                        + "--lookahead-candidates must be at least 1, but one was " + v + ".");
            }
        }
        if (lookaheadNgram != null && lookaheadNgram < 2) {
            throw new ParameterException(spec.commandLine(), "--lookahead-ngram must be at least 2, but was " + lookaheadNgram + ".");
        }
        for (Integer v : new Integer[] {treeBudget, treeTopK, treeDepth}) {
            if (v != null && v < 1) {
                throw new ParameterException(spec.commandLine(), "--tree-budget, --tree-top-k and --tree-depth must be at least 1, "
                        + "but one was " + v + ".");
            }
        }
        if (List.of("collab", "tree", "aded", "lookahead", "beam", "diverse-beam", "rag", "refrag").contains(method) && draftLength != null) {
            throw new ParameterException(spec.commandLine(), "--draft-length is not used by --method " + method + ".");
        }
        if (collabThreshold != null && !(collabThreshold >= 0 && Double.isFinite(collabThreshold))) {
            throw new ParameterException(spec.commandLine(), "--collab-threshold must be a number of at least 0, but was "
                    + collabThreshold + ".");
        }
        if (collabRule != null) {
            try {
                CollaborativeDecoding.Rule.parse(collabRule);
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), "--collab-rule must be max-prob or top2-margin, but was \""
                        + collabRule + "\".");
            }
        }
        if (method.equals("plain") && draftLength != null) {
            throw new ParameterException(spec.commandLine(), "--draft-length is not used by --method plain.");
        }
        if (draftLength != null && !draftLength.equals("auto")) {
            int n;
            try {
                n = Integer.parseInt(draftLength);
            } catch (NumberFormatException e) {
                n = 0;
            }
            if (n < 1) {
                throw new ParameterException(spec.commandLine(),
                        "--draft-length must be a whole number of at least 1 or auto, but was \"" + draftLength + "\".");
            }
        }
        if (draftThreshold != null && !(method.equals("speculative") && "auto".equals(draftLength))) {
            throw new ParameterException(spec.commandLine(), "--draft-threshold applies to --method speculative with "
                    + "--draft-length auto only.");
        }
        if (draftThreshold != null && !(draftThreshold >= 0 && draftThreshold <= 1)) {
            throw new ParameterException(spec.commandLine(), "--draft-threshold must be in [0, 1], but was " + draftThreshold + ".");
        }
        if (draftThreads != null && !method.equals("pearl")) {
            throw new ParameterException(spec.commandLine(), "--draft-threads applies to --method pearl only.");
        }
        if (draftThreads != null && draftThreads < 1) {
            throw new ParameterException(spec.commandLine(), "--draft-threads must be at least 1, but was " + draftThreads + ".");
        }
        if (method.equals("ngram") && "auto".equals(draftLength)) {
            throw new ParameterException(spec.commandLine(), "--draft-length auto needs a draft model (--method speculative); "
                    + "give --method ngram a number.");
        }
    }

    /** The mixing and beam methods' flags: each only with its methods, and what each method cannot go without. */
    private void checkOwnFlags() {
        Map<String, Object> given = new java.util.LinkedHashMap<>();
        given.put("--amateur", amateur);
        given.put("--tuned", tuned);
        given.put("--base", base);
        given.put("--alpha", alpha);
        given.put("--beta", beta);
        given.put("--context", context);
        given.put("--negative-prompt", negativePrompt);
        given.put("--scale", scale);
        given.put("--grounding", grounding);
        given.put("--neighbours", neighbours);
        given.put("--weight", weight);
        given.put("--layers", layers);
        given.put("--layer", layer);
        given.put("--lambda", lambda);
        given.put("--beams", beams);
        given.put("--groups", groups);
        given.put("--diversity", diversity);
        given.put("--length-penalty", lengthPenalty);
        given.put("--n-best", nBest);
        given.put("--passages", passages);
        given.put("--passages-k", passagesK);
        given.put("--encoder", encoder);
        given.put("--projection", projection);
        given.put("--chunk-tokens", chunkTokens);
        given.put("--expand", expand);
        given.put("--eta", eta);
        for (Map.Entry<String, Object> flag : given.entrySet()) {
            List<String> users = OWN_FLAGS.get(flag.getKey());
            if (flag.getValue() != null && !users.contains(method)) {
                throw new ParameterException(spec.commandLine(), flag.getKey() + " applies to --method " + String.join(", ", users)
                        + " only, not to --method " + method + ".");
            }
        }
        String needed = switch (method) {
            case "contrastive" -> amateur == null ? "--amateur DIR (the small model to contrast with)" : null;
            case "proxy-tune" -> tuned == null || base == null ? "--tuned DIR and --base DIR (the small model after and before tuning)" : null;
            case "cad" -> context == null ? "--context TEXT or --context @FILE" : null;
            case "rapid" -> context == null ? "--context TEXT or --context @FILE (the long context the target reads)" : null;
            case "cfg" -> negativePrompt == null ? "--negative-prompt TEXT" : null;
            case "dola" -> layers == null ? "--layers A,B,... (the candidate layers, 0-based)" : null;
            case "caad" -> grounding == null ? "--grounding FILE (JSON lines of {\"text\": ..., \"continuation\": ...})" : null;
            case "lol" -> amateur == null || layer == null ? "--amateur DIR and --layer L" : null;
            case "beam" -> beams == null ? "--beams B" : null;
            case "diverse-beam" -> beams == null || groups == null ? "--beams B and --groups G" : null;
            case "rag" -> passages == null ? "--passages INDEX (written by tandem index)" : null;
            case "refrag" -> passages == null || projection == null
                    ? "--passages INDEX (written by tandem index) and --projection FILE (a trained chunk projection)" : null;
            default -> null;
        };
        if (needed != null) {
            throw new ParameterException(spec.commandLine(), "--method " + method + " needs " + needed + ".");
        }
        if (eta != null && !(eta >= 0 && Double.isFinite(eta))) {
            throw new ParameterException(spec.commandLine(), "--eta must be a finite number of at least 0, but was " + eta + ".");
        }
        if (method.equals("rapid") && chunkTokens != null && chunkTokens > Chunker.MAX_CHUNK_TOKENS) {
            throw new ParameterException(spec.commandLine(), "--chunk-tokens must be at most " + Chunker.MAX_CHUNK_TOKENS
                    + " for --method rapid, but was " + chunkTokens + ".");
        }
        if (expand != null && !(expand >= 0 && expand <= 1)) {
            throw new ParameterException(spec.commandLine(), "--expand must be a fraction in [0, 1], but was " + expand + ".");
        }
        if (chunkTokens != null && chunkTokens < 1) {
            throw new ParameterException(spec.commandLine(), "--chunk-tokens must be at least 1, but was " + chunkTokens + ".");
        }
        if (passagesK != null && passagesK < 1) {
            throw new ParameterException(spec.commandLine(), "--passages-k must be at least 1, but was " + passagesK + ".");
        }
    }

    /** --context's text: as given, or a file's UTF-8 text after '@'. */
    private String contextText() {
        if (!context.startsWith("@")) {
            return context;
        }
        Path file = Path.of(context.substring(1));
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UsageException("--context " + context + " cannot be read: " + IoErrors.reason(e) + ".", e);
        }
        dev.tandem.runtime.Utf8Text.requireValid(bytes, "the --context file " + file);
        return new String(bytes, java.nio.charset.StandardCharsets.UTF_8);
    }

    /** The diffusion flags: only with --method diffusion, which in turn takes no --max-tokens and decodes greedily. */
    private void checkDiffusionOptions() {
        boolean diffusion = method.equals("diffusion");
        if (!diffusion && (genLength != null || blockLength != null || steps != null || unmask != null || diffusionThreshold != null
                || diffusionCache != null || ccdWindow != null || trace)) {
            throw new ParameterException(spec.commandLine(), "--gen-length, --block-length, --steps, --unmask, --threshold, "
                    + "--ccd-window, --cache and --trace apply to --method diffusion only.");
        }
        if (!diffusion) {
            return;
        }
        if (maxTokens != null) {
            throw new ParameterException(spec.commandLine(), "--max-tokens does not apply to --method diffusion; give the canvas "
                    + "length with --gen-length.");
        }
        UnmaskRule rule = unmaskRule();
        cache();
        if (ccdWindow != null && rule != UnmaskRule.CCD) {
            throw new ParameterException(spec.commandLine(), "--ccd-window applies to --unmask ccd only.");
        }
        if (diffusionThreshold != null && rule != UnmaskRule.THRESHOLD) {
            throw new ParameterException(spec.commandLine(), "--threshold applies to --unmask threshold only.");
        }
        if (steps != null && rule == UnmaskRule.THRESHOLD) {
            throw new ParameterException(spec.commandLine(), "--steps is not used by --unmask threshold, which runs until each "
                    + "block is full.");
        }
        if (topK != null || topP != null || minP != null || repetitionPenalty != null) {
            throw new ParameterException(spec.commandLine(), "--method diffusion takes --temperature (Gumbel noise on each "
                    + "position's argmax) but not --top-k, --top-p, --min-p or --repetition-penalty.");
        }
        if (logprobs != 0) {
            throw new ParameterException(spec.commandLine(), "--logprobs does not apply to --method diffusion.");
        }
        if (trace && (format != Format.json || promptFile != null)) {
            throw new ParameterException(spec.commandLine(), "--trace needs --format json and a single --prompt.");
        }
    }

    private UnmaskRule unmaskRule() {
        try {
            return unmask == null ? UnmaskRule.LOW_CONFIDENCE : UnmaskRule.of(unmask);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
    }

    private DiffusionCache cache() {
        try {
            return diffusionCache == null ? DiffusionCache.NONE : DiffusionCache.of(diffusionCache);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
    }

    /** The canvas and its rule from the diffusion flags, with the model's defaults. */
    private DiffusionParams diffusionParams(LanguageModel lm) {
        Integer fromConfig = lm.generationConfig().maxNewTokens();
        int n = genLength != null ? genLength : fromConfig != null ? fromConfig : DiffusionParams.DEFAULT_GEN_LENGTH;
        UnmaskRule rule = unmaskRule();
        try {
            return new DiffusionParams(n, blockLength != null ? blockLength : n, steps != null ? steps : n, rule,
                    rule == UnmaskRule.THRESHOLD ? (diffusionThreshold != null ? diffusionThreshold : DEFAULT_DIFFUSION_THRESHOLD) : 1,
                    cache(), ccdWindow != null ? ccdWindow : DiffusionParams.DEFAULT_CCD_WINDOW);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /** The strategy --method names, over the target {@code lm} and, for speculative, {@code draftModel}. */
    private DecodingStrategy strategy(LanguageModel lm, LanguageModel draftModel, List<LanguageModel> helpers) {
        if (method.equals("diffusion")) {
            return new DiffusionDecoding(lm, diffusionParams(lm));
        }
        if (DiffusionDecoding.isDiffusionModel(lm)) {
            throw new TandemException(lm.directory().getFileName() + " is a masked-diffusion model (config.json: \"is_causal\": "
                    + "false, \"mask_token_id\": " + lm.config().maskTokenId() + "), so it decodes only with --method diffusion, "
                    + "not --method " + method + ".");
        }
        return switch (method) {
            case "speculative" -> "auto".equals(draftLength)
                    ? SpeculativeDecoding.adaptive(lm, draftModel).withThreshold(
                            draftThreshold != null ? draftThreshold : SpeculativeDecoding.DEFAULT_THRESHOLD)
                    : new SpeculativeDecoding(lm, draftModel, draftLength == null ? 4 : Integer.parseInt(draftLength));
            case "pearl" -> "auto".equals(draftLength) ? PearlDecoding.adaptive(lm, draftModel)
                    : new PearlDecoding(lm, draftModel, draftLength == null ? PearlDecoding.DEFAULT_DRAFT_LENGTH
                    : Integer.parseInt(draftLength));
            case "tree" -> new TreeDecoding(lm, draftModel,
                    treeBudget == null ? TreeDecoding.DEFAULT_NODE_BUDGET : treeBudget,
                    treeTopK == null ? TreeDecoding.DEFAULT_TOP_K : treeTopK,
                    treeDepth == null ? TreeDecoding.DEFAULT_MAX_DEPTH : treeDepth);
            case "collab" -> new CollaborativeDecoding(draftModel, lm,
                    collabRule == null ? CollaborativeDecoding.Rule.MAX_PROB : CollaborativeDecoding.Rule.parse(collabRule),
                    collabThreshold == null ? CollaborativeDecoding.DEFAULT_THRESHOLD : collabThreshold);
            case "aded" -> new AdedDecoding(lm, trigramTable(lm),
                    adedIterations == null ? AdedDecoding.DEFAULT_ITERATIONS : adedIterations,
                    treeDepth == null ? AdedDecoding.DEFAULT_MAX_DEPTH : treeDepth,
                    treeBudget == null ? AdedDecoding.DEFAULT_NODE_CAP : treeBudget);
            case "lookahead" -> new LookaheadDecoding(lm,
                    lookaheadWindow == null ? LookaheadDecoding.DEFAULT_WINDOW : lookaheadWindow,
                    lookaheadNgram == null ? LookaheadDecoding.DEFAULT_NGRAM : lookaheadNgram,
                    lookaheadCandidates == null ? LookaheadDecoding.DEFAULT_CANDIDATES : lookaheadCandidates);
            case "ngram" -> new PromptLookupDecoding(lm, PromptLookupDecoding.DEFAULT_MAX_NGRAM,
                    draftLength == null ? PromptLookupDecoding.DEFAULT_DRAFT_LENGTH : Integer.parseInt(draftLength));
            case "contrastive", "proxy-tune", "cad", "cfg" -> draftModel == null ? mixStrategy(lm, helpers) // MIX_METHODS
                    : new SpeculativeMixDecoding(mixStrategy(lm, helpers), draftModel, draftLength == null ? 4 : Integer.parseInt(draftLength));
            case "beam", "diverse-beam" -> new BeamSearch(lm, beamParams());
            case "dola" -> dola(lm);
            case "caad" -> caad(lm);
            case "lol" -> lol(lm, helpers);
            case "rag" -> new RagDecoding(lm, PassageCache.forModel(lm), retriever(lm));
            case "refrag" -> refrag(lm);
            case "rapid" -> rapid(lm, draftModel);
            default -> new Generator(lm);
        };
    }

    /**
     * The retriever of rag and refrag: --passages checked against this model's tokenizer and the encoder it was built
     * with (opened here, closed when the command ends), retrieving --passages-k passages and saying which on stderr.
     */
    private Retriever retriever(LanguageModel lm) {
        PassageIndex index = PassageIndex.read(passages);
        index.requireDecoder(lm);
        if (encoder == null && !index.encoder().name().equals(Encoders.MINILM)) {
            throw new UsageException(passages + " was built with the encoder " + index.encoder().name()
                    + "; give its directory with --encoder DIR.");
        }
        BertEncoder enc = Encoders.open(encoder, null, threads);
        openEncoder = enc;
        index.requireEncoder(enc);
        int k = passagesK != null ? passagesK : DEFAULT_PASSAGES_K;
        PrintWriter err = spec.commandLine().getErr();
        boolean quiet = promptFile != null || format == Format.json;
        return question -> {
            List<PassageIndex.Hit> hits = index.retrieve(enc, question, k);
            if (!quiet) {
                StringBuilder b = new StringBuilder("[" + method + ": " + hits.size() + " passages of " + passages.getFileName() + ":");
                for (PassageIndex.Hit h : hits) {
                    b.append(String.format(Locale.ROOT, " #%d (%.3f, %d tokens)", h.chunk().number(), h.score(), h.chunk().ids().length));
                }
                err.println(b.append(']'));
                err.flush();
            }
            return hits.stream().map(h -> h.chunk().ids()).toList();
        };
    }

    /** refrag: the retriever's passages in chunks of --chunk-tokens, projected by --projection, --expand of them fed as tokens. */
    private RefragDecoding refrag(LanguageModel lm) {
        Retriever retriever = retriever(lm);
        Embedder embedder = Embedder.batching(openEncoder);
        ChunkProjection map = ChunkProjection.read(projection, embedder.dimension(), lm.config().hiddenSize());
        return new RefragDecoding(lm, embedder, map, new ChunkEmbeddingCache(REFRAG_CACHED_CHUNKS), retriever)
                .withChunkTokens(chunkTokens != null ? chunkTokens : RefragDecoding.DEFAULT_CHUNK_TOKENS)
                .withPolicy(ExpansionPolicy.similarity(expand != null ? expand : ExpansionPolicy.DEFAULT_FRACTION));
    }

    /**
     * rapid: the target reads --context and the prompt; its drafter (--draft, else the target itself) reads the
     * --passages-k chunks of the context most similar to the prompt, in the context's order, and the prompt. The context is
     * cut and embedded once, here.
     */
    private DecodingStrategy rapid(LanguageModel lm, LanguageModel draftModel) {
        String text = contextText();
        int[] contextIds = new Generator(lm).promptIds(GenerationRequest.of(text));
        int n = chunkTokens != null ? chunkTokens : DEFAULT_RAPID_CHUNK_TOKENS;
        Chunker chunker = new Chunker(lm.tokenizer(), n);
        List<Chunker.Document> documents = Chunker.documents(text);
        Path source = context.startsWith("@") ? Path.of(context.substring(1)) : Path.of("--context");
        PassageIndex.Corpus corpus = new PassageIndex.Corpus(source, PassageIndex.TokenizerIdentity.of(lm.directory()),
                lm.config().vocabSize(), n, documents, chunker.chunks(documents));
        if (corpus.chunks().isEmpty()) {
            throw new UsageException("--context holds no text for the drafter to read.");
        }
        BertEncoder enc = Encoders.open(encoder, null, threads);
        openEncoder = enc;
        PassageIndex index = PassageIndex.build(corpus, enc, true, dev.tandem.runtime.Progress.NONE);
        int k = passagesK != null ? passagesK : DEFAULT_PASSAGES_K;
        RapidDecoding method;
        try {
            method = new RapidDecoding(lm, draftModel != null ? draftModel : lm,
                    draftLength != null ? Integer.parseInt(draftLength) : DEFAULT_RAPID_DRAFT_LENGTH, eta != null ? eta : DEFAULT_RAPID_ETA);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
        int[] prefix = lm.tokenizer().withSpecialTokens(new int[0]);
        PrintWriter err = spec.commandLine().getErr();
        boolean quiet = promptFile != null || format == Format.json;
        return new DecodingStrategy() {
            @Override
            public String name() {
                return "rapid";
            }

            @Override
            public dev.tandem.decoding.DecodingTask task(GenerationRequest request) {
                String question = request.prompt() != null ? request.prompt() : lm.tokenizer().decode(request.promptIds());
                int[] questionIds = request.promptIds() != null ? request.promptIds() : lm.tokenizer().encode(request.prompt());
                List<PassageIndex.Chunk> chosen = new ArrayList<>(index.retrieve(enc, question, k).stream().map(PassageIndex.Hit::chunk).toList());
                chosen.sort(java.util.Comparator.comparingInt(PassageIndex.Chunk::number));
                int drafterLength = prefix.length + questionIds.length + chosen.stream().mapToInt(c -> c.ids().length).sum();
                int[] drafterPrompt = java.util.Arrays.copyOf(prefix, drafterLength);
                int at = prefix.length;
                for (PassageIndex.Chunk c : chosen) {
                    System.arraycopy(c.ids(), 0, drafterPrompt, at, c.ids().length);
                    at += c.ids().length;
                }
                System.arraycopy(questionIds, 0, drafterPrompt, at, questionIds.length);
                int[] targetPrompt = java.util.Arrays.copyOf(contextIds, contextIds.length + questionIds.length);
                System.arraycopy(questionIds, 0, targetPrompt, contextIds.length, questionIds.length);
                if (!quiet) {
                    err.printf(Locale.ROOT, "[rapid: the target reads %d tokens, the drafter %d: chunks %s of %d]%n", targetPrompt.length,
                            drafterPrompt.length, chosen.stream().map(c -> "#" + c.number()).toList(), index.size());
                    err.flush();
                }
                return method.task(new GenerationRequest(null, targetPrompt, request.maxTokens(), request.sampling(), request.stop(),
                        request.eosTokenIds(), request.logprobs(), request.streamId()), drafterPrompt);
            }
        };
    }

    /** Chunk vectors refrag keeps for the life of the command (a --prompt-file's prompts may share passages). */
    private static final int REFRAG_CACHED_CHUNKS = 4096;

    /** The logit-mixing method --method names, over {@code lm} and the models of {@link #helperModels}, in their order. */
    private LogitMixDecoding mixStrategy(LanguageModel lm, List<LanguageModel> helpers) {
        try {
            return switch (method) {
                case "contrastive" -> LogitMixDecoding.contrastive(lm, helpers.get(0),
                        alpha != null ? alpha : DEFAULT_CONTRASTIVE_ALPHA, beta != null ? beta : DEFAULT_CONTRASTIVE_BETA);
                case "proxy-tune" -> LogitMixDecoding.proxyTuning(lm, helpers.get(0), helpers.get(1),
                        alpha != null ? alpha : DEFAULT_PROXY_ALPHA);
                case "cad" -> LogitMixDecoding.contextAware(lm, contextText(), alpha != null ? alpha : DEFAULT_CAD_ALPHA);
                default -> LogitMixDecoding.guidance(lm, negativePrompt, scale != null ? scale : DEFAULT_CFG_SCALE);
            };
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /** Models loaded together and closed together (the last loaded first). */
    record LoadedModels(List<LanguageModel> models) implements AutoCloseable {
        static LoadedModels load(List<Path> dirs, java.util.function.Function<Path, ModelLoader.Options> options) {
            List<LanguageModel> models = new ArrayList<>();
            try {
                for (Path d : dirs) {
                    models.add(ModelLoader.load(d, options.apply(d)));
                }
            } catch (RuntimeException | Error e) {
                new LoadedModels(models).close();
                throw e;
            }
            return new LoadedModels(List.copyOf(models));
        }

        @Override
        public void close() {
            for (int i = models.size() - 1; i >= 0; i--) {
                models.get(i).close();
            }
        }
    }

    /** DoLa over --layers; the repetition penalty is --repetition-penalty when given (1 turns it off), else DoLa's 1.2. */
    private LayerContrastDecoding dola(LanguageModel lm) {
        int[] candidates;
        try {
            candidates = java.util.Arrays.stream(layers.split(",", -1)).map(String::strip).mapToInt(Integer::parseInt).toArray();
        } catch (NumberFormatException e) {
            throw new UsageException("--layers must be whole numbers separated by commas, but was \"" + layers + "\".", e);
        }
        try {
            return LayerContrastDecoding.dola(lm, candidates, alpha != null ? alpha : LayerContrastDecoding.DEFAULT_ALPHA,
                    repetitionPenalty != null ? repetitionPenalty : LayerContrastDecoding.DEFAULT_REPETITION_PENALTY);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /** caad over the store of --grounding (built, with a progress bar, or reused). */
    private LogitMixDecoding caad(LanguageModel lm) {
        dev.tandem.decoding.mix.GroundingStore store;
        try (ProgressBar bar = new ProgressBar("grounding store " + grounding.getFileName(), ProgressBar.Unit.COUNT,
                spec.commandLine().getErr())) {
            store = dev.tandem.decoding.mix.GroundingStore.open(lm, grounding, bar);
        }
        try {
            return LogitMixDecoding.grounded(lm, store, neighbours != null ? neighbours : LogitMixDecoding.DEFAULT_GROUNDING_NEIGHBOURS,
                    weight != null ? weight : LogitMixDecoding.DEFAULT_GROUNDING_WEIGHT);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /** LOL: contrastive decoding of the final layers plus --lambda times that of --layer. */
    private LogitMixDecoding lol(LanguageModel lm, List<LanguageModel> helpers) {
        try {
            return LogitMixDecoding.lowerLayerContrast(lm, helpers.get(0), layer, alpha != null ? alpha : DEFAULT_CONTRASTIVE_ALPHA,
                    beta != null ? beta : DEFAULT_CONTRASTIVE_BETA, lambda != null ? lambda : LogitMixDecoding.DEFAULT_LOWER_LAYER_WEIGHT);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /** --beams, --groups, --diversity, --length-penalty and --n-best as beam search takes them. */
    private BeamParams beamParams() {
        try {
            return new BeamParams(beams, groups != null ? groups : 1,
                    diversity != null ? diversity : method.equals("beam") ? 0 : BeamParams.DEFAULT_DIVERSITY,
                    lengthPenalty != null ? lengthPenalty : BeamParams.DEFAULT_LENGTH_PENALTY, nBest != null ? nBest : 1);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /** The directories of the other models the method mixes with the --model: --amateur, or --tuned and --base. */
    private List<Path> helperDirectories() {
        return switch (method) {
            case "contrastive", "lol" -> List.of(amateur);
            case "proxy-tune" -> List.of(tuned, base);
            default -> List.of();
        };
    }

    /** ADED's table: --ngram-corpus read with the model's tokenizer (a progress bar on stderr), else empty. */
    private TrigramTable trigramTable(LanguageModel lm) {
        if (ngramCorpus == null) {
            return TrigramTable.empty();
        }
        try (ProgressBar bar = new ProgressBar("reading " + ngramCorpus.getFileName(), ProgressBar.Unit.BYTES,
                spec.commandLine().getErr())) {
            return TrigramTable.fromCorpus(lm.tokenizer(), ngramCorpus, bar);
        }
    }

    /**
     * PEARL's two thread groups out of {@code --threads}: {target, draft}. The draft takes
     * {@code --draft-threads} (default 1), the target the rest and at least one (with a single processor both
     * get one and take turns on it).
     */
    private int[] threadSplit() {
        int total = threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
        int forDraft = draftThreads != null ? draftThreads : 1;
        if (threads > 0 && draftThreads != null && forDraft >= total) {
            throw new ParameterException(spec.commandLine(), "--draft-threads (" + forDraft + ") must leave the target at "
                    + "least one of the " + total + " --threads.");
        }
        return new int[] {Math.max(1, total - forDraft), forDraft};
    }

    /**
     * Threads and KV cache from the options: {@code --kv-memory} when given, else room for
     * {@code sequences} full contexts, at most 1 GiB, in {@code --kv-dtype}.
     */
    private ModelLoader.Options loadOptions(Path dir, int sequences) {
        DType dtype = switch (kvDtype.toLowerCase(Locale.ROOT)) {
            case "f32" -> DType.F32;
            case "bf16" -> DType.BF16;
            default -> throw new UsageException("--kv-dtype must be f32 or bf16, but was \"" + kvDtype + "\".");
        };
        if (!Backends.names().contains(device) && !Backends.AUTO.equals(device)) {
            throw new ParameterException(spec.commandLine(), "--device must be one of " + String.join(", ", Backends.names())
                    + " or " + Backends.AUTO + ", but was \"" + device + "\".");
        }
        if (chosenDevice == null) {
            chosenDevice = device;
            if (Backends.AUTO.equals(device)) {
                Backends.Choice choice = Backends.choose(device);
                chosenDevice = choice.name();
                spec.commandLine().getErr().println("device: " + chosenDevice + " (" + choice.why() + ")");
            }
        }
        ModelLoader.Options options = ModelLoader.Options.defaults().withThreads(threads).withKvDtype(dtype)
                .withMappedWeights(mmap).withDevice(chosenDevice);
        if (kvMemory != null) {
            return options.withKvMemory(Sizes.parseBytes(kvMemory, "--kv-memory"));
        }
        if (sequences > 1) {
            return options.withKvMemory(Sizes.kvMemoryFor(dir, sequences, dtype));
        }
        return options;
    }

    /**
     * With {@code --chat}, the template that turns the prompt into a conversation: {@code --chat-template}'s, else
     * the model's; null without {@code --chat}.
     *
     * @throws UsageException if the model has none and no {@code --chat-template} is given, or the template is unusable
     */
    private ChatTemplate chatTemplate(Path dir) {
        if (!chat) {
            if (system != null || chatTemplate != null) {
                throw new ParameterException(spec.commandLine(), (system != null ? "--system" : "--chat-template")
                        + " applies to chat prompts; add --chat.");
            }
            return null;
        }
        try {
            if (chatTemplate != null) {
                return ChatTemplate.fromFile(chatTemplate);
            }
            return ChatTemplate.forModel(dir).orElseThrow(() -> new UsageException(dir.getFileName() != null
                    && dir.getFileName().toString().endsWith(".gguf")
                    ? "the model " + dir + " has no chat template in its tokenizer.chat_template metadata; give --chat-template FILE."
                    : "the model " + dir + " has no chat template in tokenizer_config.json; give --chat-template FILE."));
        } catch (UsageException e) {
            throw e;
        } catch (TandemException e) {
            throw new UsageException(e.getMessage(), e);
        }
    }

    /**
     * With {@code --chat}, {@code request} with its prompt text replaced by the ids of the conversation [--system, user]
     * rendered by {@code template} (the same path as the HTTP server's and langchain4j's, {@link ChatTemplate#promptIds});
     * unchanged otherwise.
     */
    private GenerationRequest asChat(GenerationRequest request, LanguageModel lm, ChatTemplate template) {
        if (template == null) {
            return request;
        }
        List<ChatMessage> messages = new ArrayList<>();
        if (system != null) {
            messages.add(ChatMessage.system(system));
        }
        messages.add(ChatMessage.user(request.prompt()));
        int[] ids;
        try {
            ids = template.promptIds(lm.tokenizer(), messages, true);
        } catch (ChatTemplateException e) {
            throw new UsageException(e.getMessage(), e);
        }
        return new GenerationRequest(null, ids, request.maxTokens(), request.sampling(), request.stop(),
                request.eosTokenIds(), request.logprobs(), request.streamId());
    }

    /** A prompt of {@code --prompt-file}: its line number (for messages), its text and its RNG stream. */
    record PromptLine(int line, String prompt, long stream) {
    }

    /** How a prompt file's lines are written, the end of every sentence that refuses one. */
    private static final String LINE_FORMS = "write each prompt as a JSON string or a {\"prompt\": TEXT, \"stream\": N} "
            + "object, one per line";

    /**
     * The prompts of a JSON-lines file, each with its line number and stream (its own {@code "stream"}, else
     * its index among the prompts); a bad line is one sentence naming the file, the line and the field.
     */
    static List<PromptLine> readPromptFile(Path file) {
        List<PromptLine> prompts = new ArrayList<>();
        try (InputStream in = Files.newInputStream(file)) {
            new JsonLines(in, file.toString()).forEach(LINE_FORMS, (line, where, node) -> {
                if (node.isTextual()) {
                    prompts.add(new PromptLine(line, node.textValue(), prompts.size()));
                } else if (node.isObject()) {
                    prompts.add(promptObject(where, line, node, prompts.size()));
                } else {
                    throw new TandemException(where + " is a JSON " + typeName(node) + ", not a string or an object; "
                            + LINE_FORMS + ".");
                }
            });
        } catch (NoSuchFileException e) {
            throw new TandemException("the prompt file " + file + " does not exist.");
        } catch (IOException e) {
            throw new TandemException("cannot read the prompt file " + file + " (" + IoErrors.reason(e) + ").");
        }
        if (prompts.isEmpty()) {
            throw new TandemException("the prompt file " + file + " holds no prompts; " + LINE_FORMS + ".");
        }
        return prompts;
    }

    /** A prompt line written as {@code {"prompt": TEXT, "stream": N}}; {@code index} is its stream unless it gives one. */
    private static PromptLine promptObject(String where, int line, JsonNode node, long index) {
        for (Map.Entry<String, JsonNode> field : node.properties()) {
            if (!field.getKey().equals("prompt") && !field.getKey().equals("stream")) {
                throw new TandemException(where + " has the field \"" + field.getKey() + "\", which a prompt object does "
                        + "not take; give \"prompt\" and, if you like, \"stream\".");
            }
        }
        JsonNode text = node.get("prompt");
        if (text == null) {
            throw new TandemException(where + " has no \"prompt\" field; give the prompt text as \"prompt\": TEXT.");
        }
        if (!text.isTextual()) {
            throw new TandemException(where + " has a \"prompt\" that is a JSON " + typeName(text) + ", not a string.");
        }
        JsonNode stream = node.get("stream");
        if (stream == null) {
            return new PromptLine(line, text.textValue(), index);
        }
        if (!stream.isIntegralNumber() || !stream.canConvertToLong() || stream.longValue() < 0) {
            throw new TandemException(where + " has \"stream\": " + stream + ", but a stream must be a whole number from 0 to "
                    + Long.MAX_VALUE + ".");
        }
        return new PromptLine(line, text.textValue(), stream.longValue());
    }

    private static String typeName(JsonNode node) {
        return node.getNodeType().name().toLowerCase(Locale.ROOT);
    }

    /**
     * Decodes every prompt together through one engine, by {@code method} (each with the same options and seed as a lone
     * {@code --prompt} run and its own stream, so each line's tokens are the ones that run gives with
     * {@code --stream} the line's stream) and prints the results as JSON lines in input order. Every
     * prompt is encoded and checked before any decoding.
     */
    private void generateAll(LanguageModel lm, DecodingStrategy method, List<PromptLine> prompts, ChatTemplate template,
                             PrintWriter out) throws Exception {
        long usedSeed = seed != null ? seed : new SecureRandom().nextLong();
        Generator checker = new Generator(lm);
        List<GenerationRequest> requests = new ArrayList<>();
        for (PromptLine p : prompts) {
            GenerationRequest request;
            try {
                request = asChat(withOptions(GenerationRequest.withModelDefaults(lm, p.prompt(), usedSeed)), lm, template)
                        .withStreamId(p.stream());
                checker.promptIds(request);
            } catch (TandemException e) {
                throw new TandemException(promptFile + " line " + p.line() + ": " + e.getMessage(), e);
            }
            requests.add(request);
        }
        Engine.Options options = Engine.Options.defaults().withMaxQueued(requests.size());
        try (Engine engine = new Engine(lm, options)) {
            List<EngineHandle> handles = new ArrayList<>();
            for (int i = 0; i < requests.size(); i++) {
                try {
                    handles.add(engine.submit(requests.get(i), method, null));
                } catch (TandemException e) {
                    throw new TandemException(promptFile + " line " + prompts.get(i).line() + ": " + e.getMessage(), e);
                }
            }
            for (int i = 0; i < handles.size(); i++) {
                out.println(toJson(handles.get(i).result(), lm, requests.get(i), false));
                out.flush();
            }
        }
    }

    /** Options given on the command line win over the model's generation_config.json defaults. */
    private GenerationRequest withOptions(GenerationRequest request) {
        SamplingParams p = request.sampling();
        if (method.equals("diffusion")) {
            // Diffusion takes a temperature alone (Gumbel noise), not the generation config's sampling knobs.
            p = SamplingParams.greedy().withSeed(p.seed());
        }
        try {
            if (temperature != null) {
                p = p.withTemperature(temperature);
            }
            if (topK != null) {
                p = p.withTopK(topK);
            }
            if (topP != null) {
                p = p.withTopP(topP);
            }
            if (minP != null) {
                p = p.withMinP(minP);
            }
            if (repetitionPenalty != null) {
                p = p.withRepetitionPenalty(repetitionPenalty);
            }
            request = request.withSampling(p).withStop(stop).withLogprobs(logprobs);
            return maxTokens != null ? request.withMaxTokens(maxTokens) : request;
        } catch (IllegalArgumentException e) {
            throw new UsageException(optionNames(e.getMessage()), e);
        }
    }

    /** Says "--top-p" where the library says "topP", so the sentence names what the user typed. */
    private static String optionNames(String message) {
        String[][] names = {{"temperature", "--temperature"}, {"topK", "--top-k"}, {"topP", "--top-p"},
                {"minP", "--min-p"}, {"repetitionPenalty", "--repetition-penalty"}, {"max tokens", "--max-tokens"},
                {"logprobs", "--logprobs"}, {"a stop string", "--stop"}};
        for (String[] n : names) {
            if (message.startsWith(n[0])) {
                return n[1] + message.substring(n[0].length());
            }
        }
        return message;
    }

    private static String toJson(GenerationResult r, LanguageModel lm, GenerationRequest request, boolean indent) throws Exception {
        return toJson(r, lm, request, indent, null, false);
    }

    /**
     * The JSON object of a result; for diffusion ({@code trace} non-null) also "diffusion": passes, positions and the
     * positions committed by each pass, and with {@code withTrace} the steps themselves as "trace".
     */
    private static String toJson(GenerationResult r, LanguageModel lm, GenerationRequest request, boolean indent,
                                 List<int[][]> trace, boolean withTrace) throws Exception {
        SamplingParams sampling = request.sampling();
        ObjectMapper json = new ObjectMapper().configure(SerializationFeature.INDENT_OUTPUT, indent);
        ObjectNode root = json.createObjectNode();
        root.put("model", lm.directory().toString());
        ArrayNode promptIds = root.putArray("prompt_ids");
        for (int id : r.promptIds()) {
            promptIds.add(id);
        }
        ArrayNode generated = root.putArray("generated_ids");
        for (int id : r.generatedIds()) {
            generated.add(id);
        }
        root.put("text", r.text());
        root.put("finish_reason", r.finishReason().wireName());
        ObjectNode usage = root.putObject("usage");
        usage.put("prompt_tokens", r.usage().promptTokens());
        usage.put("completion_tokens", r.usage().completionTokens());
        usage.put("total_tokens", r.usage().totalTokens());
        ObjectNode stats = root.putObject("stats");
        stats.put("prefill_ms", round(r.stats().prefillMillis()));
        stats.put("decode_ms", round(r.stats().decodeMillis()));
        stats.put("decode_steps", r.stats().decodeSteps());
        stats.put("decode_tokens_per_s", round(r.decodeTokensPerSecond()));
        stats.put("backend", lm.backend().name());
        root.set("decode_stats", json.valueToTree(r.decodeStats().toMap()));
        ObjectNode s = root.putObject("sampling");
        s.put("temperature", sampling.temperature());
        s.put("top_k", sampling.topK());
        s.put("top_p", sampling.topP());
        s.put("min_p", sampling.minP());
        s.put("repetition_penalty", sampling.repetitionPenalty());
        s.put("seed", sampling.seed());
        s.put("stream", request.streamId());
        if (!r.logprobs().isEmpty() && !Float.isNaN(r.logprobs().getFirst().logprob())) {
            Tokenizer tok = lm.tokenizer();
            ArrayNode lp = root.putArray("logprobs");
            for (TokenEvent e : r.logprobs()) {
                ObjectNode o = lp.addObject();
                o.put("token", e.token());
                o.put("text", tok.decode(new int[] {e.token()}));
                o.put("logprob", e.logprob());
                ArrayNode top = o.putArray("top_logprobs");
                for (TokenLogprob t : e.topLogprobs()) {
                    ObjectNode to = top.addObject();
                    to.put("token", t.token());
                    to.put("text", tok.decode(new int[] {t.token()}));
                    to.put("logprob", t.logprob());
                }
            }
        }
        if (!r.hypotheses().isEmpty()) {
            ArrayNode hs = root.putArray("hypotheses");
            for (var h : r.hypotheses()) {
                ObjectNode o = hs.addObject();
                ArrayNode ids = o.putArray("generated_ids");
                for (int id : h.generatedIds()) {
                    ids.add(id);
                }
                o.put("text", h.text());
                o.put("score", h.score());
                o.put("logprob", h.logprob());
                o.put("finish_reason", h.finishReason().wireName());
                o.put("group", h.group());
            }
        }
        if (trace != null) {
            ObjectNode d = root.putObject("diffusion");
            d.put("passes", trace.size());
            d.put("positions", r.generatedIds().length);
            d.put("positions_per_pass", round(r.generatedIds().length / (double) Math.max(1, trace.size())));
            ArrayNode perPass = d.putArray("committed_per_pass");
            trace.forEach(step -> perPass.add(step.length));
        }
        if (trace != null && withTrace) {
            ArrayNode steps = root.putArray("trace");
            for (int[][] step : trace) {
                ArrayNode pairs = steps.addArray();
                for (int[] pair : step) {
                    pairs.addArray().add(pair[0]).add(pair[1]);
                }
            }
        }
        return json.writeValueAsString(root);
    }

    private static double round(double v) {
        return Math.round(v * 1000.0) / 1000.0;
    }
}
