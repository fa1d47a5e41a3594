#!/usr/bin/env bash
# Decode speed of Tandem and llama.cpp on the same GGUF files, alternately in one run window.
#
#   bench/peers/llama-cpp-quant.sh LLAMA_BUILD_BIN FILE.gguf [FILE.gguf ...]
#
# LLAMA_BUILD_BIN: llama.cpp's build/bin (bench/peers/README.md says how to build it). Each FILE is a GGUF
# both engines read as it is (`tandem quantize` writes them). Each round runs, for each file in turn:
# llama-bench (-t 1 and -t 2, -p 0 -n TOKENS -r 3), then Tandem's decode suite on the same file (1 and 2
# threads, 3 repetitions), so drift of the machine hits both engines alike. ROUNDS (default 2) and TOKENS
# (default 32) are environment variables; OUT (default a new folder under /tmp) keeps every tool's output.
# The summary gives tokens/s of both engines, their ratio, and the fraction of the machine's read bandwidth
# each reaches (weight bytes per token × tokens/s over the best read pass Tandem's suite measured at that
# thread count). llama.cpp is a yardstick, never a dependency of Tandem.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BIN="$1"; shift
OUT="${OUT:-$(mktemp -d /tmp/tandem-vs-llama-quant.XXXXXX)}"
ROUNDS="${ROUNDS:-2}" TOKENS="${TOKENS:-32}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for f in "$BIN/llama-bench" "$@"; do
  [ -e "$f" ] || { echo "llama-cpp-quant.sh: $f does not exist." >&2; exit 2; }
done
mkdir -p "$OUT"
echo "output: $OUT" >&2
for round in $(seq 1 "$ROUNDS"); do
  for f in "$@"; do
    name="$(basename "$f" .gguf)"
    echo "round $round/$ROUNDS: llama-bench $name" >&2
    "$BIN/llama-bench" -m "$f" -t 1,2 -p 0 -n "$TOKENS" -r 3 -o json > "$OUT/llama-$name-$round.json" 2> "$OUT/llama-$name-$round.log"
    echo "round $round/$ROUNDS: tandem decode $name" >&2
    "$ROOT/tandem" bench --suite decode --model "$f" --threads 1,2 --tokens "$TOKENS" --repetitions 3 \
        --out "$OUT/tandem-$name-$round.json" > "$OUT/tandem-$name-$round.log" 2>&1
  done
done
python3 - "$OUT" "$ROUNDS" "$@" <<'PY'
import json, os, sys
out, rounds, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print(f"{'file':<28} {'round':>5} {'thr':>3} {'llama.cpp tok/s':>16} {'tandem tok/s':>13} {'ratio':>6} {'llama bw':>9} {'tandem bw':>10}")
for f in files:
    name = os.path.basename(f)[:-5]
    for r in range(1, rounds + 1):
        llama = {e["n_threads"]: e["avg_ts"] for e in json.load(open(f"{out}/llama-{name}-{r}.json"))}
        t = json.load(open(f"{out}/tandem-{name}-{r}.json"))
        per_token = t["weight_bytes_per_token"]
        for run in t["runs"]:
            n = run["threads"]
            ours = run["decode_tokens_per_s"]["median"]
            best = run["memory_read_bytes_per_s"]["best"]
            theirs = llama.get(n, float("nan"))
            print(f"{name:<28} {r:>5} {n:>3} {theirs:>16.2f} {ours:>13.2f} {ours / theirs:>6.2f}"
                  f" {theirs * per_token / best:>9.0%} {ours * per_token / best:>10.0%}")
PY
