# Sourced by bench/jmh.sh and bench/embedding.sh: finds a JDK 25 like ./tandem, builds
# bench/target/benchmarks.jar when it is missing or older than a pom or a main source of bench or the
# modules it depends on, and prints the machine header every result log starts with.
# Expects ROOT (the repository) and BENCH (bench/) to be set; sets JAR and JAVA.

. "$ROOT/.mvn/find-jdk.sh"
JAR="$BENCH/target/benchmarks.jar"
JAVA="$JAVA_HOME/bin/java"

bench_jar_stale() {
  [ -f "$JAR" ] || return 0
  # bench and the modules it depends on (decoding → transformer → runtime → bindings).
  [ -n "$(find "$ROOT/pom.xml" "$ROOT"/{bench,decoding,transformer,runtime,bindings}/{pom.xml,src/main} \
    -newer "$JAR" -type f -print -quit 2>/dev/null)" ]
}

# Builds the jar if it is stale; returns 1 (with a sentence) if the build fails.
bench_build_jar() {
  bench_jar_stale || return 0
  echo "$(basename "$0"): building $JAR (missing or sources changed)..." >&2
  if ! (cd "$ROOT" && ./mvnw -q -B ${TANDEM_MVN_ARGS:-} -DskipTests -pl bench -am package >&2); then
    echo "$(basename "$0"): the build failed; run ./mvnw -B -pl bench -am package to see why." >&2
    return 1
  fi
}

# The header of a result log: date, commit, machine (CPU, cores, memory, kernel, load) and JDK.
bench_header() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
    [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)')"
  cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
  mem="$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)"
  echo "machine: ${cpu:-unknown CPU}, $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') cores, ${mem:-? memory}, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
  echo "jdk: $("$JAVA" -version 2>&1 | head -n 1)"
}
