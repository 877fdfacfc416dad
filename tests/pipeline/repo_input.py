"""The `source` input of the tasks: this repository as the git resource would hand it over.

A fresh git repository holding the committed tree (`git archive HEAD`) plus the files that make up the
CI itself (ci/, scripts/ci/, scripts/publish/, scripts/pipeline/) as they are in the work tree, so the
scripts under test are the ones being edited, while unrelated uncommitted work does not leak in. The
fetched blobs (git-ignored) are linked in, as on a laptop after `make blobs`, so that no task run here
downloads them again.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CI_PATHS = ("ci", "scripts/ci", "scripts/publish", "scripts/pipeline")
GIT_IDENTITY = ["-c", "user.name=postgres-service tests", "-c", "user.email=tests@postgres-service.invalid"]


def make_repo_input(dest: Path) -> Path:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="tar")
    for rel in CI_PATHS:
        shutil.copytree(
            REPO / rel, dest / rel, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
        )
    if (REPO / "blobs").is_dir():
        shutil.copytree(REPO / "blobs", dest / "blobs", copy_function=os.link)
    for args in (
        ["init", "--quiet", "--initial-branch=main"],
        ["add", "--all"],
        ["commit", "--quiet", "-m", "CI input"],
    ):
        subprocess.run(["git", *GIT_IDENTITY, *args], cwd=dest, check=True)
    return dest


def has_make_target(root: Path, target: str) -> bool:
    return any(line.startswith(f"{target}:") for line in (root / "Makefile").read_text().splitlines())
