"""The product's pipeline as data, and a copy of the files it refers to, for tests that break them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "ci" / "pipeline.yml"


@pytest.fixture
def pipeline() -> dict[str, Any]:
    return yaml.safe_load(PIPELINE.read_text())


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """ci/ and scripts/ci/ copied (modes kept), so a test may delete or chmod what the pipeline names."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "ci", root / "ci")
    shutil.copytree(
        REPO / "scripts" / "ci", root / "scripts" / "ci", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def job(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for j in pipeline["jobs"] if j["name"] == name)


def steps(pipeline: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A job's steps with its in_parallel blocks opened up, in plan order."""
    flat = []
    for step in job(pipeline, name)["plan"]:
        flat.extend(step.get("in_parallel", [step]))
    return flat


def step(pipeline: dict[str, Any], job_name: str, key: str, value: str) -> dict[str, Any]:
    return next(s for s in steps(pipeline, job_name) if s.get(key) == value)


def remove_step(pipeline: dict[str, Any], job_name: str, key: str, value: str) -> None:
    for item in job(pipeline, job_name)["plan"]:
        block = item.get("in_parallel")
        if block is not None:
            block[:] = [s for s in block if s.get(key) != value]
    plan = job(pipeline, job_name)["plan"]
    plan[:] = [s for s in plan if s.get(key) != value]
