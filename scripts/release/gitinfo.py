"""The commit a release is built from, and whether the work tree differs from it (as the CLI records them)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def commit_and_dirty(root: Path) -> tuple[str, bool]:
    """(short commit hash, uncommitted changes); ("non-git", False) outside a git work tree, like the CLI."""
    if _git(root, "rev-parse", "--is-inside-work-tree").returncode != 0:
        return "non-git", False
    head = _git(root, "rev-parse", "--short", "HEAD")
    commit = head.stdout.strip() if head.returncode == 0 else "non-git"
    status = _git(root, "status", "--porcelain=1")
    return commit, bool(status.stdout.strip())
