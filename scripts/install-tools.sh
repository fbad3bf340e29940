#!/usr/bin/env bash
# Installs the checking tools the test command needs, once per machine; only promtool may need root:
#   (with the argument `compiler`: only gcc from apt when the machine has no C compiler; as root)
#   promtool     the one on PATH or in the cache's bin/, else, as root, Debian's prometheus package
#                (apt: Prometheus 2.x, which deploy/prometheus/tests are written against); without
#                root it says what to put where and stops. Not from the Go module proxy: only
#                Prometheus 3.x installs with `go install` (2.x's go.mod has replace directives),
#                its rate/increase extrapolation changes two expectations of pipeline_test.yml, and
#                the build needs ~3.5 GB of Go caches and 3 GB of memory;
#   helm         built from the Go module proxy (go install), pinned;
#   kubeconform  built from the Go module proxy (go install), pinned;
#   k8s schemas  kubeconform's offline JSON schemas, rewritten from the PyPI package
#                kubernetes-validate (pinned in the dev extras) by deploy/tools/offline_k8s_schemas.py.
# Binaries and schemas go to $FRAUDRADAR_CACHE (default ~/.cache/fraudradar), which outlives a
# fresh clone on the same machine (`make distclean` removes it). Go's module and build caches
# (about 1-2 GB for helm and kubeconform) and its other per-user files go to a temporary directory that is
# removed when this script ends, so nothing of the builds stays in the home directory. Each step
# is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.7.0
PROMTOOL_RELEASES=https://github.com/prometheus/prometheus/releases   # 2.53.x: the 2.x LTS line
KUBE_VERSIONS="${FRAUDRADAR_KUBE_VERSIONS:-1.33.0}"
CACHE="${FRAUDRADAR_CACHE:-$HOME/.cache/fraudradar}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
export PATH="$BIN:$PATH"
PY="${PYTHON:-python3}"
started=$(date +%s)

say() { echo "tools: $*" >&2; }

# --- a C compiler (make's install step, before pip: it builds services/scorer/_fastcore.c) --
if [ "${1:-}" = compiler ]; then
  if ! command -v cc >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      say "no C compiler: the scorer will run its record update in Python, 1.2-1.4x slower (Debian: apt-get install gcc)"
      exit 0
    fi
    say "installing a C compiler (Debian package gcc) for the scorer's compiled record update"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends gcc libc6-dev >/dev/null
  fi
  exit 0
fi

# --- Go, with its caches in a temporary directory -------------------------------------------
GOTMP=$(mktemp -d "${TMPDIR:-/tmp}/fraudradar-go.XXXXXX")
cleanup() {
  chmod -R u+w "$GOTMP" 2>/dev/null || true   # the module cache is read-only
  rm -rf "$GOTMP"
}
trap cleanup EXIT

have_go() { command -v go >/dev/null 2>&1; }
need_go() {
  have_go && return 0
  say "Go is missing: it builds $1 (Debian: apt-get install golang, or https://go.dev/dl/), then rerun"
  exit 1
}
# go with every per-user directory it would write (module cache, build cache, GOPATH, telemetry
# under the config directory) inside $GOTMP.
run_go() {
  GOCACHE="$GOTMP/build" GOMODCACHE="$GOTMP/mod" GOPATH="$GOTMP/gopath" XDG_CONFIG_HOME="$GOTMP/config" \
    GOBIN="$BIN" GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 GOTELEMETRY=off go "$@"
}

# --- promtool -----------------------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "promtool (Prometheus 2.x) is missing, and without root (or apt) this script does not install it:"
    say "  put the promtool of a Prometheus 2.53.x release ($PROMTOOL_RELEASES, prometheus-2.53.*.linux-*.tar.gz)"
    say "  into $BIN (no root needed), or as root: apt-get install prometheus; then rerun"
    exit 1
  else
    say "installing promtool (Debian package prometheus, Prometheus 2.x; as root)"
    # The package's maintainer scripts would start a Prometheus server; a policy-rc.d that says
    # 101 ("action forbidden") keeps them from it. Only added when the machine has none.
    added_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends prometheus >/dev/null
    if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  fi
fi
say "$(promtool --version 2>&1 | head -1)"

# --- helm and kubeconform from the Go module proxy ----------------------------------------
have_helm=""
if [ -x "$BIN/helm" ] && [ "$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  have_helm=1
fi
if [ -z "$have_helm" ]; then
  need_go helm
  say "building helm $HELM_VERSION with go install (cold: a few minutes)"
  # A plain `go install` leaves helm's version and its default Kubernetes version (used for
  # .Capabilities.KubeVersion and lint) at placeholders; the release Makefile sets them with
  # ldflags from the client-go version in go.mod. Do the same.
  gomod=$(run_go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  client_go=$(awk '$1 == "k8s.io/client-go" {print $2}' "$gomod")   # e.g. v0.35.1
  kminor=$(echo "$client_go" | cut -d. -f2)
  run_go install -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kminor \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kminor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
say "helm $("$BIN/helm" version --template '{{.Version}}')"

if ! [ -x "$BIN/kubeconform" ] || [ "$("$BIN/kubeconform" -v 2>/dev/null)" != "$KUBECONFORM_VERSION" ]; then
  need_go kubeconform
  say "building kubeconform $KUBECONFORM_VERSION with go install"
  run_go install -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi
say "kubeconform $("$BIN/kubeconform" -v)"

# --- offline Kubernetes schemas -----------------------------------------------------------
if ! "$PY" -c 'import kubernetes_validate' >/dev/null 2>&1; then
  say "installing kubernetes-validate==1.37.0 (offline Kubernetes schemas)"
  "$PY" -m pip install -q "kubernetes-validate==1.37.0"
fi
# shellcheck disable=SC2086
"$PY" deploy/tools/offline_k8s_schemas.py "$CACHE/k8s-schemas" $KUBE_VERSIONS >&2

say "ok in $(( $(date +%s) - started ))s (binaries in $BIN)"
