#!/usr/bin/env bash
# Runs EmbeddingBenchmark (the embedded all-MiniLM-L6-v2, Tandem against ONNX Runtime: one sentence's latency,
# 32 sentences' throughput) in rounds, each round one JMH fork of each benchmark and implementation, the
# implementations' order swapped from round to round, so that both see the same conditions on a shared machine.
# Before each fork it waits (up to --max-wait seconds) until the CPUs have been nearly idle for 3 s; after it, it
# counts the CPU time other processes took meanwhile, and runs the fork again (up to --retries times) when they took
# more than 5% of the CPUs, since on two cores one busy neighbour halves a figure.
# Writes OUT.json (every fork's JMH result with its round, tries and CPU shares), OUT.txt (the log) and
# OUT.md (the header and a table of medians and ratios), OUT being bench/results/<UTC date-time>-embedding-minilm
# unless --out says otherwise. Builds bench/target/benchmarks.jar first when it is stale, as jmh.sh does.
#
#   bench/embedding.sh [--rounds 2] [--threads 2] [--max-wait 900] [--retries 4] [--out PATH-WITHOUT-EXTENSION]
#                      [--jar BENCHMARKS-JAR] [JMH args]
#
# --jar runs a benchmarks.jar built elsewhere (say, of an earlier commit) instead of building bench/target's.
# bench/embedding.sh --report OUT.json writes OUT.md again from a run's JSON.
#
# JMH args go after the benchmark's own (3 × 2 s warm-up, 5 × 2 s measurement), e.g. -wi 5 -i 10 (not -f: a round is one fork each).
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"

ROUNDS=2 THREADS=2 MAX_WAIT=900 RETRIES=4 OUT="" GIVEN_JAR="" REPORT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --max-wait) MAX_WAIT="$2"; shift 2 ;;
    --retries) RETRIES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --report) REPORT="$2"; shift 2 ;;
    --jar) GIVEN_JAR="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) break ;;
  esac
done
command -v jq >/dev/null || { echo "embedding.sh: needs jq to merge the forks' results." >&2; exit 1; }

# Writes BASE.md from BASE.json: medians over every measured iteration of every fork, the ratios Tandem's over ONNX
# Runtime's, then the ratio of each round and each fork's figures. Hand-written sections of an existing BASE.md, from
# its first "## " heading on, are kept after the generated part.
report() {
  local json="$1" base="${1%.json}" summary notes=""
  [ -f "$base.md" ] && notes="$(sed -n '/^## /,$p' "$base.md")"
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
      "Tandem ÷ ONNX Runtime round by round (the medians of the two forks of a round; this VM\u0027s speed drifts over minutes,",
      "so a round\u0027s ratio is the fairer comparison):",
      "",
      "| round | latency | throughput |",
      "| ---: | ---: | ---: |",
      (. as $all | [.forks[].round] | unique[] as $r | $all
        | def m($b; $i): [.forks[] | select(.round == $r and .impl == $i) | .jmh[] | select(.benchmark | endswith("." + $b))
            | .primaryMetric.rawData[][]] | median;
        "| \($r) | \(m("latency"; "tandem") / m("latency"; "onnxruntime") | fmt) | \(m("throughput"; "tandem") / m("throughput"; "onnxruntime") | fmt) |"),
      "",
      ([.forks[] | select(.others_during > 0.05)] | length) as $d
      | (if $d > 0 then "**\($d) of the forks ran while other processes took more than 5% of the CPUs, even after retries: these figures say little.**\n" else empty end),
      "Per fork (median of its iterations; throughput ops are sentences; \"others during\": the share of the CPUs other",
      "processes took during the fork):",
      "",
      "| round | benchmark | impl | tries | CPUs busy before | others during | load average before | median |",
      "| ---: | --- | --- | ---: | ---: | ---: | --- | ---: |",
      (.forks[] | . as $f | .jmh[] | "| \($f.round) | \(.benchmark | sub(".*\\."; "")) | \($f.impl) | \($f.tries) | \($f.busy_before) | \($f.others_during) | \($f.load_average_before) | \([.primaryMetric.rawData[][]] | median | fmt) \(.primaryMetric.scoreUnit) |")
  ' "$json" 2>/dev/null || echo "(a benchmark is missing from the results: no summary)")"
  {
    echo "# Embedding: all-MiniLM-L6-v2, Tandem vs ONNX Runtime"
    echo
    jq -r '.header[] | select(startswith("command:") | not) | "- " + .' "$json"
    echo "- command: \`$(jq -r .command "$json")\`"
    echo "- results: \`$(basename "$base").json\` (every fork), \`$(basename "$base").txt\` (the log)"
    echo
    echo "Medians over every measured iteration of the $(jq '[.forks[].round] | max' "$json") forks of each benchmark and implementation:"
    echo
    echo "$summary"
    if [ -n "$notes" ]; then
      echo
      echo "$notes"
    fi
  } > "$base.md"
}

if [ -n "$REPORT" ]; then
  report "$REPORT"
  cat "${REPORT%.json}.md"
  exit 0
fi

. "$BENCH/jar.sh"
if [ -n "$GIVEN_JAR" ]; then
  JAR="$GIVEN_JAR"
else
  bench_build_jar || exit 1
fi

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

# CPU ticks so far: "all busy" over every CPU (/proc/stat), and "ours", this shell's waited-for children (/proc/$$/stat).
ticks() {
  read -r _ u n s i w q sq st _ < /proc/stat
  local all=$((u + n + s + i + w + q + sq + st)) busy=$((u + n + s + q + sq + st))
  local ours
  ours="$(sed 's/.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }')" # cutime + cstime, after the (comm) field
  echo "$all $busy $ours"
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
  echo "command: bench/embedding.sh --rounds $ROUNDS --threads $THREADS${GIVEN_JAR:+ --jar $GIVEN_JAR}${*:+ $*}"
  echo "jar: $JAR ($(date -u -r "$JAR" +%Y-%m-%dT%H:%M:%SZ))"
  echo
} > "$LOG"
cat "$LOG" >&2

CMDLINE="bench/embedding.sh --rounds $ROUNDS --threads $THREADS${GIVEN_JAR:+ --jar $GIVEN_JAR}${*:+ $*}"
forks=()
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2 == 1)); then order=(tandem onnxruntime); else order=(onnxruntime tandem); fi
  for bench in latency throughput; do
    for impl in "${order[@]}"; do
      for ((try = 1; ; try++)); do
        b="$(wait_quiet)"
        load="$(cut -d' ' -f1-3 /proc/loadavg)"
        json="$TMP/$r-$bench-$impl.json"
        echo "## round $r, $bench, $impl, try $try: CPUs $b busy before the fork, load average $load" | tee -a "$LOG" >&2
        read -r all0 busy0 ours0 <<< "$(ticks)"
        "$JAVA" --sun-misc-unsafe-memory-access=allow -jar "$JAR" "EmbeddingBenchmark\.$bench\$" -p impl="$impl" \
          -p threads="$THREADS" -f 1 "$@" -rf json -rff "$json" > "$TMP/fork.log" 2>&1 \
          || { cat "$TMP/fork.log" >> "$LOG"; echo "embedding.sh: JMH failed (log: $LOG)" >&2; exit 1; }
        read -r all1 busy1 ours1 <<< "$(ticks)"
        cat "$TMP/fork.log" >> "$LOG"
        grep -E '^(Tandem vs|EmbeddingBenchmark\.)' "$TMP/fork.log" >&2 || true
        others="$(awk -v a=$((all1 - all0)) -v b=$((busy1 - busy0)) -v o=$((ours1 - ours0)) \
          'BEGIN { f = a > 0 ? (b - o) / a : 0; printf "%.2f", (f < 0 ? 0 : f) }')"
        echo "## round $r, $bench, $impl, try $try: other processes took $others of the CPUs during the fork" | tee -a "$LOG" >&2
        if awk -v f="$others" 'BEGIN { exit !(f > 0.05) }' && [ "$try" -le "$RETRIES" ]; then
          continue
        fi
        break
      done
      jq --argjson round "$r" --arg impl "$impl" --argjson busy "$b" --arg load "$load" --argjson others "$others" \
        --argjson tries "$try" \
        '{round: $round, impl: $impl, tries: $tries, busy_before: $busy, load_average_before: $load, others_during: $others, jmh: .}' \
        "$json" > "$TMP/fork-$r-$bench-$impl.json"
      forks+=("$TMP/fork-$r-$bench-$impl.json")
    done
  done
done

header="$(sed -n '2,7p' "$LOG")"
jq -s --arg header "$header" --arg command "$CMDLINE" \
  '{benchmark: "EmbeddingBenchmark", command: $command, header: ($header | split("\n")), forks: .}' "${forks[@]}" > "$OUT.json"

report "$OUT.json"
cat "$OUT.md"
echo "$OUT.json"
