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


if __name__ == "__main__":
    safetensors_seeds()
    shard_index_seeds()
    tokenizer_seeds()
    config_seeds()
    generation_config_seeds()
    jsonl_seeds()
