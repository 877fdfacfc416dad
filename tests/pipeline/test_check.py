"""The pipeline checker: the product's pipeline passes, and each kind of defect is named when present."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.pipeline import PRODUCT_ORDER, check_pipeline
from scripts.pipeline.check import PRODUCT_FINAL_JOB
from tests.pipeline.conftest import PIPELINE, REPO, job, remove_step, step


def check(pipeline: dict[str, Any], root: Path = REPO) -> list[str]:
    return check_pipeline(pipeline, root, PRODUCT_ORDER, PRODUCT_FINAL_JOB)


def test_the_product_pipeline_is_consistent(pipeline: dict[str, Any]) -> None:
    assert check(pipeline) == []
    assert {j["name"] for j in pipeline["jobs"]} == {"test", "build-release", "build-tile", "ha-test", "ship"}


def test_cli_reports_consistent_and_defects(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "scripts.pipeline", str(PIPELINE)], cwd=REPO, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"{PIPELINE}: consistent\n"

    pipeline["resources"] = [r for r in pipeline["resources"] if r["name"] != "tile-candidate"]
    broken = tmp_path / "pipeline.yml"
    broken.write_text(yaml.safe_dump(pipeline))
    bad = subprocess.run(
        [sys.executable, "-m", "scripts.pipeline", str(broken)], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "error: jobs.build-tile: put tile-candidate: no resource named 'tile-candidate' is declared\n" in (
        bad.stderr
    )


def test_missing_task_file(pipeline: dict[str, Any]) -> None:
    step(pipeline, "test", "task", "test")["file"] = "source/ci/tasks/unit.yml"
    assert check(pipeline) == [
        "jobs.test: task test: task file source/ci/tasks/unit.yml does not exist "
        "(ci/tasks/unit.yml is not in the repository)"
    ]


def test_task_file_from_an_artifact_not_fetched(pipeline: dict[str, Any]) -> None:
    step(pipeline, "test", "task", "test")["file"] = "repo/ci/tasks/test.yml"
    assert check(pipeline) == [
        "jobs.test: task test: file repo/ci/tasks/test.yml: 'repo' is not fetched by a get in this plan"
    ]


def test_input_neither_fetched_nor_made(pipeline: dict[str, Any]) -> None:
    remove_step(pipeline, "build-tile", "get", "release-candidate")
    assert check(pipeline) == [
        "jobs.build-tile: task build-tile: input 'release-candidate' is neither fetched by a get "
        "nor made by an earlier step",
        # ship's release-candidate must now come through a job that never sees it
        "jobs.ship: get release-candidate: passed job 'build-tile' neither gets nor puts release-candidate",
    ]


def test_input_made_only_by_a_later_step(pipeline: dict[str, Any]) -> None:
    plan = job(pipeline, "ship")["plan"]
    tile_task = next(s for s in plan if s.get("task") == "build-final-tile")
    plan.remove(tile_task)
    plan.insert(plan.index(next(s for s in plan if s.get("task") == "publish")) + 1, tile_task)
    assert check(pipeline) == [
        "jobs.ship: task publish: input 'final-tile' is neither fetched by a get nor made by an earlier step"
    ]


def test_input_mapped_to_nothing(pipeline: dict[str, Any]) -> None:
    step(pipeline, "ship", "task", "build-final-tile")["input_mapping"] = {
        "release-candidate": "final-releases",
        "tarball": "final-release",
    }
    assert check(pipeline) == [
        "jobs.ship: task build-final-tile: input_mapping names 'tarball', which is not an input of the task",
        "jobs.ship: task build-final-tile: input 'release-candidate' (mapped to 'final-releases') is neither "
        "fetched by a get nor made by an earlier step",
    ]


def test_undeclared_resource(pipeline: dict[str, Any]) -> None:
    pipeline["resources"] = [r for r in pipeline["resources"] if r["name"] != "tile-candidate"]
    assert check(pipeline) == [
        "jobs.build-tile: put tile-candidate: no resource named 'tile-candidate' is declared",
        "jobs.ship: get tile-candidate: no resource named 'tile-candidate' is declared",
    ]


def test_unknown_resource_type_and_a_declared_one(pipeline: dict[str, Any]) -> None:
    version = next(r for r in pipeline["resources"] if r["name"] == "version")
    version["type"] = "semver-s3"
    defects = check(pipeline)
    assert (
        "resources.version: type 'semver-s3' is neither a core resource type nor in resource_types" in defects
    )
    pipeline["resource_types"] = [
        {"name": "semver-s3", "type": "registry-image", "source": {"repository": "example/semver"}}
    ]
    assert not any("semver-s3" in d for d in check(pipeline))


def test_unused_resource(pipeline: dict[str, Any]) -> None:
    pipeline["resources"].append({"name": "nightly", "type": "time", "source": {"interval": "24h"}})
    assert check(pipeline) == ["resources.nightly is not used by any job"]


def test_literal_secrets(pipeline: dict[str, Any]) -> None:
    version = next(r for r in pipeline["resources"] if r["name"] == "version")
    version["source"]["secret_access_key"] = "wJalrXUtnFEMI/K7MDENG"
    step(pipeline, "ship", "task", "publish")["params"]["AWS_SECRET_ACCESS_KEY"] = "wJalrXUtnFEMI/K7MDENG"
    assert check(pipeline) == [
        "resources.version.source.secret_access_key is a literal value; use a ((credential)) for secrets",
        "jobs.ship: task publish: params.AWS_SECRET_ACCESS_KEY is a literal value; use a ((credential)) "
        "for secrets",
    ]


def test_put_of_a_file_in_no_artifact(pipeline: dict[str, Any]) -> None:
    step(pipeline, "build-release", "put", "release-candidate")["params"]["file"] = "tarball/*.tgz"
    assert check(pipeline) == [
        "jobs.build-release: put release-candidate: params.file 'tarball/*.tgz' is in no artifact of an "
        "earlier step"
    ]


def test_run_path_missing_not_executable_or_elsewhere(pipeline: dict[str, Any], repo_copy: Path) -> None:
    assert check(pipeline, repo_copy) == []
    (repo_copy / "scripts/ci/ha-test.sh").unlink()
    (repo_copy / "scripts/ci/test.sh").chmod(0o644)
    publish = repo_copy / "ci/tasks/publish.yml"
    publish.write_text(publish.read_text().replace("source/scripts/ci/publish.sh", "source/ci/publish.sh"))
    final = repo_copy / "ci/tasks/final-release.yml"
    final.write_text(final.read_text().replace("source/scripts/ci/final-release.sh", "/bin/sh"))
    assert check(pipeline, repo_copy) == [
        "jobs.test: task test: run.path 'source/scripts/ci/test.sh' is not executable "
        "(chmod +x scripts/ci/test.sh)",
        "jobs.ha-test: task ha-test: run.path 'source/scripts/ci/ha-test.sh' does not exist "
        "(scripts/ci/ha-test.sh is not in the repository)",
        "jobs.ship: task final-release: run.path '/bin/sh' is not a script in the repository input",
        "jobs.ship: task publish: run.path 'source/ci/publish.sh' is not under scripts/",
    ]


def test_task_without_image(pipeline: dict[str, Any], repo_copy: Path) -> None:
    task = repo_copy / "ci/tasks/test.yml"
    config = yaml.safe_load(task.read_text())
    del config["image_resource"]
    task.write_text(yaml.safe_dump(config))
    assert check(pipeline, repo_copy) == [
        "jobs.test: task test: no image_resource with a type and source (and no image:)"
    ]


def test_passed_job_missing_or_not_using_the_resource(pipeline: dict[str, Any]) -> None:
    step(pipeline, "ship", "get", "tile-candidate")["passed"] = ["build-tiles"]
    step(pipeline, "ship", "get", "version")["passed"] = ["ha-test"]
    defects = check(pipeline)
    assert "jobs.ship: get tile-candidate: passed job 'build-tiles' does not exist" in defects
    assert "jobs.ship: get version: passed job 'ha-test' neither gets nor puts version" in defects


def test_cycle(pipeline: dict[str, Any]) -> None:
    step(pipeline, "test", "get", "source")["passed"] = ["ship"]
    assert (
        "passed: constraints form a cycle: build-release -> build-tile -> ship -> test -> build-release"
        in (check(pipeline))
    )


def test_out_of_order(pipeline: dict[str, Any]) -> None:
    step(pipeline, "ha-test", "get", "source")["passed"] = ["test"]
    step(pipeline, "ha-test", "get", "release-candidate")["passed"] = []
    defects = check(pipeline)
    assert "jobs.ha-test: does not run after build-release (no get with passed: [build-release])" in defects
    remove_step(pipeline, "ship", "get", "tile-candidate")
    pipeline["jobs"] = [j for j in pipeline["jobs"] if j["name"] != "build-tile"]
    assert "jobs: there is no job 'build-tile'" in check(pipeline)


def test_ship_takes_a_version_no_build_used(pipeline: dict[str, Any]) -> None:
    del step(pipeline, "ship", "get", "version")["passed"]
    assert check(pipeline) == [
        "jobs.ship: does not take the version the builds used (version: gets it without passed:)"
    ]


def test_version_bumped_after_the_builds(pipeline: dict[str, Any]) -> None:
    step(pipeline, "ship", "get", "version")["params"] = {"bump": "minor"}
    step(pipeline, "build-tile", "get", "version")["params"] = {"pre": "rc"}
    assert check(pipeline) == [
        "jobs.build-tile: get version changes the version upstream jobs used (pre: rc); "
        "only bump: final may follow passed:",
        "jobs.ship: get version changes the version upstream jobs used (bump: minor); "
        "only bump: final may follow passed:",
    ]


def test_version_from_another_build_than_the_tile(pipeline: dict[str, Any]) -> None:
    step(pipeline, "ship", "get", "version")["passed"] = ["build-release"]
    assert check(pipeline) == [
        "jobs.ship: get version (passed ['build-release']) and get source (passed ['build-tile', 'ha-test']) "
        "share no upstream job, so they may come from different builds",
        "jobs.ship: get version (passed ['build-release']) and get release-candidate "
        "(passed ['build-tile', 'ha-test']) share no upstream job, so they may come from different builds",
        "jobs.ship: get version (passed ['build-release']) and get tile-candidate (passed ['build-tile']) "
        "share no upstream job, so they may come from different builds",
        "jobs.ship: get version (passed ['build-release']) and get bpm-release (passed ['build-tile']) "
        "share no upstream job, so they may come from different builds",
    ]


def test_version_chain_broken_upstream(pipeline: dict[str, Any]) -> None:
    del step(pipeline, "build-tile", "get", "version")["passed"]
    assert check(pipeline) == [
        "jobs.build-tile: gets version without passed: and does not put it, so the version it hands on "
        "was chosen by no build"
    ]


@pytest.mark.parametrize(
    ("text", "defect"),
    [
        ("jobs: [\n", "is not valid YAML"),
        ("- just\n- a list\n", "the pipeline is not a mapping"),
    ],
)
def test_unreadable_pipeline(tmp_path: Path, text: str, defect: str) -> None:
    from scripts.pipeline import check_pipeline_file

    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    (only,) = check_pipeline_file(path, REPO)
    assert defect in only
