"""Each task of ci/tasks/ run locally as `fly execute` would: the real scripts, inputs copied, outputs empty.

The repository input is a fresh clone-like copy of this tree (see repo_input.py); the dev environment is
this checkout's (CI_VENV); S3 is a real S3-compatible server (moto's server mode). `test` and `ha-test`
run a tiny pytest selection through CI_PYTEST_ARGS, since their real selection is the whole suite.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.pipeline.repo_input import REPO, has_make_target, make_repo_input
from tests.pipeline.task_runner import TaskRun, run_task
from tests.release.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, running_s3_server

TASKS = REPO / "ci" / "tasks"
CANDIDATE = "1.2.0-rc.1"
FINAL = "1.2.0"
PUBLISH_BUCKET = "postgres-service-published"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tasks")


@pytest.fixture(scope="module")
def source(workspace: Path) -> Path:
    return make_repo_input(workspace / "inputs" / "source")


# bpm's release tarball, when this machine has one: the tile packs it (otherwise it is -without-bpm).
BPM_TARBALL = os.environ.get("BPM_RELEASE_TARBALL")


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "S3_", "CI_", "PYTEST_", "BPM_RELEASE_TARBALL"))
    }
    base["CI_VENV"] = str(REPO / ".venv")
    base["AWS_EC2_METADATA_DISABLED"] = "true"
    return base


def version_input(workspace: Path, version: str) -> Path:
    path = workspace / "inputs" / f"version-{version}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "version").write_text(version + "\n")
    return path


def fresh(workspace: Path, name: str) -> Path:
    """A new working directory for one task run."""
    index = len(list(workspace.glob(f"run-{name}-*")))
    return workspace / f"run-{name}-{index}"


def release_mf(tarball: Path) -> dict[str, Any]:
    with tarfile.open(tarball) as tar:
        member = next(m for m in tar.getmembers() if m.name.lstrip("./") == "release.MF")
        handle = tar.extractfile(member)
        assert handle is not None
        return yaml.safe_load(handle.read())


def junit(report: Path) -> tuple[dict[str, int], list[str]]:
    root = ET.parse(report).getroot()  # noqa: S314 (the report was written by our own test run)
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    names = [f"{case.get('classname')}.{case.get('name')}" for case in suite.iter("testcase")]
    return counts, names


def assert_ok(run: TaskRun) -> None:
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"


def assert_one_line_error(run: TaskRun, text: str) -> None:
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.stderr
    assert text in errors[0]


# -- test and ha-test -------------------------------------------------------------------------------------


def test_test_task_runs_the_selection_and_reports(workspace: Path, source: Path, env: dict[str, str]) -> None:
    run = run_task(
        TASKS / "test.yml",
        fresh(workspace, "test"),
        {"source": source},
        {"CI_PYTEST_ARGS": "tests/unit/test_credentials.py -p no:cacheprovider"},
        env,
    )
    assert_ok(run)
    counts, names = junit(run.output("test-report") / "junit.xml")
    assert counts["tests"] >= 3
    assert counts["failures"] == counts["errors"] == 0
    assert all(name.startswith("tests.unit.test_credentials.") for name in names)
    assert run.stdout.rstrip().endswith("test report: test-report/junit.xml")


def test_test_task_fails_when_a_test_fails(workspace: Path, source: Path, env: dict[str, str]) -> None:
    failing = "tests/unit/test_credentials.py::test_there_is_no_such_test -p no:cacheprovider"
    run = run_task(
        TASKS / "test.yml", fresh(workspace, "test"), {"source": source}, {"CI_PYTEST_ARGS": failing}, env
    )
    assert run.returncode != 0
    assert "test report" not in run.stdout


def test_ha_test_task_runs_the_selection(workspace: Path, source: Path, env: dict[str, str]) -> None:
    selection = (
        "tests/ha/test_ha_settings.py::test_an_isolated_primary_is_fenced_before_the_standby_can_be_promoted"
    )
    run = run_task(
        TASKS / "ha-test.yml",
        fresh(workspace, "ha-test"),
        {"source": source},
        {"CI_PYTEST_ARGS": selection + " -p no:cacheprovider"},
        env,
    )
    assert_ok(run)
    counts, names = junit(run.output("ha-report") / "junit.xml")
    assert counts == {"tests": 1, "failures": 0, "errors": 0, "skipped": 0}
    assert names == [
        "tests.ha.test_ha_settings.test_an_isolated_primary_is_fenced_before_the_standby_can_be_promoted"
    ]


# -- build-release and build-tile ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release_candidate(workspace: Path, source: Path, env: dict[str, str]) -> TaskRun:
    run = run_task(
        TASKS / "build-release.yml",
        fresh(workspace, "build-release"),
        {"source": source, "version": version_input(workspace, CANDIDATE)},
        {},
        env,
    )
    assert_ok(run)
    return run


def test_build_release_writes_the_versioned_tarball(release_candidate: TaskRun, source: Path) -> None:
    written = sorted(p.name for p in release_candidate.output("release-tarball").iterdir())
    assert written == [f"postgres-service-{CANDIDATE}.tgz"]
    manifest = release_mf(release_candidate.output("release-tarball") / written[0])
    assert (manifest["name"], manifest["version"]) == ("postgres-service", CANDIDATE)
    assert sorted(j["name"] for j in manifest["jobs"]) == sorted(p.name for p in (source / "jobs").iterdir())
    assert sorted(p["name"] for p in manifest["packages"]) == sorted(
        p.name for p in (source / "packages").iterdir()
    )


def test_build_release_refuses_a_version_that_is_not_semver(
    workspace: Path, source: Path, env: dict[str, str]
) -> None:
    run = run_task(
        TASKS / "build-release.yml",
        fresh(workspace, "build-release"),
        {"source": source, "version": version_input(workspace, "latest")},
        {},
        env,
    )
    assert_one_line_error(run, "version/version holds 'latest', not a semantic version")
    assert list(run.output("release-tarball").iterdir()) == []


@pytest.fixture(scope="module")
def tile_task_available(source: Path) -> None:
    if not has_make_target(source, "tile"):
        pytest.skip("needs `make tile` (the tile builder): the Makefile has no tile target yet")


def tile_inputs(workspace: Path, source: Path, version: str, release_dir: Path) -> dict[str, Path]:
    inputs = {
        "source": source,
        "version": version_input(workspace, version),
        "release-candidate": release_dir,
    }
    if BPM_TARBALL:
        bpm = workspace / "inputs" / "bpm-release"
        if not bpm.is_dir():
            bpm.mkdir(parents=True)
            shutil.copyfile(BPM_TARBALL, bpm / "release.tgz")  # as the bosh-io-release resource names it
        inputs["bpm-release"] = bpm
    return inputs


def tile_name(version: str) -> str:
    return f"postgres-service-{version}{'' if BPM_TARBALL else '-without-bpm'}.pivotal"


def test_build_tile_around_the_candidate(
    tile_task_available: None, workspace: Path, source: Path, env: dict[str, str], release_candidate: TaskRun
) -> None:
    candidate_dir = release_candidate.output("release-tarball")
    inputs = tile_inputs(workspace, source, CANDIDATE, candidate_dir)
    run = run_task(TASKS / "build-tile.yml", fresh(workspace, "build-tile"), inputs, {}, env)
    assert_ok(run)
    tile = run.output("tile") / tile_name(CANDIDATE)
    assert sorted(p.name for p in run.output("tile").iterdir()) == [tile.name]
    with zipfile.ZipFile(tile) as archive:
        packed = {i.filename: i.file_size for i in archive.infolist() if i.filename.endswith(".tgz")}
    ours = candidate_dir / f"postgres-service-{CANDIDATE}.tgz"
    assert packed[f"releases/postgres-service-{CANDIDATE}.tgz"] == ours.stat().st_size
    assert len(packed) == (2 if BPM_TARBALL else 1)


def test_build_tile_refuses_a_candidate_of_another_version(
    workspace: Path, source: Path, env: dict[str, str], release_candidate: TaskRun
) -> None:
    run = run_task(
        TASKS / "build-tile.yml",
        fresh(workspace, "build-tile"),
        {
            "source": source,
            "version": version_input(workspace, "1.3.0-rc.1"),
            "release-candidate": release_candidate.output("release-tarball"),
        },
        {},
        env,
    )
    assert_one_line_error(
        run,
        f"release-candidate/ holds postgres-service-{CANDIDATE}.tgz, but version/version says "
        "postgres-service-1.3.0-rc.1.tgz",
    )
    assert list(run.output("tile").iterdir()) == []


# -- ship: final-release and publish, against a real S3-compatible server ---------------------------------


@pytest.fixture(scope="module")
def blobstore_bucket(source: Path) -> str:
    final_yml = yaml.safe_load((source / "config/final.yml").read_text())
    return str(final_yml["blobstore"]["options"]["bucket_name"])


@pytest.fixture(scope="module")
def s3(blobstore_bucket: str) -> Iterator[S3Server]:
    with running_s3_server() as server:
        server.client().create_bucket(Bucket=blobstore_bucket)
        server.client().create_bucket(Bucket=PUBLISH_BUCKET)
        yield server


def s3_params(s3: S3Server) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "S3_ENDPOINT": f"http://{s3.host}:{s3.port}",
    }


def bucket_keys(s3: S3Server, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def final_release(
    workspace: Path, source: Path, env: dict[str, str], release_candidate: TaskRun, s3: S3Server
) -> TaskRun:
    run = run_task(
        TASKS / "final-release.yml",
        fresh(workspace, "final-release"),
        {
            "source": source,
            "version": version_input(workspace, FINAL),
            "release-candidate": release_candidate.output("release-tarball"),
        },
        s3_params(s3),
        env,
    )
    assert_ok(run)
    return run


def test_final_release_uploads_records_and_ships_what_was_tested(
    final_release: TaskRun, release_candidate: TaskRun, s3: S3Server, blobstore_bucket: str
) -> None:
    tarball = final_release.output("final-release") / f"postgres-service-{FINAL}.tgz"
    assert sorted(p.name for p in final_release.output("final-release").iterdir()) == [tarball.name]
    final, tested = (
        release_mf(tarball),
        release_mf(release_candidate.output("release-tarball") / f"postgres-service-{CANDIDATE}.tgz"),
    )
    assert final["version"] == FINAL
    for kind in ("jobs", "packages"):
        assert [(i["name"], i["fingerprint"]) for i in final[kind]] == [
            (i["name"], i["fingerprint"]) for i in tested[kind]
        ]
    assert f"has the jobs and packages of the tested {CANDIDATE}" in final_release.stdout

    # The records are committed for the job to push; the blobstore's address is not.
    repo = final_release.output("source-final")
    assert git(repo, "log", "-1", "--format=%s").strip() == f"Final release postgres-service {FINAL}"
    assert git(repo, "status", "--porcelain") == ""
    committed = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert f"releases/postgres-service/postgres-service-{FINAL}.yml" in committed
    assert "config/private.yml" not in set(git(repo, "ls-files").split())

    # Every archive and blob the records name is in the blobstore, and nothing else.
    named = set()
    for index in (repo / ".final_builds").rglob("index.yml"):
        named.update(b["blobstore_id"] for b in yaml.safe_load(index.read_text())["builds"].values())
    pins = yaml.safe_load((repo / "config/blobs.yml").read_text())
    named.update(pin["object_id"] for pin in pins.values())
    assert len(named) == len(final["jobs"]) + len(final["packages"]) + len(pins) + (
        1 if "license" in final else 0
    )
    assert bucket_keys(s3, blobstore_bucket) == named
    assert SECRET_KEY not in final_release.stdout + final_release.stderr


def test_final_release_needs_a_final_version(
    workspace: Path, source: Path, env: dict[str, str], release_candidate: TaskRun, s3: S3Server
) -> None:
    run = run_task(
        TASKS / "final-release.yml",
        fresh(workspace, "final-release"),
        {
            "source": source,
            "version": version_input(workspace, CANDIDATE),
            "release-candidate": release_candidate.output("release-tarball"),
        },
        s3_params(s3),
        env,
    )
    assert_one_line_error(run, f"version/version holds '{CANDIDATE}'; a final release needs x.y.z")
    assert list(run.output("source-final").iterdir()) == []


@pytest.fixture(scope="module")
def final_tile(workspace: Path, source: Path, env: dict[str, str], final_release: TaskRun) -> Path:
    if has_make_target(source, "tile") and BPM_TARBALL:
        inputs = tile_inputs(workspace, source, FINAL, final_release.output("final-release"))
        run = run_task(TASKS / "build-tile.yml", fresh(workspace, "build-tile"), inputs, {}, env)
        assert_ok(run)
        return run.output("tile")
    # Without a complete tile (no tile builder, or no bpm tarball on this machine), publish is given a
    # zip of the right name: it uploads bytes and does not read them, so what it proves holds for a
    # real tile too.
    tile_dir = workspace / "inputs" / "final-tile"
    tile_dir.mkdir(parents=True)
    with zipfile.ZipFile(tile_dir / f"postgres-service-{FINAL}.pivotal", "w") as archive:
        archive.write(
            final_release.output("final-release") / f"postgres-service-{FINAL}.tgz", "releases/r.tgz"
        )
    return tile_dir


def test_publish_refuses_a_tile_without_bpm(
    tile_task_available: None, workspace: Path, source: Path, env: dict[str, str], final_release: TaskRun
) -> None:
    inputs = tile_inputs(workspace, source, FINAL, final_release.output("final-release"))
    inputs.pop("bpm-release", None)
    built = run_task(TASKS / "build-tile.yml", fresh(workspace, "build-tile"), inputs, {}, env)
    assert_ok(built)
    assert [p.name for p in built.output("tile").iterdir()] == [
        f"postgres-service-{FINAL}-without-bpm.pivotal"
    ]

    publish_inputs = {
        "source": source,
        "final-release": final_release.output("final-release"),
        "final-tile": built.output("tile"),
    }
    params = {
        "S3_BUCKET": PUBLISH_BUCKET,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    run = run_task(TASKS / "publish.yml", fresh(workspace, "publish"), publish_inputs, params, env)
    assert_one_line_error(
        run,
        f"final-tile/postgres-service-{FINAL}-without-bpm.pivotal lacks a release tarball Ops Manager needs",
    )


def test_publish_uploads_once_and_never_overwrites(
    workspace: Path, source: Path, env: dict[str, str], final_release: TaskRun, final_tile: Path, s3: S3Server
) -> None:
    inputs = {
        "source": source,
        "final-release": final_release.output("final-release"),
        "final-tile": final_tile,
    }
    params = s3_params(s3) | {"S3_BUCKET": PUBLISH_BUCKET}
    run = run_task(TASKS / "publish.yml", fresh(workspace, "publish"), inputs, params, env)
    assert_ok(run)

    client = s3.client()
    files = {
        f"postgres-service/postgres-service-{FINAL}.tgz": inputs["final-release"]
        / f"postgres-service-{FINAL}.tgz",
        f"postgres-service/postgres-service-{FINAL}.pivotal": final_tile
        / f"postgres-service-{FINAL}.pivotal",
    }
    assert bucket_keys(s3, PUBLISH_BUCKET) == set(files)
    for key, path in files.items():
        head = client.head_object(Bucket=PUBLISH_BUCKET, Key=key)
        assert head["Metadata"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert head["ContentLength"] == path.stat().st_size
    published = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("published ")]
    assert published == [f"s3://{PUBLISH_BUCKET}/{key}" for key in files]

    etags = {k: client.head_object(Bucket=PUBLISH_BUCKET, Key=k)["ETag"] for k in files}
    again = run_task(TASKS / "publish.yml", fresh(workspace, "publish"), inputs, params, env)
    assert_one_line_error(again, "already exists; a published version is never overwritten")
    assert {k: client.head_object(Bucket=PUBLISH_BUCKET, Key=k)["ETag"] for k in files} == etags
    assert SECRET_KEY not in run.stdout + run.stderr + again.stdout + again.stderr
