#!/usr/bin/env bash
# Removes what fraudradar put outside the checkout (`make distclean`): its cache directory,
# $FRAUDRADAR_CACHE (default ~/.cache/fraudradar), with
#   kafka-<version>/    the Apache Kafka jars (Maven Central)
#   broker/             the local broker of `fraudradar kafka up` and `fraudradar demo` (data, log)
#   bin/                helm and kubeconform (scripts/install-tools.sh), promtool if you put it there
#   k8s-schemas/        kubeconform's offline Kubernetes schemas
#   matplotlib/         matplotlib's font cache (MPLCONFIGDIR, set by the Makefile and the demo)
# Only these are removed, then the directory itself when nothing else is in it; anything else
# found there is named and left alone. Refuses while the local broker still runs from it.
set -euo pipefail

CACHE="${FRAUDRADAR_CACHE:-$HOME/.cache/fraudradar}"
say() { echo "distclean: $*" >&2; }

if [ ! -d "$CACHE" ]; then
  say "nothing to remove: no $CACHE"
  exit 0
fi
state="$CACHE/broker/state.json"
if [ -f "$state" ]; then
  pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$state")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "the local Kafka broker (pid $pid) still runs from $CACHE/broker: stop it first (fraudradar kafka down)"
    exit 1
  fi
fi

size=$(du -sh "$CACHE" 2>/dev/null | cut -f1)
rm -rf "$CACHE"/kafka-* "$CACHE/broker" "$CACHE/k8s-schemas" "$CACHE/matplotlib" \
       "$CACHE/bin/helm" "$CACHE/bin/kubeconform" "$CACHE/bin/promtool"
rmdir "$CACHE/bin" 2>/dev/null || true
if rmdir "$CACHE" 2>/dev/null; then
  say "removed $CACHE ($size)"
  # ~/.cache itself, when the project's directory was all it held
  if [ -z "${FRAUDRADAR_CACHE:-}" ]; then rmdir "$HOME/.cache" 2>/dev/null || true; fi
else
  say "removed the project's files from $CACHE ($size before); left there, not the project's:"
  ls -A "$CACHE" | sed 's/^/  /' >&2
fi
