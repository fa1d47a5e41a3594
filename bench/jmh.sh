#!/usr/bin/env bash
# Runs the JMH kernel benchmarks of bench/ in one of two profiles and writes JMH's JSON to
# bench/results/<UTC date-time>-jmh-<profile>.json (beside it a .txt log: machine, JDK, commit,
# command, then JMH's own output). Finds a JDK 25 like ./tandem and builds bench/target/benchmarks.jar
# when it is missing or older than a pom or a main source. Prints the JSON's path at the end.
#
#   bench/jmh.sh quick [JMH args]   # 44 parameter sets, 1 fork, 2 × 1 s warm-up, 3 × 1 s measurement: ~4 min on 2 cores
#   bench/jmh.sh full  [JMH args]   # every parameter set (82) with the annotations' defaults
#                                   # (2 forks, 5 × 1 s warm-up, 5 × 2 s measurement): ~44 min
#
# Extra arguments go to JMH after the profile's and override them: a benchmark regex (e.g. Attention),
# -p name=v1,v2 (pins a parameter), -f/-wi/-i/-w/-r, -prof gc, ... (java -jar benchmarks.jar -h).
# EmbeddingBenchmark (a whole model against ONNX Runtime, not a kernel) is left out: bench/embedding.sh runs it.
set -euo pipefail
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 1 ] || usage
PROFILE="$1"
shift
# The profile's options, as option/value pairs; an option the extra arguments give again (JMH
# rejects a repeated -f, -wi, ...) or a -p of the same parameter (JMH would add its values) replaces it.
case "$PROFILE" in
  quick)
    # 44 sets × (≈0.7 s fork + 2 s warm-up + 3 s measurement) ≈ 250 s. -p pins a parameter in every
    # benchmark that has it: matmul 2048x5632 (n 1, 64 × f32, bf16 × threads 1, all: 8 sets),
    # attention decode at contexts 128, 1024, 4096 (× kv f32, bf16 × threads: 12), rmsnorm dim 2048
    # (rows 1, 64 × threads: 4), rope (4), softmax width 32000 (rows 1, 64: 2), argmax (vocab 32000,
    # 128256: 2), sample with temperature alone and with top-k+top-p (× vocab: 4), layerNorm hidden 384
    # and gelu intermediate 1536 (rows 1, 128 × threads: 4 each).
    PROFILE_OPTS=(-f 1 -wi 2 -i 3 -w 1s -r 1s
      -p shape=2048x5632 -p weights=F32,BF16 -p context=128,1024,4096 -p queries=1 -p dim=2048 -p width=32000
      -p filter=temperature,top-k+top-p -p hidden=384 -p intermediate=1536 -e EmbeddingBenchmark)
    ;;
  full)
    PROFILE_OPTS=(-e EmbeddingBenchmark)
    ;;
  -h|--help|help) usage ;;
  *) echo "jmh.sh: unknown profile '$PROFILE' (quick or full)" >&2; usage ;;
esac
given=" "
prev=""
for a in "$@"; do
  case "$a" in
    -*) given+="$a " ;;
    *) [ "$prev" = "-p" ] && given+="-p:${a%%=*} " ;;
  esac
  prev="$a"
done
PROFILE_ARGS=()
for ((i = 0; i < ${#PROFILE_OPTS[@]}; i += 2)); do
  opt="${PROFILE_OPTS[i]}" val="${PROFILE_OPTS[i + 1]}"
  key="$opt"
  [ "$opt" = "-p" ] && key="-p:${val%%=*}"
  case "$given" in *" $key "*) continue ;; esac
  PROFILE_ARGS+=("$opt" "$val")
done

. "$BENCH/jar.sh"
bench_build_jar || exit 1

mkdir -p "$BENCH/results"
STAMP="$(date -u +%Y-%m-%dT%H%MZ)"
OUT="$BENCH/results/$STAMP-jmh-$PROFILE.json"
LOG="$BENCH/results/$STAMP-jmh-$PROFILE.txt"
# --sun-misc-unsafe-memory-access=allow quiets JMH 1.37's Unsafe warnings; JMH passes the harness's JVM
# options on to its forks, before the @Fork ones.
CMD=("$JAVA" --sun-misc-unsafe-memory-access=allow -jar "$JAR" "${PROFILE_ARGS[@]}" "$@" -rf json -rff "$OUT")

{
  echo "# JMH kernel benchmarks, $PROFILE profile"
  bench_header
  echo "command: bench/jmh.sh $PROFILE${*:+ $*}"
  echo "jmh: ${CMD[*]}"
  echo
} > "$LOG"
cat "$LOG" >&2

set +e
"${CMD[@]}" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
  echo "jmh.sh: JMH exited with status $rc (log: $LOG)" >&2
  exit "$rc"
fi
echo "$OUT"
