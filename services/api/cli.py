"""``fraudradar api``: run the partner API, print its OpenAPI document, or make key material.

fraudradar api [--host H] [--port P]        serve (uvicorn)
fraudradar api --print-openapi              the OpenAPI document (JSON) on stdout
fraudradar api hash-secret                  read a client secret on stdin, print its hash
fraudradar api gen-signing-key FILE         new EC P-256 token signing key (mode 0600)
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from services.api.config import ApiSettings


def main(argv: list[str]) -> int:
    if argv and argv[0] == "hash-secret":
        return _hash_secret()
    if argv and argv[0] == "gen-signing-key":
        return _gen_key(argv[1:])
    settings = ApiSettings()
    parser = argparse.ArgumentParser(
        prog="fraudradar api", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=settings.api_host)
    parser.add_argument("--port", type=int, default=settings.api_port)
    parser.add_argument("--print-openapi", action="store_true", help="print the OpenAPI document and exit")
    args = parser.parse_args(argv)
    settings = settings.model_copy(update={"api_host": args.host, "api_port": args.port})
    from services.api.app import create_app

    app = create_app(settings)
    if args.print_openapi:
        print(json.dumps(app.openapi(), indent=2, sort_keys=False))
        return 0
    import uvicorn

    from services.api.server import uvicorn_config
    from services.common.exceptions import ConfigError
    from services.common.logs import setup_logging

    setup_logging("api", settings.log_level)
    try:
        # log_config=None: uvicorn logs through the JSON handler. No access log: requests are
        # counted by the metrics, and the log stays free of client addresses.
        uvicorn.Server(uvicorn_config(app, settings, host=args.host, port=args.port)).run()
    except ConfigError as exc:
        print(f"fraudradar api: {exc}", file=sys.stderr)
        return 2
    return 0


def _hash_secret() -> int:
    from services.api.partners import hash_secret

    secret = getpass.getpass("client secret: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(secret) < 16:
        print("fraudradar api: a client secret needs at least 16 characters", file=sys.stderr)
        return 2
    print(hash_secret(secret))
    return 0


def _gen_key(argv: list[str]) -> int:
    from services.api.tokens import generate_signing_key_pem

    parser = argparse.ArgumentParser(prog="fraudradar api gen-signing-key")
    parser.add_argument("file", type=Path)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    if args.file.exists() and not args.force:
        print(f"{args.file} exists (kept; --force to replace)", file=sys.stderr)
        return 1
    args.file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(generate_signing_key_pem())
    print(f"{args.file} written (EC P-256; set FRAUDRADAR_SIGNING_KEY_FILE)", file=sys.stderr)
    return 0
