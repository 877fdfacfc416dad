"""Checks the job template tests share: rendered scripts parse and pass shellcheck, and secrets stay put.

Each takes a job's rendered templates (destination path -> text, as
`render_job` returns them) and fails the calling test with what went wrong.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.templates.job_inputs import SECRETS
from tests.templates.vcap_tree import VcapTree


def assert_valid_bash(rendered: dict[str, str], script: str) -> None:
    """`bash -n` accepts the rendered script (it parses; nothing runs)."""
    result = subprocess.run(
        ["bash", "-n"], input=rendered[script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{script}: {result.stderr}"


def assert_shellcheck_clean(job: str, rendered: dict[str, str]) -> None:
    """shellcheck finds nothing in the job's rendered bin/ scripts; skips the test without shellcheck."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    tree = VcapTree.create()
    try:
        # Laid out as on a VM, so shellcheck can follow what the scripts source.
        job_dir = tree.install_job(job, rendered)
        scripts = sorted(str(p) for p in (job_dir / "bin").iterdir())
        result = subprocess.run(
            ["shellcheck", "--external-sources", *scripts], capture_output=True, text=True, check=False
        )
    finally:
        tree.destroy()
    assert result.returncode == 0, result.stdout


def files_holding_secrets(rendered: dict[str, str]) -> set[str]:
    """The rendered files in which any of job_inputs' secrets appears as given."""
    return {dest for dest, text in rendered.items() if any(secret in text for secret in SECRETS)}


def assert_no_secret_shown(message: str) -> None:
    """None of job_inputs' secrets appears in `message` (a refusal's text, which operators see)."""
    for secret in SECRETS:
        assert secret not in message
