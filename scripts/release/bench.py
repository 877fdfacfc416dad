"""Figures for `make bench` (benchmarks/ imports these; it belongs to another part of the project)."""

from __future__ import annotations

import time
from pathlib import Path

from scripts.release.create import CreateOptions, create_release

REPO_ROOT = Path(__file__).resolve().parents[2]


def noop_build_s(root: Path = REPO_ROOT) -> float:
    """Seconds for a release build of an unchanged tree (after one build has warmed the cache).

    Needs the blobs (`make blobs`). The first, warming build is not timed.
    """
    create_release(CreateOptions(root=root), log=lambda _line: None)
    started = time.perf_counter()
    create_release(CreateOptions(root=root), log=lambda _line: None)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"noop_build_s {noop_build_s():.3f}")
