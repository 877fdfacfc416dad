"""`python -m scripts.ci.private_blobstore URL RELEASE_DIR`: point the blobstore at an S3-compatible server.

Writes the server's address (host, port, use_ssl) into RELEASE_DIR/config/private.yml, the git-ignored
file the release tools (and the BOSH CLI) merge over config/final.yml. Credentials stay in the
environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and are never written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml


def endpoint_options(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("S3_ENDPOINT is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("S3_ENDPOINT must not carry credentials; use AWS_ACCESS_KEY_ID and friends")
    options: dict[str, object] = {"host": parts.hostname, "use_ssl": parts.scheme == "https"}
    if parts.port:
        options["port"] = parts.port
    return options


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m scripts.ci.private_blobstore URL RELEASE_DIR", file=sys.stderr)
        return 2
    try:
        options = endpoint_options(argv[0])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = Path(argv[1]) / "config" / "private.yml"
    if path.exists():
        print(f"error: {path} exists already; not replacing it", file=sys.stderr)
        return 1
    path.write_text(yaml.safe_dump({"blobstore": {"options": options}}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
