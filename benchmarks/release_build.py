"""The release builder's no-op rebuild, against a cold build of the same tree in the same run."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.release.create import CreateOptions, create_release

REPO_ROOT = Path(__file__).resolve().parents[1]
NOOP_GOAL_S = 2.0


@dataclass(frozen=True)
class ReleaseBuildResult:
    cold_s: float
    noop_s: float

    def line(self) -> str:
        return (
            f"noop_build_s: {self.noop_s:.2f} (cold build of the same tree {self.cold_s:.2f} s, "
            f"ratio {self.noop_s / self.cold_s:.3f}; goal < {NOOP_GOAL_S:.0f} s)"
        )


def measure_release_build(root: Path = REPO_ROOT) -> ReleaseBuildResult:
    """Build once with an empty cache (cold), then again unchanged (no-op); needs the blobs."""
    with tempfile.TemporaryDirectory(prefix="pgsvc-bench-release-") as tmp:
        options = CreateOptions(root=root, cache_dir=Path(tmp) / "cache", tarball=Path(tmp) / "release.tgz")
        started = time.perf_counter()
        create_release(options, log=lambda _line: None)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        create_release(options, log=lambda _line: None)
        noop = time.perf_counter() - started
    return ReleaseBuildResult(cold_s=cold, noop_s=noop)
