"""`python -m scripts.publish` as CI runs it: settings from the environment, one-line errors, exit status."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.publish.conftest import BUCKET, keys
from tests.release.s3_server import ACCESS_KEY, SECRET_KEY, S3Server

REPO = Path(__file__).resolve().parents[2]


def _env(s3: S3Server | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    if s3 is not None:
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            S3_ENDPOINT=f"http://{s3.host}:{s3.port}",
            S3_BUCKET=BUCKET,
        )
    env.update(extra)
    return env


def _publish(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.publish", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert text in result.stderr
    assert SECRET_KEY not in result.stderr + result.stdout


def test_publishes_in_parts_with_the_prefix(s3: S3Server, tmp_path: Path) -> None:
    tarball = tmp_path / "postgres-service-1.2.0.tgz"
    tarball.write_bytes(os.urandom(6 * 1024 * 1024))
    result = _publish(
        _env(s3),
        "--prefix",
        "releases/",
        "--multipart-threshold",
        str(5 * 1024 * 1024),
        "--chunk-size",
        str(5 * 1024 * 1024),
        str(tarball),
    )
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert result.stdout == (
        f"published s3://{BUCKET}/releases/postgres-service-1.2.0.tgz "
        f"({6 * 1024 * 1024} bytes in 2 parts, sha256 {digest})\n"
    )
    head = s3.client().head_object(Bucket=BUCKET, Key="releases/postgres-service-1.2.0.tgz")
    assert head["Metadata"]["sha256"] == digest
    assert SECRET_KEY not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("AWS_SECRET_ACCESS_KEY", "no S3 credentials: set AWS_SECRET_ACCESS_KEY in the environment"),
        ("AWS_ACCESS_KEY_ID", "no S3 credentials: set AWS_ACCESS_KEY_ID in the environment"),
        ("S3_BUCKET", "no bucket: pass --bucket or set S3_BUCKET"),
    ],
)
def test_missing_settings(s3: S3Server, tmp_path: Path, drop: str, message: str) -> None:
    tile = tmp_path / "t.pivotal"
    tile.write_bytes(b"tile")
    env = _env(s3)
    del env[drop]
    _assert_one_line_error(_publish(env, str(tile)), message)
    assert keys(s3) == []


def test_missing_bucket_and_bad_endpoint(s3: S3Server, tmp_path: Path) -> None:
    tile = tmp_path / "t.pivotal"
    tile.write_bytes(b"tile")
    _assert_one_line_error(
        _publish(_env(s3), "--bucket", "nowhere", str(tile)), "bucket 'nowhere' does not exist"
    )
    _assert_one_line_error(
        _publish(_env(s3, S3_ENDPOINT=f"http://user:{SECRET_KEY}@127.0.0.1:1"), str(tile)),
        "S3_ENDPOINT must not carry credentials",
    )
    assert keys(s3) == []


def test_existing_version_exits_non_zero_and_keeps_the_object(s3: S3Server, tmp_path: Path) -> None:
    tile = tmp_path / "postgres-service-1.2.0.pivotal"
    tile.write_bytes(b"first")
    assert _publish(_env(s3), str(tile)).returncode == 0
    tile.write_bytes(b"second")
    _assert_one_line_error(
        _publish(_env(s3), str(tile)), f"s3://{BUCKET}/postgres-service-1.2.0.pivotal already exists"
    )
    body = s3.client().get_object(Bucket=BUCKET, Key=tile.name)["Body"].read()
    assert body == b"first"


def test_empty_credentials_count_as_missing(s3: S3Server, tmp_path: Path) -> None:
    tile = tmp_path / "t.pivotal"
    tile.write_bytes(b"tile")
    result = _publish(_env(s3, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY=""), str(tile))
    _assert_one_line_error(result, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
