"""Command line: `python -m scripts.release create|blobs ...` (what `make build`, `make blobs` run)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scripts.release import fetch
from scripts.release.create import CreateOptions, create_release
from scripts.release.errors import ReleaseError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.release", description=__doc__)
    parser.add_argument(
        "--dir", type=Path, default=REPO_ROOT, help="the release directory (default: the repo)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create", help="build the release tarball (bosh create-release --tarball)")
    create.add_argument(
        "--version", help="release version (default: __version__, plus +dev.N for dev releases)"
    )
    create.add_argument("--final", action="store_true", help="a final release: .final_builds/, releases/, S3")
    create.add_argument("--force", action="store_true", help="allow a final release from a dirty work tree")
    create.add_argument(
        "--tarball", type=Path, help="where to write it (default: build/<name>-<version>.tgz)"
    )

    blobs = commands.add_parser("blobs", help="blobs pinned in config/blobs.yml")
    blob_commands = blobs.add_subparsers(dest="blob_command", required=True)
    fetch_cmd = blob_commands.add_parser("fetch", help="fetch and verify every blob into blobs/")
    fetch_cmd.add_argument("--pin", action="store_true", help="pin blobs that have a source but no pin yet")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root: Path = args.dir.resolve()
    started = time.monotonic()
    try:
        if args.command == "create":
            create_release(
                CreateOptions(
                    root=root,
                    version=args.version,
                    final=args.final,
                    force=args.force,
                    tarball=args.tarball.resolve() if args.tarball else None,
                ),
                log=lambda line: print(line, flush=True),
            )
            print(f"done in {time.monotonic() - started:.2f} s", flush=True)
        elif args.command == "blobs" and args.blob_command == "fetch":
            fetch.fetch_blobs(root, pin_new=args.pin, log=lambda line: print(line, flush=True))
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
