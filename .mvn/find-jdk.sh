# Sourced (POSIX sh) by ./mvnw, ./tandem and .ci/run so that all three pick a JDK the same way:
# JAVA_HOME when it holds a JDK 25 or newer, else the newest JDK 25+ found in the usual folders.
# Exports JAVA_HOME on success; prints one sentence and exits 1 when no JDK 25+ is found.

tandem_java_feature() { # prints the feature release (17, 25, ...) of the JDK at $1, or nothing
  [ -x "$1/bin/java" ] && [ -x "$1/bin/javac" ] || return 0
  if [ -f "$1/release" ]; then
    v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release")
  else
    v=$("$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
  fi
  [ "$v" = "1" ] && v=8
  echo "$v"
}

tandem_find_jdk() {
  unusable=""
  if [ -n "${JAVA_HOME:-}" ]; then
    v=$(tandem_java_feature "$JAVA_HOME")
    if [ -n "$v" ] && [ "$v" -ge 25 ]; then return 0; fi
    if [ -n "$v" ]; then unusable="JAVA_HOME=$JAVA_HOME is JDK $v, not 25 or newer"; else unusable="JAVA_HOME=$JAVA_HOME holds no JDK"; fi
  fi
  best=""; best_v=0
  for d in /usr/lib/jvm/* /usr/java/* /opt/java/* /opt/jdk* "$HOME"/.sdkman/candidates/java/* /Library/Java/JavaVirtualMachines/*/Contents/Home; do
    [ -d "$d" ] || continue
    v=$(tandem_java_feature "$d")
    if [ -n "$v" ] && [ "$v" -ge 25 ] && [ "$v" -gt "$best_v" ]; then best="$d"; best_v="$v"; fi
  done
  if [ -z "$best" ]; then
    echo "tandem: no JDK 25 or newer found (JAVA_HOME=${JAVA_HOME:-unset}; looked in /usr/lib/jvm, /usr/java, /opt): install JDK 25 and set JAVA_HOME to it." >&2
    exit 1
  fi
  if [ -n "$unusable" ]; then
    echo "tandem: note: $unusable; using $best (JDK $best_v)." >&2
  fi
  JAVA_HOME="$best"
  export JAVA_HOME
}

tandem_find_jdk
