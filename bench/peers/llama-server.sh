#!/usr/bin/env bash
# Serving throughput of `tandem serve` and llama-server on the same GGUF files, alternately in one run window.
#
#   bench/peers/llama-server.sh LLAMA_BUILD_BIN FILE.gguf [FILE.gguf ...]
#
# LLAMA_BUILD_BIN: llama.cpp's build/bin with llama-server in it (bench/peers/README.md says how to build it;
# this script builds nothing). Tandem runs from app/target/tandem.jar as it is (build it first with
# `./mvnw -B -q package -DskipTests`). Each round runs, for each file in turn: llama-server (-t THREADS
# -np SLOTS -c SLOTS*CTX_PER_SLOT), waits for GET /health, runs bench/serve/LoadGen.java at CLIENTS
# concurrent clients and stops it; then `tandem serve --model FILE --port 0 --threads THREADS`, waits for its
# `listening on http://...` line, runs LoadGen the same way and stops it with SIGTERM. Rounds alternate the
# engines (A B A B) so drift of a noisy machine hits both alike. Every request is a streaming
# /v1/completions request for TOKENS tokens, greedy (temperature 0, ignore_eos so both write TOKENS tokens).
# Environment (defaults): THREADS (2), ROUNDS (2), CLIENTS (1,8,32), REQUESTS per client (2), TOKENS (32),
# SLOTS (32), CTX_PER_SLOT (256), PROMPT_FILE (bench/serve/prompt.txt), CACHE_PROMPT (false: every request sends
# "cache_prompt": false, so llama-server prefills the whole prompt as Tandem does instead of reusing the
# previous identical prompt's KV cache; true leaves it out), ENGINES ("llama tandem"; one of them
# alone runs only that engine), LLAMA_COMMIT (the llama.cpp commit to report), OUT (a new folder under /tmp).
# OUT keeps every LoadGen JSON, every server's log and summary.md: the machine, the llama.cpp commit and the
# Tandem/llama-server ratios of requests/s and TTFT p50 (median over rounds) at each concurrency.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BIN="$1"; shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$(mktemp -d /tmp/tandem-vs-llama-server.XXXXXX)}"
THREADS="${THREADS:-2}" ROUNDS="${ROUNDS:-2}" CLIENTS="${CLIENTS:-1,8,32}" REQUESTS="${REQUESTS:-2}"
TOKENS="${TOKENS:-32}" SLOTS="${SLOTS:-32}" CTX_PER_SLOT="${CTX_PER_SLOT:-256}"
PROMPT_FILE="${PROMPT_FILE:-$ROOT/bench/serve/prompt.txt}" ENGINES="${ENGINES:-llama tandem}"
CACHE_PROMPT="${CACHE_PROMPT:-false}"; CACHE_FLAG=""; [ "$CACHE_PROMPT" = false ] && CACHE_FLAG="--no-cache-prompt"
. "$ROOT/.mvn/find-jdk.sh"
JAVA="$JAVA_HOME/bin/java"
for f in "$PROMPT_FILE" "$@"; do
  [ -e "$f" ] || { echo "llama-server.sh: $f does not exist." >&2; exit 2; }
done
case " $ENGINES " in *" llama "*)
  [ -x "$BIN/llama-server" ] || { echo "llama-server.sh: $BIN/llama-server does not exist (cmake --build build --target llama-server)." >&2; exit 2; } ;;
esac
case " $ENGINES " in *" tandem "*)
  [ -f "$ROOT/app/target/tandem.jar" ] || { echo "llama-server.sh: $ROOT/app/target/tandem.jar does not exist (./mvnw -B -q package -DskipTests)." >&2; exit 2; } ;;
esac
mkdir -p "$OUT"
echo "output: $OUT" >&2

# LoadGen compiled once, so no round pays (or times) the source launcher's compile.
LG="$(mktemp -d /tmp/loadgen.XXXXXX)"
"$JAVA_HOME/bin/javac" -d "$LG" "$ROOT/bench/serve/LoadGen.java"

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && { echo "llama-server.sh: $SERVER_PID ignored SIGTERM for 10 s; killing it" >&2; kill -KILL "$SERVER_PID" || true; }
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
trap stop_server EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

loadgen() { # URL LABEL OUT.json LOG
  echo "$2: load average before: $(cat /proc/loadavg)" | tee -a "$OUT/loadavg.txt" >&2
  "$JAVA" -cp "$LG" LoadGen --url "$1" --label "$2" --clients "$CLIENTS" --requests-per-client "$REQUESTS" \
      --max-tokens "$TOKENS" --prompt-file "$PROMPT_FILE" --endpoint completions --ignore-eos $CACHE_FLAG --out "$3" > "$4" 2>&1 \
    || { echo "llama-server.sh: LoadGen failed against $2; its output:" >&2; cat "$4" >&2; return 1; }
  cat "$4" | grep -v '^loadgen:' >&2
}

run_llama() { # FILE NAME ROUND
  local port; port="$(free_port)"
  "$BIN/llama-server" -m "$1" --host 127.0.0.1 --port "$port" -t "$THREADS" -tb "$THREADS" -np "$SLOTS" \
      -c $((SLOTS * CTX_PER_SLOT)) > "$OUT/llama-server-$2-$3.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "llama-server.sh: llama-server exited; see $OUT/llama-server-$2-$3.log" >&2; exit 1; }
    sleep 0.1
  done
  loadgen "http://127.0.0.1:$port" "llama-server $2 round $3" "$OUT/llama-server-$2-$3.json" "$OUT/loadgen-llama-server-$2-$3.log"
  stop_server
}

run_tandem() { # FILE NAME ROUND
  TANDEM_SKIP_BUILD=1 "$ROOT/tandem" serve --model "$1" --port 0 --threads "$THREADS" > "$OUT/tandem-$2-$3.log" 2>&1 &
  SERVER_PID=$!
  local url=""
  for _ in $(seq 1 1200); do
    url="$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$OUT/tandem-$2-$3.log" | head -n 1)"
    [ -n "$url" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" && rc=0 || rc=$?
      echo "llama-server.sh: tandem serve exited with status $rc before it listened; see $OUT/tandem-$2-$3.log" >&2; exit 1
    fi
    sleep 0.1
  done
  [ -n "$url" ] || { echo "llama-server.sh: tandem serve printed no 'listening on' line in 120 s" >&2; exit 1; }
  loadgen "$url" "tandem $2 round $3" "$OUT/tandem-$2-$3.json" "$OUT/loadgen-tandem-$2-$3.log"
  stop_server
}

for round in $(seq 1 "$ROUNDS"); do
  for f in "$@"; do
    name="$(basename "$f" .gguf)"
    for engine in $ENGINES; do
      echo "round $round/$ROUNDS: $engine $name" >&2
      case "$engine" in
        llama) run_llama "$f" "$name" "$round" ;;
        tandem) run_tandem "$f" "$name" "$round" ;;
        *) echo "llama-server.sh: unknown engine $engine (llama or tandem)" >&2; exit 2 ;;
      esac
    done
  done
done
rm -rf "$LG"

# A build from an exported tree (no .git) reports "version: 0 (unknown)"; LLAMA_COMMIT names the commit then.
LLAMA_VERSION="${LLAMA_COMMIT:-$( [ -d "$BIN/../../.git" ] && git -C "$BIN/../.." rev-parse HEAD || "$BIN/llama-server" --version 2>&1 | grep -i version | head -n 1 || true)}"
CPU="$(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) CPUs"
SETTINGS="threads $THREADS, llama-server -np $SLOTS -c $((SLOTS * CTX_PER_SLOT)), $REQUESTS requests per client, max_tokens $TOKENS, greedy, ignore_eos, cache_prompt $CACHE_PROMPT, prompt $(basename "$PROMPT_FILE")"
python3 - "$OUT" "$ROUNDS" "$LLAMA_VERSION" "$CPU" "$SETTINGS" "$*" <<'PY' | tee "$OUT/summary.md"
import json, os, statistics, sys, datetime
out, rounds, llama_version, cpu, threads, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].split()
def load(engine, name, r):
    p = f"{out}/{engine}-{name}-{r}.json"
    return {l["clients"]: l for l in json.load(open(p))["levels"]} if os.path.exists(p) else None
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")
print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {cpu}; llama.cpp: {llama_version}; {threads}\n")
for f in files:
    name = os.path.basename(f)[:-5]
    runs = {e: [load(e, name, r) for r in range(1, rounds + 1)] for e in ("llama-server", "tandem")}
    runs = {e: [x for x in v if x] for e, v in runs.items()}
    levels = sorted({c for v in runs.values() for x in v for c in x})
    print(f"### {name} (median of {rounds} rounds)\n")
    print("| clients | llama-server req/s | tandem req/s | ratio req/s | llama-server TTFT p50 ms | tandem TTFT p50 ms | ratio TTFT p50 | llama-server tok/s | tandem tok/s | errors (llama/tandem) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in levels:
        get = lambda e, k: med([x[c][k] for x in runs[e] if c in x])
        err = lambda e: sum(x[c]["errors"] for x in runs[e] if c in x)
        lr, tr = get("llama-server", "requests_per_s"), get("tandem", "requests_per_s")
        lt, tt = get("llama-server", "ttft_ms_p50"), get("tandem", "ttft_ms_p50")
        lo, to = get("llama-server", "output_tokens_per_s"), get("tandem", "output_tokens_per_s")
        ratio = lambda a, b: f"{a / b:.2f}" if b == b and a == a and b else "–"
        print(f"| {c} | {lr:.2f} | {tr:.2f} | {ratio(tr, lr)} | {lt:.0f} | {tt:.0f} | {ratio(tt, lt)} | {lo:.1f} | {to:.1f} | {err('llama-server')}/{err('tandem')} |")
    print()
    for e, v in runs.items():
        for r, x in enumerate(v, 1):
            print(f"- {e} round {r}: " + ", ".join(f"{c} clients {x[c]['requests_per_s']:.2f} req/s, TTFT p50 {x[c]['ttft_ms_p50']:.0f} ms"
                                                     + (f" ({x[c]['errors']} errors)" if x[c]['errors'] else "")
                                                     + (f" ({x[c].get('connection_retries')} reconnects)" if x[c].get('connection_retries') else "") for c in sorted(x)))
    print()
PY
