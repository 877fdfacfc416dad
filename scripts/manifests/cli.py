"""`python -m scripts.manifests render` (what `make manifests` runs) and `interpolate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.manifests.errors import ManifestError
from scripts.manifests.render import REPO, dumps, interpolate_files, render_all


def _var(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.manifests")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write build/manifests/<variant>.yml for each variant")
    render.add_argument("--out", type=Path, default=REPO / "build" / "manifests")
    interp = commands.add_parser("interpolate", help="like `bosh interpolate`: print the result")
    interp.add_argument("manifest", type=Path)
    interp.add_argument("-o", "--ops-file", type=Path, action="append", default=[])
    interp.add_argument("-l", "--vars-file", type=Path, action="append", default=[])
    interp.add_argument("-v", "--var", type=_var, action="append", default=[])
    interp.add_argument("--var-errs", action="store_true", help="fail when a variable has no value")
    args = parser.parse_args(argv)
    try:
        if args.command == "render":
            for line in render_all(args.out):
                print(line)
        else:
            doc = interpolate_files(
                args.manifest, args.ops_file, args.vars_file, dict(args.var), strict=args.var_errs
            )
            sys.stdout.write(dumps(doc))
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
