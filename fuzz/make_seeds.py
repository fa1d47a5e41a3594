#!/usr/bin/env python3
"""Writes the fuzz tests' seed corpora from the repository's own files (run from the repository root).

Safetensors seeds are cut from the shipped checkpoints: each keeps the real header entries and the real
bytes of a checkpoint's small tensors (norms, a projection), so that the fuzzer starts from valid files of
every dtype Tandem reads without mutating megabytes of weights. Tokenizer seeds are the shipped tokenizer
and copies of the real published ones (SentencePiece BPE, Llama 3, Qwen 3) cut down to their first 400
tokens, with the merges among those kept and the added tokens renumbered after them, and all-MiniLM-L6-v2's
WordPiece one cut to its special tokens and the 2,000 ids after BERT's unused ones. The other seeds are
the repository's config files and small hand-written inputs. The script is deterministic: rerunning it
rewrites the same bytes.
"""
import gzip
import json
import os
import struct

ROOT = os.getcwd()
RES = os.path.join(ROOT, "fuzz/src/test/resources/dev/tandem")
SHARED_TOKENIZERS = os.path.join(ROOT, "transformer/src/test/resources/tokenizers")


def out_dir(package, test, method):
    d = os.path.join(RES, package, test + "Inputs", method)
    os.makedirs(d, exist_ok=True)
    return d


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        data = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, end = e["data_offsets"]
            f.seek(base + b)
            data[name] = (e["dtype"], e["shape"], f.read(end - b))
    return header.get("__metadata__"), data


def safetensors_bytes(tensors, metadata):
    header, offset, blob = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blob += raw
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the header padded to 8 bytes, as the reference writer does
    return struct.pack("<Q", len(text)) + text + blob


def safetensors_seeds():
    d = out_dir("fuzz", "SafetensorsFuzzTest", "safetensors")
    for checkpoint, seed, metadata in [("models/bard-s", "bard-s-f32", {"format": "pt"}),
                                       ("transformer/src/test/resources/families/llama-bf16", "llama-bf16", None),
                                       ("transformer/src/test/resources/families/qwen3-f16", "qwen3-f16", {"format": "pt"})]:
        _, data = read_safetensors(os.path.join(ROOT, checkpoint, "model.safetensors"))
        small = [(n, t) for n, t in data.items() if len(t[2]) <= 4096]
        small.sort(key=lambda nt: nt[0])
        write(d, seed + ".safetensors", safetensors_bytes(small[:6], metadata))


def shard_index_seeds():
    """An index over the bard-s and qwen3 safetensors seeds, which ShardIndexFuzzTest lays out as two shards."""
    d = out_dir("fuzz", "ShardIndexFuzzTest", "shardIndex")
    src = os.path.join(RES, "fuzz", "SafetensorsFuzzTestInputs", "safetensors")
    _, first = read_safetensors(os.path.join(src, "bard-s-f32.safetensors"))
    _, second = read_safetensors(os.path.join(src, "qwen3-f16.safetensors"))
    weight_map = {n: "model-00001-of-00002.safetensors" for n in sorted(first)}
    weight_map.update({n: "model-00002-of-00002.safetensors" for n in sorted(second) if n not in first})
    size = sum(len(t[2]) for t in first.values()) + sum(len(second[n][2]) for n in second if n not in first)
    write(d, "two-shards.json", json.dumps({"metadata": {"total_size": size}, "weight_map": weight_map}, indent=2))


def cut_tokenizer(t, keep=400):
    model = t["model"]
    vocab = {tok: i for tok, i in model["vocab"].items() if i < keep}
    # SentencePiece's word marker is a token of its own; without it every word start decodes through bytes.
    for tok in ["\u2581"]:
        if tok in model["vocab"] and tok not in vocab:
            vocab[tok] = keep
            keep += 1
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    model["vocab"], model["merges"] = vocab, merges
    renumber = {}
    for added in t.get("added_tokens", []):
        if added["id"] >= keep:
            renumber[added["id"]] = keep + len(renumber)
            added["id"] = renumber[added["id"]]
    post = json.dumps(t.get("post_processor"))
    for old, new in renumber.items():
        post = post.replace("[%d]" % old, "[%d]" % new)
    t["post_processor"] = json.loads(post)
    return json.dumps(t, ensure_ascii=False, indent=1)


def cut_wordpiece(t):
    # BERT's vocabulary starts with [PAD], [unused], [UNK] [CLS] [SEP] [MASK] and more [unused] up to id 998;
    # keep the special ones and the 2,000 after, single characters and the commonest words with their
    # ## pieces. The ids stay as they are: the post-processor's and the added tokens' still hold.
    model = t["model"]
    model["vocab"] = {tok: i for tok, i in model["vocab"].items() if i < 104 or 999 <= i < 2999}
    return json.dumps(t, ensure_ascii=False, indent=1)


def tokenizer_seeds():
    d = out_dir("fuzz", "TokenizerFuzzTest", "tokenizer")
    with open(os.path.join(ROOT, "models/bard-s/tokenizer.json"), "rb") as f:
        bard = f.read()
    write(d, "bard.json", bard)
    write(d, "bard-cut.json", cut_tokenizer(json.loads(bard)))
    for name in ["spm32k", "llama3", "qwen3"]:
        with gzip.open(os.path.join(SHARED_TOKENIZERS, name, "tokenizer.json.gz"), "rt", encoding="utf-8") as f:
            write(d, name + "-cut.json", cut_tokenizer(json.load(f)))
    with gzip.open(os.path.join(SHARED_TOKENIZERS, "minilm", "tokenizer.json.gz"), "rt", encoding="utf-8") as f:
        write(d, "minilm-cut.json", cut_wordpiece(json.load(f)))


def config_seeds():
    d = out_dir("fuzz", "ModelConfigFuzzTest", "config")
    dirs = ["models/" + m for m in ["bard-s", "bard-m", "bard-l"]]
    fam = "transformer/src/test/resources/families"
    dirs += [fam + "/" + f for f in sorted(os.listdir(os.path.join(ROOT, fam))) if os.path.isdir(os.path.join(ROOT, fam, f))]
    for m in dirs:
        with open(os.path.join(ROOT, m, "config.json"), "rb") as f:
            write(d, os.path.basename(m) + ".json", f.read())


def generation_config_seeds():
    d = out_dir("fuzz", "GenerationConfigFuzzTest", "generationConfig")
    write(d, "llama3.json", json.dumps({"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
                                        "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0"}, indent=2))
    write(d, "qwen.json", json.dumps({"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                                      "pad_token_id": 151643, "temperature": 0.7, "top_k": 20, "top_p": 0.8,
                                      "repetition_penalty": 1.05, "transformers_version": "4.51.0"}, indent=2))
    write(d, "greedy.json", json.dumps({"bos_token_id": 1, "eos_token_id": 2, "max_new_tokens": 256, "min_p": 0.05,
                                        "do_sample": False}, indent=2))


def jsonl_seeds():
    d = out_dir("app", "PromptFileFuzzTest", "promptFile")
    write(d, "strings.jsonl", '"Once upon a time"\n"The king said"\n')
    write(d, "objects.jsonl", '{"prompt": "Once upon a time", "stream": 3}\n\n{"prompt": "naïve café 東京 🙂"}\r\n')
    d = out_dir("app", "TokenizeStdinFuzzTest", "tokenizeStdin")
    # The first byte picks the mode: even encodes, odd decodes.
    write(d, "encode.bin", b"\x00" + '"Once upon a time"\n"naïve café 東京 🙂 <|endoftext|>"\n'.encode("utf-8"))
    write(d, "decode.bin", b"\x01[2047, 40, 41, 42]\n[]\n")


def gguf_bytes(metadata, tensors):
    """GGUF v3 as llama.cpp lays it out: metadata [(key, type id, payload bytes)], tensors [(name, ne, ggml type, data)]."""
    def string(t):
        b = t.encode("utf-8")
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, type_id, payload in metadata:
        out += string(key) + struct.pack("<I", type_id) + payload
    offset = 0
    for name, ne, ggml_type, data in tensors:
        out += string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", ggml_type, offset)
        offset += (len(data) + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % 32)
    return out


def gguf_seeds():
    """A tiny llama GGUF (one layer, hidden 32, a six-token gpt2 tokenizer) with one tensor of every ggml type Tandem
    reads, and a tiny SentencePiece-style tokenizer beside it, so the fuzzer reaches the config and tokenizer code."""
    d = out_dir("fuzz", "GgufFuzzTest", "gguf")
    def s(t):
        b = t.encode("utf-8")
        return struct.pack("<Q", len(b)) + b
    def u32(v):
        return struct.pack("<I", v)
    def f32(v):
        return struct.pack("<f", v)
    def arr(type_id, items):
        return struct.pack("<IQ", type_id, len(items)) + b"".join(items)
    tokens = ["a", "b", "ab", "\u0120", "\u0120a", "<|end|>"]
    common = [("general.architecture", 8, s("llama")), ("general.name", 8, s("tiny")),
              ("llama.context_length", 4, u32(64)), ("llama.embedding_length", 4, u32(32)),
              ("llama.block_count", 4, u32(1)), ("llama.feed_forward_length", 4, u32(32)),
              ("llama.attention.head_count", 4, u32(2)), ("llama.attention.head_count_kv", 4, u32(1)),
              ("llama.attention.layer_norm_rms_epsilon", 6, f32(1e-5)), ("llama.rope.freq_base", 6, f32(10000.0)),
              ("llama.vocab_size", 4, u32(6)), ("tokenizer.ggml.bos_token_id", 4, u32(5)),
              ("tokenizer.ggml.eos_token_id", 4, u32(5))]
    gpt2 = [("tokenizer.ggml.model", 8, s("gpt2")), ("tokenizer.ggml.pre", 8, s("llama-bpe")),
            ("tokenizer.ggml.tokens", 9, arr(8, [s(t) for t in tokens])),
            ("tokenizer.ggml.token_type", 9, arr(5, [struct.pack("<i", 3 if t == "<|end|>" else 1) for t in tokens])),
            ("tokenizer.ggml.merges", 9, arr(8, [s("a b"), s("\u0120 a")])),
            ("tokenizer.ggml.add_bos_token", 7, b"\x01")]
    def f32s(n, seed):
        return b"".join(f32(((i * 7 + seed) % 13 - 6) / 8.0) for i in range(n))
    def f16s(n):
        return b"".join(struct.pack("<e", ((i * 5) % 11 - 5) / 4.0) for i in range(n))
    def q8_0(blocks):
        return b"".join(struct.pack("<e", 0.125) + bytes((j * 3 + b) % 256 for j in range(32)) for b in range(blocks))
    def q4_0(blocks):
        return b"".join(struct.pack("<e", 0.5) + bytes((j * 17 + b) % 256 for j in range(16)) for b in range(blocks))
    def q4_k(blocks):
        return b"".join(struct.pack("<ee", 0.25, 0.125) + bytes(range(12)) + bytes((j * 11) % 256 for j in range(128))
                        for _ in range(blocks))
    def q6_k(blocks):
        return b"".join(bytes((j * 7) % 256 for j in range(192)) + bytes(range(16)) + struct.pack("<e", 0.0625)
                        for _ in range(blocks))
    tensors = [("token_embd.weight", [32, 6], 8, q8_0(6)), ("output_norm.weight", [32], 0, f32s(32, 1)),
               ("blk.0.attn_norm.weight", [32], 0, f32s(32, 2)), ("blk.0.attn_q.weight", [32, 32], 1, f16s(1024)),
               ("blk.0.attn_k.weight", [32, 16], 30, struct.pack("<512H", *[(0x3c00 + i) & 0xffff for i in range(512)])),
               ("blk.0.attn_v.weight", [32, 16], 2, q4_0(16)), ("blk.0.attn_output.weight", [32, 32], 0, f32s(1024, 3)),
               ("blk.0.ffn_norm.weight", [32], 0, f32s(32, 4)), ("blk.0.ffn_gate.weight", [256, 1], 12, q4_k(1)),
               ("blk.0.ffn_up.weight", [256, 1], 14, q6_k(1)), ("blk.0.ffn_down.weight", [32, 32], 0, f32s(1024, 5))]
    write(d, "tiny-llama-gpt2.gguf", gguf_bytes(common + gpt2, tensors))
    pieces = ["<unk>", "<s>", "</s>", "<0x0A>", "\u2581", "a", "\u2581a", "b", "ab", "\u2581ab"]
    spm = [("tokenizer.ggml.model", 8, s("llama")),
           ("tokenizer.ggml.tokens", 9, arr(8, [s(t) for t in pieces])),
           ("tokenizer.ggml.scores", 9, arr(6, [f32(-float(i)) for i in range(len(pieces))])),
           ("tokenizer.ggml.token_type", 9, arr(5, [struct.pack("<i", t) for t in [2, 3, 3, 6, 1, 1, 1, 1, 1, 1]])),
           ("tokenizer.ggml.add_space_prefix", 7, b"\x01"), ("tokenizer.ggml.unknown_token_id", 4, u32(0))]
    common_spm = [m if m[0] != "llama.vocab_size" else ("llama.vocab_size", 4, u32(10)) for m in common]
    common_spm = [m if m[0] not in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id") else (m[0], 4, u32(1 if "bos" in m[0] else 2))
                  for m in common_spm]
    tensors_spm = [("token_embd.weight", [32, 10], 0, f32s(320, 6))] + tensors[1:]
    write(d, "tiny-llama-spm.gguf", gguf_bytes(common_spm + spm, tensors_spm))


if __name__ == "__main__":
    safetensors_seeds()
    shard_index_seeds()
    tokenizer_seeds()
    config_seeds()
    generation_config_seeds()
    jsonl_seeds()
    gguf_seeds()
