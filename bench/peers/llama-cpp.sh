#!/usr/bin/env bash
# Tandem beside llama.cpp on the same weights, alternately in one run window (bench/README.md).
#
#   bench/peers/llama-cpp.sh LLAMA_BUILD_BIN TARGET_DIR TARGET.gguf DRAFT_DIR DRAFT.gguf [OUT_DIR]
#
# LLAMA_BUILD_BIN: llama.cpp's build/bin (bench/peers/README.md says how to build it and make the
# f16 GGUFs with bench/peers/hf2gguf.py). TARGET_DIR/DRAFT_DIR: the same checkpoints as Hugging Face directories
# for Tandem (e.g. `tandem synth --pad models/bard-l --shape tinyllama-1.1b --dtype bf16 --out DIR`).
# Each round runs, in this order: llama-bench (-t 1 and -t 2), Tandem's decode suite (1 and 2 threads),
# llama-speculative (greedy, γ = GAMMA, -t 2 -td 2), Tandem's speculative decoding with the same draft
# and γ on 2 threads (the methods suite, greedy), so drift of the machine hits both engines alike.
# ROUNDS (default 2), GAMMA (default 4), TOKENS (default 64) and PROMPT (default "ROMEO:") are
# environment variables. Every tool's output goes to OUT_DIR (default: a new folder under /tmp), and a
# summary of tokens/s per tool and round is printed at the end. llama.cpp is a yardstick, never a
# dependency of Tandem.
set -euo pipefail
[ $# -ge 5 ] || { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BIN="$1" TARGET_DIR="$2" TARGET_GGUF="$3" DRAFT_DIR="$4" DRAFT_GGUF="$5"
OUT="${6:-$(mktemp -d /tmp/tandem-vs-llama.XXXXXX)}"
ROUNDS="${ROUNDS:-2}" GAMMA="${GAMMA:-4}" TOKENS="${TOKENS:-64}" PROMPT="${PROMPT:-ROMEO:}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for f in "$BIN/llama-bench" "$BIN/llama-speculative" "$TARGET_GGUF" "$DRAFT_GGUF"; do
  [ -e "$f" ] || { echo "llama-cpp.sh: $f does not exist." >&2; exit 2; }
done
for d in "$TARGET_DIR" "$DRAFT_DIR"; do
  [ -f "$d/config.json" ] || { echo "llama-cpp.sh: $d is not a model directory (no config.json)." >&2; exit 2; }
done
mkdir -p "$OUT"
echo "output: $OUT" >&2
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS: llama-bench" >&2
  "$BIN/llama-bench" -m "$TARGET_GGUF" -t 1,2 -p 0 -n "$TOKENS" -r 3 -o json > "$OUT/llama-bench-$round.json" 2> "$OUT/llama-bench-$round.log"
  echo "round $round/$ROUNDS: tandem decode" >&2
  "$ROOT/tandem" bench --suite decode --model "$TARGET_DIR" --threads 1,2 --tokens "$TOKENS" --repetitions 3 \
      --out "$OUT/tandem-decode-$round.json" > "$OUT/tandem-decode-$round.log" 2>&1
  echo "round $round/$ROUNDS: llama-speculative" >&2
  "$BIN/llama-speculative" -m "$TARGET_GGUF" -md "$DRAFT_GGUF" -p "$PROMPT" -n "$TOKENS" --draft-max "$GAMMA" \
      --draft-min 0 --temp 0 -t 2 -td 2 -c 1024 > "$OUT/llama-speculative-$round.log" 2>&1
  echo "round $round/$ROUNDS: tandem speculative" >&2
  "$ROOT/tandem" bench --suite methods --model "$TARGET_DIR" --drafts "$DRAFT_DIR" --methods speculative \
      --gammas "$GAMMA" --modes greedy --prompt-count 1 --method-tokens "$TOKENS" --repetitions 3 --threads 2 \
      --out "$OUT/tandem-speculative-$round.json" > "$OUT/tandem-speculative-$round.log" 2>&1
done
python3 - "$OUT" "$ROUNDS" "$GAMMA" <<'PY'
import json, re, sys
out, rounds, gamma = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for r in range(1, rounds + 1):
    lb = json.load(open(f"{out}/llama-bench-{r}.json"))
    llama = {e["n_threads"]: e["avg_ts"] for e in lb}
    td = json.load(open(f"{out}/tandem-decode-{r}.json"))["runs"]
    tandem = {t["threads"]: t["decode_tokens_per_s"]["median"] for t in td}
    spec = open(f"{out}/llama-speculative-{r}.log").read()
    m = re.search(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds, speed:\s+([\d.]+) t/s", spec)
    acc = re.search(r"accept\s+=\s+([\d.]+)%", spec)
    ts = json.load(open(f"{out}/tandem-speculative-{r}.json"))["methods"]
    plain = next(f for f in ts if f["method"] == "plain")
    sp = next(f for f in ts if f["method"] == "speculative" and f["setting"] == f"gamma={gamma}")
    print(f"round {r}: decode tok/s  llama.cpp t1 {llama.get(1, float('nan')):.2f}  t2 {llama.get(2, float('nan')):.2f}"
          f"  | tandem t1 {tandem.get(1, float('nan')):.2f}  t2 {tandem.get(2, float('nan')):.2f}")
    print(f"round {r}: speculative γ={gamma}  llama-speculative {float(m.group(3)) if m else float('nan'):.2f} tok/s"
          f" (accept {acc.group(1) if acc else '?'}%)  | tandem {sp['tokens_per_s']['median']:.2f} tok/s"
          f" (plain {plain['tokens_per_s']['median']:.2f}, passes/token {sp.get('target_passes_per_token', float('nan')):.3f})")
PY
