#!/usr/bin/env bash
# Makes the bundle that bench/gpu/check.sh runs from on a GPU host that has the NVIDIA driver and
# nothing else (no JDK, no Maven, no network), in the git-ignored folder .gpu/ at the repo root:
#
#   .gpu/jre.tar.xz        a trimmed Java runtime (jlink; modules from jdeps over the jars below),
#                          packed: the device tool carries the whole working tree in 64 MiB
#   .gpu/junit-platform-console-standalone.jar   JUnit's console launcher (version of the root pom)
#   .gpu/lib/              the modules' jars and their test-scope dependency jars (JUnit's left out)
#   .gpu/test-classes/M/   each bundled module M's test classes
#   .gpu/MODULES, JVM_FLAGS, COMMIT, BUNDLE   what check.sh reads; BUNDLE says how it was made
#
#   bash bench/gpu/prepare.sh
#
# Runs here, on the development machine: finds a JDK 25 like ./mvnw, builds the modules offline
# (./mvnw -o package -DskipTests; online only if offline fails), and prints the bundle's size last.
# TANDEM_GPU_MODULES (default "bindings runtime") names the modules to bundle.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
[ -f pom.xml ] && [ -x mvnw ] || { echo "prepare.sh: $ROOT is not the Tandem repo root." >&2; exit 2; }

MODULES="${TANDEM_GPU_MODULES:-bindings runtime transformer decoding app}"
# Modules whose test resources stay behind (only their classes travel): transformer's test checkpoints
# (families/, 9 MB) would push the carried tree past the device tool's 64 MiB.
CLASSES_ONLY="${TANDEM_GPU_CLASSES_ONLY:-transformer}"
# The maven-dependency-plugin version that resolves offline from ~/.m2 here (3.8+ miss commons-beanutils).
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.7.0"
BUNDLE="$ROOT/.gpu"

. "$ROOT/.mvn/find-jdk.sh"          # exports JAVA_HOME (JDK 25+) or exits 1 saying why
JDK="$JAVA_HOME"
echo "JDK: $JDK"

mvn_offline_first() { # runs ./mvnw -B -q "$@" offline, then online when offline fails
  if ! ./mvnw -B -q -o "$@"; then
    echo "prepare.sh: offline Maven failed; trying once with the network." >&2
    ./mvnw -B -q "$@"
  fi
}

pl="$(echo $MODULES | tr ' ' ',')"
echo "building $pl (package, tests compiled but not run) ..."
mvn_offline_first package -DskipTests -pl "$pl" -am

junit_version="$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' pom.xml | head -n 1)"
[ -n "$junit_version" ] || { echo "prepare.sh: no <junit.version> in pom.xml." >&2; exit 1; }
console_jar="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$junit_version/junit-platform-console-standalone-$junit_version.jar"
if [ ! -f "$console_jar" ]; then
  echo "fetching junit-platform-console-standalone $junit_version ..."
  ./mvnw -B -q "$DEP_PLUGIN:get" -Dtransitive=false \
    -Dartifact="org.junit.platform:junit-platform-console-standalone:$junit_version"
fi
[ -f "$console_jar" ] || { echo "prepare.sh: $console_jar is missing." >&2; exit 1; }

jvm_flags="$(sed -n 's:.*<tandem.jvm.flags>\(.*\)</tandem.jvm.flags>.*:\1:p' pom.xml | head -n 1)"
[ -n "$jvm_flags" ] || { echo "prepare.sh: no <tandem.jvm.flags> in pom.xml." >&2; exit 1; }

case "$BUNDLE" in */.gpu) ;; *) echo "prepare.sh: refusing to clear $BUNDLE." >&2; exit 2 ;; esac
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/lib" "$BUNDLE/test-classes"

# Test-scope dependencies of the bundled modules, without the modules themselves (copied below from
# target/) and without JUnit, which the console jar carries in its own version.
mvn_offline_first "$DEP_PLUGIN:copy-dependencies" -pl "$pl" -DincludeScope=test \
  -DexcludeArtifactIds="${TANDEM_GPU_EXCLUDE_ARTIFACTS:-archunit,commons-math3,jfreechart}" \
  -DexcludeGroupIds=dev.tandem,org.junit,org.junit.jupiter,org.junit.platform,org.junit.vintage,org.opentest4j,org.apiguardian,org.jspecify,junit,org.hamcrest \
  -DoutputDirectory="$BUNDLE/lib"

for m in $MODULES; do
  jar="$(ls "$m"/target/tandem-"$m"-*.jar 2>/dev/null | grep -v -e '-sources' -e '-tests' | head -n 1 || true)"
  [ -n "$jar" ] || { echo "prepare.sh: no jar in $m/target after the build." >&2; exit 1; }
  cp "$jar" "$BUNDLE/lib/"
  if [ -d "$m/target/test-classes" ]; then
    if [[ " $CLASSES_ONLY " == *" $m "* ]]; then
      (cd "$m/target/test-classes" && find . -name '*.class' -exec install -D -m 644 {} "$BUNDLE/test-classes/$m/{}" \;)
    else
      cp -r "$m/target/test-classes" "$BUNDLE/test-classes/$m"
    fi
  else
    mkdir -p "$BUNDLE/test-classes/$m"
  fi
done
cp "$console_jar" "$BUNDLE/junit-platform-console-standalone.jar"

# Modules: what jdeps finds in every jar and test class of the bundle, plus java.base and the Vector
# API, which the JVM flags add whether or not a class uses it.
jdeps_in=("$BUNDLE/junit-platform-console-standalone.jar" "$BUNDLE"/lib/*.jar)
for m in $MODULES; do jdeps_in+=("$BUNDLE/test-classes/$m"); done
found="$("$JDK/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps "${jdeps_in[@]}")"
# java.desktop (AWT, for the bench reports' charts, which BenchReport skips without it) is left out: it is
# a fifth of the packed runtime, and the bundle must fit the device tool's 64 MiB with the working tree.
drop_modules=" ${TANDEM_GPU_DROP_MODULES:-java.desktop} "
jre_modules="$(printf '%s\n' java.base jdk.incubator.vector $(echo "$found" | tr ',' ' ') | sort -u \
  | while read -r mod; do [[ "$drop_modules" == *" $mod "* ]] || echo "$mod"; done | paste -sd, -)"
echo "JRE modules: $jre_modules"

# The image is made uncompressed (zip-0), its native libraries stripped when strip is here, and then
# packed with xz: about 14 MB, where jlink's own --compress=zip-6 leaves a 49 MB image.
work="$(mktemp -d "${TMPDIR:-/tmp}/tandem-gpu-prepare.XXXXXX")"
trap 'rm -rf "$work"' EXIT
jlink_out="$("$JDK/bin/jlink" --add-modules "$jre_modules" --strip-debug --no-header-files --no-man-pages \
  --compress=zip-0 --output "$work/jre")"
printf '%s\n' "$jlink_out" | grep -v -e 'Using incubator modules' -e '^$' || true
if command -v strip >/dev/null 2>&1; then
  find "$work/jre" -name '*.so' -exec strip --strip-unneeded {} +
fi
"$work/jre/bin/java" -version >/dev/null 2>&1 || { echo "prepare.sh: the jlink image does not start." >&2; exit 1; }
jre_size="$(du -sh "$work/jre" | cut -f1)"
echo "packing the JRE ($jre_size unpacked) with xz ..."
tar -C "$work" -cf - jre | xz -9 > "$BUNDLE/jre.tar.xz"

echo "$MODULES" > "$BUNDLE/MODULES"
echo "$jvm_flags" > "$BUNDLE/JVM_FLAGS"
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (with uncommitted changes)"; fi
echo "$commit" > "$BUNDLE/COMMIT"
{
  echo "made:       $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "commit:     $commit"
  echo "jdk:        $("$JDK/bin/java" -version 2>&1 | sed -n 2p)"
  echo "jre:        jlink --add-modules $jre_modules --strip-debug --no-header-files --no-man-pages --compress=zip-0, native libraries stripped, xz -9 ($jre_size unpacked)"
  echo "junit:      junit-platform-console-standalone $junit_version"
  echo "modules:    $MODULES"
  echo "jvm flags:  $jvm_flags"
} > "$BUNDLE/BUNDLE"

# What the device tool would send with carry [".gpu"]: tracked and untracked-not-ignored files plus .gpu/.
tree_bytes="$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')"
gpu_bytes="$(du -sb "$BUNDLE" | cut -f1)"
echo
cat "$BUNDLE/BUNDLE"
echo
du -sh "$BUNDLE"/* | sed 's:'"$ROOT"'/::'
# And with bench/gpu/slim.sh's set-aside paths left out (what the GPU check does not read).
slim_bytes="$(git ls-files -z --cached --others --exclude-standard -- . ':!models/bard-dlm' \
  ':!transformer/src/test/resources/families' ':!transformer/src/test/resources/tokenizers' ':!bench/results' \
  | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')"
awk -v g="$gpu_bytes" -v t="$tree_bytes" -v s="$slim_bytes" 'BEGIN {
  printf "bundle .gpu/: %.1f MB (%.1f MiB)\n", g / 1e6, g / 1048576
  printf "working tree + .gpu/ as the device tool carries it: %.1f MiB (its limit: 64 MiB)\n", (g + t) / 1048576
  printf "the same after bash bench/gpu/slim.sh aside: %.1f MiB\n", (g + s) / 1048576
  if (g + s > 64 * 1048576) print "WARNING: over the device tool'\''s 64 MiB even slimmed: carry less or ignore big files."
  else if (g + t > 64 * 1048576) print "over 64 MiB as it is: run bash bench/gpu/slim.sh aside before the device call and bash bench/gpu/slim.sh restore after it."
}'
