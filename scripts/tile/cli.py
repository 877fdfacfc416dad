"""Command line: `python -m scripts.tile build` (what `make tile` runs)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scripts.tile.build import BPM_ENV, BuildOptions, build_tile
from scripts.tile.errors import TileError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.tile", description=__doc__)
    parser.add_argument("--dir", type=Path, default=REPO_ROOT, help="the repository (default: this one)")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="check tile.yml and write build/<name>-<version>.pivotal")
    build.add_argument("--tile-yml", type=Path, help="the tile definition (default: <dir>/tile.yml)")
    build.add_argument(
        "--release", type=Path, help="this repository's release tarball (default: build/*.tgz)"
    )
    build.add_argument("--bpm-release", type=Path, help=f"the bpm release tarball (default: ${BPM_ENV})")
    build.add_argument("--output", type=Path, help="where to write the .pivotal")
    build.add_argument("--version", help="the tile's version (default: from the release's)")
    build.add_argument("--require-complete", action="store_true", help="fail unless every release is packed")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        build_tile(
            BuildOptions(
                root=args.dir,
                tile_yml=args.tile_yml,
                release=args.release,
                bpm_release=args.bpm_release,
                output=args.output,
                version=args.version,
                require_complete=args.require_complete,
            ),
            log=lambda line: print(line, flush=True),
        )
    except TileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.monotonic() - started:.2f} s", flush=True)
    return 0
