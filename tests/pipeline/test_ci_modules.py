"""The small modules the task scripts call: same_release (ship what was tested) and private_blobstore."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.ci.private_blobstore import endpoint_options
from scripts.ci.same_release import differences
from tests.pipeline.repo_input import REPO


def manifest(version: str, **fingerprints: str) -> dict[str, Any]:
    return {
        "name": "postgres-service",
        "version": version,
        "jobs": [{"name": "postgres", "fingerprint": fingerprints.get("postgres", "aaa")}],
        "packages": [
            {"name": name, "fingerprint": fp} for name, fp in fingerprints.items() if name != "postgres"
        ],
    }


def tarball(path: Path, content: dict[str, Any]) -> Path:
    data = yaml.safe_dump(content).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("./release.MF")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_differences_name_each_changed_missing_or_new_item() -> None:
    tested = manifest("1.0.0-rc.1", postgres="aaa", python3="bbb", broker="ccc")
    final = manifest("1.0.0", postgres="aaa", python3="bbb2", monitor="ddd")
    assert differences(tested, final) == [
        "package broker was tested but is not in the final release",
        "package monitor is in the final release but was not tested",
        "package python3 differs: tested bbb, final bbb2",
    ]
    assert differences(tested, manifest("1.0.0", postgres="aaa", python3="bbb", broker="ccc")) == []


def test_same_release_command(tmp_path: Path) -> None:
    tested = tarball(tmp_path / "rc.tgz", manifest("1.0.0-rc.1", postgres="aaa", python3="bbb"))
    same = tarball(tmp_path / "same.tgz", manifest("1.0.0", postgres="aaa", python3="bbb"))
    other = tarball(tmp_path / "other.tgz", manifest("1.0.0", postgres="zzz", python3="bbb"))
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")

    def run(*args: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "scripts.ci.same_release", *map(str, args)]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)

    ok = run(tested, same)
    assert ok.returncode == 0
    assert (
        ok.stdout
        == "final release postgres-service/1.0.0 has the jobs and packages of the tested 1.0.0-rc.1\n"
    )
    bad = run(tested, other)
    assert (bad.returncode, bad.stderr) == (1, "error: job postgres differs: tested aaa, final zzz\n")
    junk = run(tested, tmp_path / "junk.tgz")
    assert junk.returncode == 1
    assert junk.stderr.startswith(f"error: {tmp_path / 'junk.tgz'} cannot be read as a release tarball")


def test_endpoint_options() -> None:
    assert endpoint_options("http://127.0.0.1:9000") == {"host": "127.0.0.1", "use_ssl": False, "port": 9000}
    assert endpoint_options("https://s3.example.com") == {"host": "s3.example.com", "use_ssl": True}
    with pytest.raises(ValueError, match="not an http:// or https:// URL"):
        endpoint_options("s3.example.com")
    with pytest.raises(ValueError, match="must not carry credentials"):
        endpoint_options("https://key:secret@s3.example.com")


def test_private_blobstore_writes_the_address_only_once(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    command = [sys.executable, "-m", "scripts.ci.private_blobstore", "http://127.0.0.1:9000", str(tmp_path)]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    written = yaml.safe_load((tmp_path / "config/private.yml").read_text())
    assert written == {"blobstore": {"options": {"host": "127.0.0.1", "port": 9000, "use_ssl": False}}}
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert second.returncode == 1
    assert "exists already; not replacing it" in second.stderr
