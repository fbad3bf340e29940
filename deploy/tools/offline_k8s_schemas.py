"""Write Kubernetes JSON schemas that kubeconform can read offline.

The schemas come from the PyPI package ``kubernetes-validate`` (pinned in the dev extras),
which bundles them per Kubernetes version. Two details keep kubeconform from using them as
they are: every file carries an absolute ``$id`` (https://kubernetes.io/api/...) and refers
to its definitions by the absolute path ``/api/_definitions.json``; kubeconform's JSON-schema
library resolves both to a URL and tries to download it. This script copies one version's
files, drops ``$id`` and makes the references relative to the file (``_definitions.json#...``).

Usage: python deploy/tools/offline_k8s_schemas.py OUT_DIR [KUBE_VERSION ...]
Writes OUT_DIR/v{VERSION}-local and OUT_DIR/v{VERSION}-local-strict, the layout kubeconform
expects for ``-schema-location OUT_DIR/{{.NormalizedKubernetesVersion}}-local{{.StrictSuffix}}/...``.
Idempotent: a version whose ``.complete`` marker exists is skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ABSOLUTE_DEFS = "/api/_definitions.json"


def _relativise(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$id":
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(ABSOLUTE_DEFS):
                out[key] = "_definitions.json" + value[len(ABSOLUTE_DEFS):]
            else:
                out[key] = _relativise(value)
        return out
    if isinstance(node, list):
        return [_relativise(item) for item in node]
    return node


def bundled_root() -> Path:
    import kubernetes_validate

    return Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"


def write_version(out_dir: Path, version: str) -> int:
    """Convert one Kubernetes version (both flavours); return the number of files written."""
    version = version.removeprefix("v")
    written = 0
    for flavour in ("local", "local-strict"):
        src = bundled_root() / f"v{version}-{flavour}"
        if not src.is_dir():
            have = sorted(p.name for p in bundled_root().iterdir())
            raise SystemExit(f"kubernetes-validate has no schemas for {version} ({flavour}); it has {have}")
        dst = out_dir / f"v{version}-{flavour}"
        if (dst / ".complete").exists():
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for path in src.glob("*.json"):
            schema = json.loads(path.read_text())
            (dst / path.name).write_text(json.dumps(_relativise(schema), separators=(",", ":")))
            written += 1
        (dst / ".complete").write_text(version + "\n")
    return written


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    for version in argv[1:] or ["1.33.0"]:
        count = write_version(out_dir, version)
        print(f"k8s schemas v{version}: {count} files written to {out_dir}" if count
              else f"k8s schemas v{version}: already in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
