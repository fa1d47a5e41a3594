#!/usr/bin/python3
"""Small random-weight checkpoints of the llama, mistral, qwen2 and qwen3 families, with golden outputs.

Run from anywhere with the system Python that has torch (torch >= 1.13, numpy):

    /usr/bin/python3 tools/goldens/make_family_goldens.py [name ...]
    /usr/bin/python3 tools/goldens/make_family_goldens.py --check-bard

The first form rewrites transformer/src/test/resources/families/<name>/{config.json, model.safetensors,
tokenizer.json, golden.json} for every checkpoint in CHECKPOINTS (or the ones named). The output is deterministic (fixed
torch seed per checkpoint; the CPU float32 kernels decide the last bits of the logits).

The reference below is our own plain-torch transcription of the Hugging Face forward pass
(transformers 4.51: modeling_llama / modeling_mistral / modeling_qwen2 / modeling_qwen3 and
modeling_rope_utils), not transformers itself, which is not installed here. It follows those modules
step by step:

  * RMSNorm: w * (x * rsqrt(mean(x^2) + eps)), in float32;
  * rotary embeddings in the "rotate_half" layout, inv_freq = 1 / theta ** (arange(0, d, 2).float() / d),
    with the "linear" (inv_freq / factor) and "llama3" (_compute_llama3_parameters) scalings;
  * grouped-query attention (repeat_kv), causal softmax in float32, scale head_dim ** -0.5;
  * SwiGLU MLP down(silu(gate(x)) * up(x));
  * per family: llama q/k/v/o biases with attention_bias and gate/up/down biases with mlp_bias;
    mistral no biases; qwen2 q/k/v biases (never o); qwen3 per-head q_norm/k_norm before RoPE and
    q/k/v/o biases with attention_bias; lm_head = embed_tokens when tie_word_embeddings.

Weights stored as bf16 or f16 are upcast to float32 and everything is computed in float32 (what
Tandem does; transformers itself would compute in the stored dtype unless asked for float32).

Greedy paths are recomputed from scratch over the whole sequence at every step (no KV cache), so the
golden also checks an implementation's cache against an independent full forward pass.

--check-bard runs this reference on models/bard-{s,m,l} against their goldens, which the training
code's own model produced: a check of the shared llama path of this transcription.
"""

import json
import math
import os
import shutil
import struct
import sys

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT_DIR = os.path.join(ROOT, "transformer", "src", "test", "resources", "families")
BARD = os.path.join(ROOT, "models", "bard-l")
TRANSFORMERS_VERSION = "4.51.3"

VOCAB = 2048
HIDDEN = 64
LAYERS = 2
MAX_NEW = 32
MIN_MARGIN = 2e-3
EOS = 2047

# --------------------------------------------------------------------------- the checkpoints

# "config" is exactly what transformers' save_pretrained writes for that model type (4.51: the
# configuration class's attributes plus the PretrainedConfig keys that differ from the defaults).
CHECKPOINTS = [
    {
        "name": "llama-bf16",
        "seed": 1001,
        "dtype": "bfloat16",
        "config": {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": True,
            "attention_dropout": 0.0,
            "bos_token_id": EOS,
            "eos_token_id": EOS,
            "head_dim": 16,
            "hidden_act": "silu",
            "hidden_size": HIDDEN,
            "initializer_range": 0.02,
            "intermediate_size": 176,
            "max_position_embeddings": 512,
            "mlp_bias": True,
            "model_type": "llama",
            "num_attention_heads": 4,
            "num_hidden_layers": LAYERS,
            "num_key_value_heads": 2,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "factor": 8.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 64,
                "rope_type": "llama3",
            },
            "rope_theta": 10000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "transformers_version": TRANSFORMERS_VERSION,
            "use_cache": True,
            "vocab_size": VOCAB,
        },
    },
    {
        "name": "mistral",
        "seed": 1002,
        "dtype": "float32",
        "config": {
            "architectures": ["MistralForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": EOS,
            "eos_token_id": EOS,
            "head_dim": 32,
            "hidden_act": "silu",
            "hidden_size": HIDDEN,
            "initializer_range": 0.02,
            "intermediate_size": 96,
            "max_position_embeddings": 4096,
            "model_type": "mistral",
            "num_attention_heads": 4,
            "num_hidden_layers": LAYERS,
            "num_key_value_heads": 1,
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "tie_word_embeddings": False,
            "torch_dtype": "float32",
            "transformers_version": TRANSFORMERS_VERSION,
            "use_cache": True,
            "vocab_size": VOCAB,
        },
    },
    {
        "name": "qwen2-tied",
        "seed": 4003,
        "dtype": "float32",
        "config": {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": EOS,
            "eos_token_id": EOS,
            "hidden_act": "silu",
            "hidden_size": HIDDEN,
            "initializer_range": 0.02,
            "intermediate_size": 160,
            "max_position_embeddings": 1024,
            "max_window_layers": 2,
            "model_type": "qwen2",
            "num_attention_heads": 4,
            "num_hidden_layers": LAYERS,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_scaling": {"factor": 2.0, "rope_type": "linear", "type": "linear"},
            "rope_theta": 10000.0,
            "sliding_window": 4096,         # kept, unused, as Qwen2Config of some versions writes it
            "tie_word_embeddings": True,
            "torch_dtype": "float32",
            "transformers_version": TRANSFORMERS_VERSION,
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": VOCAB,
        },
    },
    {
        "name": "qwen3-f16",
        "seed": 1004,
        "dtype": "float16",
        "config": {
            "architectures": ["Qwen3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": EOS,
            "eos_token_id": [EOS, 0],
            "head_dim": 24,
            "hidden_act": "silu",
            "hidden_size": HIDDEN,
            "initializer_range": 0.02,
            "intermediate_size": 192,
            "max_position_embeddings": 2048,
            "max_window_layers": 2,
            "model_type": "qwen3",
            "num_attention_heads": 4,
            "num_hidden_layers": LAYERS,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "tie_word_embeddings": False,
            "torch_dtype": "float16",
            "transformers_version": TRANSFORMERS_VERSION,
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": VOCAB,
        },
    },
]

# Standard deviations of the random weights: large enough that attention is not uniform and the
# greedy path depends on the context, small enough that the residual stream stays O(1). A tied
# checkpoint gets small embeddings: otherwise the token's own embedding dominates the residual stream
# and, through the tied head, the model just repeats its input token.
STD = {
    "embed": 1.0,
    "embed_tied": 0.1,
    "proj": 0.1,
    "out": 0.1,
    "bias": 0.1,
    "qk_bias": 0.3,
    "norm_jitter": 0.1,
    "lm_head": 0.1,
}

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ST_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


# --------------------------------------------------------------------------- the family rules

def family(cfg):
    """Which optional modules the transformers classes of this model type build."""
    t = cfg["model_type"]
    if t == "llama":
        ab = cfg.get("attention_bias", False)
        return dict(qkv_bias=ab, o_bias=ab, mlp_bias=cfg.get("mlp_bias", False), qk_norm=False)
    if t == "mistral":
        return dict(qkv_bias=False, o_bias=False, mlp_bias=False, qk_norm=False)
    if t == "qwen2":
        return dict(qkv_bias=True, o_bias=False, mlp_bias=False, qk_norm=False)
    if t == "qwen3":
        ab = cfg.get("attention_bias", False)
        return dict(qkv_bias=ab, o_bias=ab, mlp_bias=False, qk_norm=True)
    raise ValueError(t)


def head_dim(cfg):
    hd = cfg.get("head_dim")
    return hd if hd is not None else cfg["hidden_size"] // cfg["num_attention_heads"]


# --------------------------------------------------------------------------- random weights

def make_weights(cfg, seed):
    """HF tensor names -> float32 tensors (before casting to the storage dtype)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, std):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std

    def norm_weight(n):
        return 1.0 + randn(n, std=STD["norm_jitter"])

    fam = family(cfg)
    d = cfg["hidden_size"]
    hd = head_dim(cfg)
    qw = cfg["num_attention_heads"] * hd
    kvw = cfg["num_key_value_heads"] * hd
    ff = cfg["intermediate_size"]
    v = cfg["vocab_size"]

    tied = cfg.get("tie_word_embeddings", False)
    w = {"model.embed_tokens.weight": randn(v, d, std=STD["embed_tied" if tied else "embed"])}
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = norm_weight(d)
        w[p + "self_attn.q_proj.weight"] = randn(qw, d, std=STD["proj"] * 2)
        w[p + "self_attn.k_proj.weight"] = randn(kvw, d, std=STD["proj"] * 2)
        w[p + "self_attn.v_proj.weight"] = randn(kvw, d, std=STD["proj"])
        w[p + "self_attn.o_proj.weight"] = randn(d, qw, std=STD["out"])
        if fam["qkv_bias"]:
            w[p + "self_attn.q_proj.bias"] = randn(qw, std=STD["qk_bias"])
            w[p + "self_attn.k_proj.bias"] = randn(kvw, std=STD["qk_bias"])
            w[p + "self_attn.v_proj.bias"] = randn(kvw, std=STD["bias"])
        if fam["o_bias"]:
            w[p + "self_attn.o_proj.bias"] = randn(d, std=STD["bias"])
        if fam["qk_norm"]:
            w[p + "self_attn.q_norm.weight"] = norm_weight(hd)
            w[p + "self_attn.k_norm.weight"] = norm_weight(hd)
        w[p + "post_attention_layernorm.weight"] = norm_weight(d)
        w[p + "mlp.gate_proj.weight"] = randn(ff, d, std=STD["proj"])
        w[p + "mlp.up_proj.weight"] = randn(ff, d, std=STD["proj"])
        w[p + "mlp.down_proj.weight"] = randn(d, ff, std=STD["out"])
        if fam["mlp_bias"]:
            w[p + "mlp.gate_proj.bias"] = randn(ff, std=STD["bias"])
            w[p + "mlp.up_proj.bias"] = randn(ff, std=STD["bias"])
            w[p + "mlp.down_proj.bias"] = randn(d, std=STD["bias"])
    w["model.norm.weight"] = norm_weight(d)
    if not tied:
        w["lm_head.weight"] = randn(v, d, std=STD["lm_head"])
    return w


# --------------------------------------------------------------------------- safetensors

def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype == torch.float16:
        return t.numpy().astype("<f2").tobytes()
    return t.numpy().astype("<f4").tobytes()


def write_safetensors(path, tensors):
    """The safetensors layout: u64 LE header length, JSON header (space-padded to 8 bytes), data."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Reads back what write_safetensors wrote (the reference runs on the file's contents)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw = data[base + lo:base + hi]
        shape = info["shape"]
        if info["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(shape)
        elif info["dtype"] == "F16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f2").copy()).reshape(shape)
        elif info["dtype"] == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16).reshape(shape)
        else:
            raise ValueError(info["dtype"])
        out[name] = t
    return out


# --------------------------------------------------------------------------- the reference forward pass

def rms_norm(x, weight, eps):
    # LlamaRMSNorm / MistralRMSNorm / Qwen2RMSNorm / Qwen3RMSNorm (float32 input: no casts matter)
    variance = x.pow(2).mean(-1, keepdim=True)
    x = x * torch.rsqrt(variance + eps)
    return weight * x


def rope_inv_freq(cfg):
    """modeling_rope_utils: _compute_default_rope_parameters / _compute_linear_scaling_rope_parameters /
    _compute_llama3_parameters (all with attention_scaling 1.0)."""
    base = cfg.get("rope_theta", 10000.0)
    dim = head_dim(cfg)
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv_freq
    rope_type = rs.get("rope_type", rs.get("type", "default"))
    if rope_type == "default":
        return inv_freq
    if rope_type == "linear":
        factor = rs["factor"]
        return inv_freq / factor
    if rope_type == "llama3":
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    raise ValueError("rope type " + rope_type)


def rotary_cos_sin(inv_freq, seq_len):
    # LlamaRotaryEmbedding.forward with position_ids = arange(seq_len), batch 1
    position_ids = torch.arange(seq_len)[None, :]
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()          # attention_scaling = 1.0


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos = cos.unsqueeze(1)               # unsqueeze_dim=1: [b, 1, s, d]
    sin = sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(x, n_rep):
    b, kvh, s, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kvh, n_rep, s, hd).reshape(b, kvh * n_rep, s, hd)


def linear(x, w, b=None):
    return torch.nn.functional.linear(x, w, b)


class Reference:
    """The forward pass of *ForCausalLM on float32 copies of the stored weights."""

    def __init__(self, cfg, stored):
        self.cfg = cfg
        self.fam = family(cfg)
        self.w = {k: v.float() for k, v in stored.items()}
        self.inv_freq = rope_inv_freq(cfg)
        self.hd = head_dim(cfg)
        self.eps = cfg["rms_norm_eps"]

    def get(self, name, present=True):
        return self.w[name] if present else None

    def logits(self, ids):
        """Logits at every position of the sequence ids (batch of one), float32."""
        cfg, fam, w = self.cfg, self.fam, self.w
        heads, kv_heads, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], self.hd
        s = len(ids)
        x = w["model.embed_tokens.weight"][torch.tensor(ids)][None]      # [1, s, d]
        cos, sin = rotary_cos_sin(self.inv_freq, s)
        mask = torch.full((s, s), float("-inf")).triu(1)                  # causal
        scaling = hd ** -0.5
        for l in range(cfg["num_hidden_layers"]):
            p = "model.layers.%d." % l
            residual = x
            h = rms_norm(x, w[p + "input_layernorm.weight"], self.eps)
            # attention
            q = linear(h, w[p + "self_attn.q_proj.weight"], self.get(p + "self_attn.q_proj.bias", fam["qkv_bias"]))
            k = linear(h, w[p + "self_attn.k_proj.weight"], self.get(p + "self_attn.k_proj.bias", fam["qkv_bias"]))
            v = linear(h, w[p + "self_attn.v_proj.weight"], self.get(p + "self_attn.v_proj.bias", fam["qkv_bias"]))
            q = q.view(1, s, -1, hd)
            k = k.view(1, s, -1, hd)
            v = v.view(1, s, -1, hd)
            if fam["qk_norm"]:                                            # Qwen3: per head, before RoPE
                q = rms_norm(q, w[p + "self_attn.q_norm.weight"], self.eps)
                k = rms_norm(k, w[p + "self_attn.k_norm.weight"], self.eps)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            k = repeat_kv(k, heads // kv_heads)
            v = repeat_kv(v, heads // kv_heads)
            att = torch.matmul(q, k.transpose(2, 3)) * scaling + mask
            att = torch.softmax(att, dim=-1, dtype=torch.float32)
            o = torch.matmul(att, v).transpose(1, 2).reshape(1, s, heads * hd)
            o = linear(o, w[p + "self_attn.o_proj.weight"], self.get(p + "self_attn.o_proj.bias", fam["o_bias"]))
            x = residual + o
            # MLP
            residual = x
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], self.eps)
            mb = fam["mlp_bias"]
            gate = linear(h, w[p + "mlp.gate_proj.weight"], self.get(p + "mlp.gate_proj.bias", mb))
            up = linear(h, w[p + "mlp.up_proj.weight"], self.get(p + "mlp.up_proj.bias", mb))
            h = linear(torch.nn.functional.silu(gate) * up,
                       w[p + "mlp.down_proj.weight"], self.get(p + "mlp.down_proj.bias", mb))
            x = residual + h
        x = rms_norm(x, w["model.norm.weight"], self.eps)
        head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else w["lm_head.weight"]
        return linear(x, head)[0]                                         # [s, vocab]


# --------------------------------------------------------------------------- goldens

def margin(logits):
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def golden_case(ref, prompt, prompt_ids):
    ids = list(prompt_ids)
    last = ref.logits(ids)[-1]
    last_logits = last
    greedy = []
    min_margin = None
    logits = last
    for _ in range(MAX_NEW):
        m = margin(logits)
        if m < MIN_MARGIN:
            break
        t = int(torch.argmax(logits))
        greedy.append(t)
        min_margin = m if min_margin is None else min(min_margin, m)
        ids.append(t)
        logits = ref.logits(ids)[-1]
    return {
        "prompt": prompt,
        "prompt_ids": list(prompt_ids),
        "greedy_ids": greedy,
        "last_logits": [round(float(x), 6) for x in last_logits],
        "min_margin_along_path": min_margin,
    }


NOTE = ("float32 reference outputs of this random-weight checkpoint, computed by tools/goldens/"
        "make_family_goldens.py (a plain-torch transcription of the Hugging Face {arch} forward pass, "
        "not transformers itself){upcast}; prompt_ids are the tokenizer's ids for prompt (no BOS added); "
        "last_logits are the logits at the last prompt position (rounded to 1e-6); greedy_ids is the "
        "greedy path with no stop at EOS, recomputed over the whole sequence at each step, cut before the "
        "first step whose top-1/top-2 logit gap is under 2e-3 (at most 32 tokens); min_margin_along_path "
        "is the smallest such gap kept")


def prompts():
    """The bard goldens' prompts and ids (same tokenizer.json)."""
    with open(os.path.join(BARD, "golden.json")) as f:
        cases = json.load(f)["cases"]
    return [(c["prompt"], c["prompt_ids"]) for c in cases]


def build(spec):
    name, cfg = spec["name"], spec["config"]
    out = os.path.join(OUT_DIR, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(os.path.join(BARD, "tokenizer.json"), os.path.join(out, "tokenizer.json"))

    dtype = TORCH_DTYPES[spec["dtype"]]
    weights = {k: v.to(dtype) for k, v in make_weights(cfg, spec["seed"]).items()}
    st = os.path.join(out, "model.safetensors")
    write_safetensors(st, weights)
    stored = read_safetensors(st)
    assert sorted(stored) == sorted(weights)
    for k in weights:
        assert stored[k].dtype == weights[k].dtype and torch.equal(stored[k], weights[k]), k

    ref = Reference(cfg, stored)
    upcast = ("" if dtype == torch.float32 else
              "; the stored %s weights are upcast to float32 and everything is computed in float32 "
              "(as Tandem does), not in %s as transformers would by default" % (spec["dtype"], spec["dtype"]))
    cases = [golden_case(ref, p, ids) for p, ids in prompts()]
    golden = {"note": NOTE.format(arch=cfg["architectures"][0], upcast=upcast), "cases": cases}
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f)
        f.write("\n")

    size = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print("%-11s %-8s %7.1f KB" % (name, spec["dtype"], size / 1024.0))
    for c in cases:
        g = c["greedy_ids"]
        print("    %-36r greedy %2d tokens, %2d distinct, min margin %.4f, logits range [%.2f, %.2f]" % (
            c["prompt"], len(g), len(set(g)), c["min_margin_along_path"] or float("nan"),
            min(c["last_logits"]), max(c["last_logits"])))


def check_bard():
    """Runs this reference on the shipped bard models and compares with their goldens (made by the
    training code's own model, not this file): a check of the shared llama path."""
    ok = True
    for name in ("bard-s", "bard-m", "bard-l"):
        d = os.path.join(ROOT, "models", name)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(d, "golden.json")) as f:
            cases = json.load(f)["cases"]
        ref = Reference(cfg, read_safetensors(os.path.join(d, "model.safetensors")))
        for i, c in enumerate(cases):
            ids = list(c["prompt_ids"])
            diff = float((ref.logits(ids)[-1] - torch.tensor(c["last_logits"])).abs().max())
            path = []
            for _ in c["greedy_ids"]:
                path.append(int(torch.argmax(ref.logits(ids + path)[-1])))
            same = path == c["greedy_ids"]
            ok &= diff <= 1e-4 and same
            print("%s case %d: max abs logit difference %.3g, greedy path %s" % (
                name, i, diff, "equal" if same else "DIFFERENT"))
    return ok


def main(argv):
    torch.set_num_threads(1)            # deterministic reductions
    if "--check-bard" in argv:
        sys.exit(0 if check_bard() else 1)
    names = set(argv[1:])
    for spec in CHECKPOINTS:
        if not names or spec["name"] in names:
            build(spec)


if __name__ == "__main__":
    main(sys.argv)
