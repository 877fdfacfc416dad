"""The task scripts themselves: shellcheck-clean, and a clear error when run outside a task's directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pipeline.repo_input import REPO

LIB = REPO / "scripts" / "ci" / "lib.sh"  # sourced by the others
SCRIPTS = sorted(p for p in (REPO / "scripts" / "ci").glob("*.sh") if p != LIB)


def test_every_task_script_is_used_by_a_task_file() -> None:
    named = {
        line.split("source/", 1)[1].strip()
        for t in (REPO / "ci/tasks").glob("*.yml")
        for line in t.read_text().splitlines()
        if line.strip().startswith("path:")
    }
    assert {str(p.relative_to(REPO)) for p in SCRIPTS} == named


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="needs shellcheck (apt-get install shellcheck)"
)
def test_shellcheck_clean() -> None:
    result = subprocess.run(
        [
            "shellcheck",
            "--external-sources",
            "--shell=bash",
            *map(str, SCRIPTS),
            str(REPO / "scripts/ci/lib.sh"),
        ],
        cwd=REPO / "scripts" / "ci",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("build-release.sh", "no release-tarball/ directory here"),
        ("build-tile.sh", "no tile/ directory here"),
        ("publish.sh", "no final-release/ directory here"),
        ("final-release.sh", "no final-release/ directory here"),
    ],
)
def test_outside_a_task_directory(tmp_path: Path, script: str, message: str) -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "ci" / script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {message} ({tmp_path})")
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
