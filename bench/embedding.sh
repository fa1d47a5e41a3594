#!/usr/bin/env bash
# Runs EmbeddingBenchmark (the embedded all-MiniLM-L6-v2, Tandem against ONNX Runtime: one sentence's latency,
# 32 sentences' throughput) in rounds, each round one JMH fork of each implementation, their order swapped from
# round to round, so that both see the same conditions on a shared machine. Before each fork it waits (up to
# --max-wait seconds) until the CPUs have been nearly idle for 3 s and records how busy they were.
# Writes OUT.json (every fork's JMH result with its round, busy fraction and load), OUT.txt (the log) and
# OUT.md (the header and a table of medians and ratios), OUT being bench/results/<UTC date-time>-embedding-minilm
# unless --out says otherwise. Builds bench/target/benchmarks.jar first when it is stale, as jmh.sh does.
#
#   bench/embedding.sh [--rounds 2] [--threads 2] [--max-wait 900] [--out PATH-WITHOUT-EXTENSION] [JMH args]
#
# JMH args go after the benchmark's own (3 × 2 s warm-up, 5 × 2 s measurement), e.g. -wi 5 -i 10 (not -f: a round is one fork each).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"

ROUNDS=2 THREADS=2 MAX_WAIT=900 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --max-wait) MAX_WAIT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) break ;;
  esac
done
command -v jq >/dev/null || { echo "embedding.sh: needs jq to merge the forks' results." >&2; exit 1; }

. "$BENCH/jar.sh"
bench_build_jar || exit 1

OUT="${OUT:-$BENCH/results/$(date -u +%Y-%m-%dT%H%MZ)-embedding-minilm}"
mkdir -p "$(dirname "$OUT")"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# The CPUs' busy fraction (0 to 1) over the next $1 seconds, from /proc/stat.
busy() {
  read -r _ u n s i w q sq st _ < /proc/stat
  local t0=$((u + n + s + i + w + q + sq + st)) i0=$((i + w))
  sleep "$1"
  read -r _ u n s i w q sq st _ < /proc/stat
  local t1=$((u + n + s + i + w + q + sq + st)) i1=$((i + w))
  awk -v t=$((t1 - t0)) -v i=$((i1 - i0)) 'BEGIN { printf "%.2f", (t > 0 ? 1 - i / t : 0) }'
}

# Waits until the CPUs were under 15% busy for 3 s, or MAX_WAIT seconds passed; prints the last fraction.
wait_quiet() {
  local start=$SECONDS b
  while true; do
    b="$(busy 3)"
    if awk -v b="$b" 'BEGIN { exit !(b < 0.15) }' || [ $((SECONDS - start)) -ge "$MAX_WAIT" ]; then
      echo "$b"
      return
    fi
  done
}

LOG="$OUT.txt"
{
  echo "# EmbeddingBenchmark: all-MiniLM-L6-v2, Tandem vs ONNX Runtime, $ROUNDS rounds"
  bench_header
  echo "command: bench/embedding.sh --rounds $ROUNDS --threads $THREADS${*:+ $*}"
  echo
} > "$LOG"
cat "$LOG" >&2

forks=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2 == 1)); then order=(tandem onnxruntime); else order=(onnxruntime tandem); fi
  for impl in "${order[@]}"; do
    b="$(wait_quiet)"
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    json="$TMP/$r-$impl.json"
    echo "## round $r, $impl: CPUs $b busy before the fork, load average $load" | tee -a "$LOG" >&2
    "$JAVA" --sun-misc-unsafe-memory-access=allow -jar "$JAR" EmbeddingBenchmark -p impl="$impl" -p threads="$THREADS" \
      -f 1 "$@" -rf json -rff "$json" 2>&1 | tee -a "$LOG"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "embedding.sh: JMH failed (log: $LOG)" >&2; exit 1; }
    jq --argjson round "$r" --arg impl "$impl" --argjson busy "$b" --arg load "$load" \
      '{round: $round, impl: $impl, busy_before: $busy, load_average_before: $load, jmh: .}' "$json" > "$TMP/fork-$r-$impl.json"
    forks+=("$TMP/fork-$r-$impl.json")
  done
done

header="$(sed -n '2,5p' "$LOG")"
jq -s --arg header "$header" --arg command "bench/embedding.sh --rounds $ROUNDS --threads $THREADS${*:+ $*}" \
  '{benchmark: "EmbeddingBenchmark", command: $command, header: ($header | split("\n")), forks: .}' "${forks[@]}" > "$OUT.json"

# Medians over every measured iteration of every fork; the ratios are Tandem's over ONNX Runtime's.
summary="$(jq -r '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def scores($b; $impl): [.forks[] | select(.impl == $impl) | .jmh[] | select(.benchmark | endswith("." + $b))
    | .primaryMetric.rawData[][]];
  def fmt: . * 100 | round / 100;
  (scores("latency"; "tandem") | median) as $lt | (scores("latency"; "onnxruntime") | median) as $lo
  | (scores("throughput"; "tandem") | median) as $tt | (scores("throughput"; "onnxruntime") | median) as $to
  | "| benchmark | Tandem | ONNX Runtime | Tandem ÷ ONNX Runtime | goal |",
    "| --- | ---: | ---: | ---: | --- |",
    "| latency, 1 sentence (ms, lower is better) | \($lt | fmt) | \($lo | fmt) | \($lt / $lo | fmt) | ≤ 1: \(if $lt <= $lo then "met" else "missed" end) |",
    "| throughput, batch of 32 (sentences/s) | \($tt | fmt) | \($to | fmt) | \($tt / $to | fmt) | ≥ 0.8: \(if $tt >= 0.8 * $to then "met" else "missed" end) |",
    "",
    "Per fork (median of its iterations):",
    "",
    "| round | impl | CPUs busy before | load average before | latency ms | throughput sentences/s |",
    "| ---: | --- | ---: | --- | ---: | ---: |",
    (.forks[] | . as $f | "| \(.round) | \(.impl) | \(.busy_before) | \(.load_average_before) | \([.jmh[] | select(.benchmark | endswith(".latency")) | .primaryMetric.rawData[][]] | if length > 0 then (median | fmt) else "–" end) | \([.jmh[] | select(.benchmark | endswith(".throughput")) | .primaryMetric.rawData[][]] | if length > 0 then (median | fmt) else "–" end) |")
' "$OUT.json" 2>/dev/null || echo "(a benchmark is missing from the results: no summary)")"

{
  echo "# Embedding: all-MiniLM-L6-v2, Tandem vs ONNX Runtime"
  echo
  sed -n '2,5p' "$LOG" | sed 's/^/- /'
  echo "- command: \`bench/embedding.sh --rounds $ROUNDS --threads $THREADS${*:+ $*}\`"
  echo "- results: \`$(basename "$OUT").json\` (every fork), \`$(basename "$OUT").txt\` (the log)"
  echo
  echo "Medians over every measured iteration of the $ROUNDS forks of each implementation:"
  echo
  echo "$summary"
} > "$OUT.md"
cat "$OUT.md"
echo "$OUT.json"
