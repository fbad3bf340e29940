"""``fraudradar keys generate DIR``: new pseudonym and disclosure key files (mode 0600)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from services.common.pseudonym import generate_key_text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fraudradar keys", description=__doc__)
    parser.add_argument("action", choices=["generate"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--force", action="store_true", help="overwrite existing key files")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    for name, key_id in (("pseudonym.key", f"p{stamp}"), ("disclosure.key", f"d{stamp}")):
        path = args.dir / name
        if path.exists() and not args.force:
            print(f"{path} exists (kept)")
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(generate_key_text(key_id) + "\n")
        print(f"{path} written (key id {key_id})")
    return 0
