"""Command line: `python -m scripts.pipeline [ci/pipeline.yml]` prints each defect; exit status 1 if any."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.pipeline.check import check_pipeline_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.pipeline", description=__doc__)
    parser.add_argument("pipeline", nargs="?", type=Path, default=REPO_ROOT / "ci" / "pipeline.yml")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="the repository the tasks come from")
    args = parser.parse_args(argv)
    defects = check_pipeline_file(args.pipeline, args.repo)
    for defect in defects:
        print(f"error: {defect}", file=sys.stderr)
    if defects:
        return 1
    print(f"{args.pipeline}: consistent")
    return 0
