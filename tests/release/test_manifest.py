"""release.MF: the fields, order and values `bosh create-release` writes, and the tarball's exact members."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import yaml

from tests.release.conftest import SyntheticRelease, write


def _members(path: Path) -> list[str]:
    with tarfile.open(path, "r:gz") as tar:
        return tar.getnames()


def _read(path: Path, member: str) -> bytes:
    with tarfile.open(path, "r:gz") as tar:
        extracted = tar.extractfile(member)
        assert extracted is not None
        return extracted.read()


def test_release_mf_has_the_clis_fields_in_order(release: SyntheticRelease) -> None:
    built = release.build()
    manifest = yaml.safe_load(_read(built.tarball, "release.MF"))

    assert list(manifest) == [
        "name", "version", "commit_hash", "uncommitted_changes", "jobs", "packages", "no_compression",
    ]  # fmt: skip
    assert manifest["name"] == "demo"
    assert manifest["version"] == "2.3.4+dev.1"  # __version__ plus the first dev suffix
    assert manifest["commit_hash"] == "non-git"  # the CLI's value outside a git work tree
    assert manifest["uncommitted_changes"] is False
    assert [j["name"] for j in manifest["jobs"]] == ["web"]
    assert [p["name"] for p in manifest["packages"]] == ["app", "runtime"]  # sorted by name
    job = manifest["jobs"][0]
    assert list(job) == ["name", "version", "fingerprint", "sha1", "packages"]
    assert job["packages"] == ["app", "runtime"]
    app = manifest["packages"][0]
    assert list(app) == ["name", "version", "fingerprint", "sha1", "dependencies"]
    assert app["dependencies"] == ["runtime"]
    assert manifest["packages"][1]["dependencies"] == []
    for entry in [*manifest["jobs"], *manifest["packages"]]:
        assert entry["version"] == entry["fingerprint"]
        assert len(entry["fingerprint"]) == 64
        kind = "jobs" if entry in manifest["jobs"] else "packages"
        inner = _read(built.tarball, f"{kind}/{entry['name']}.tgz")
        assert entry["sha1"] == "sha256:" + hashlib.sha256(inner).hexdigest()


def test_tarball_holds_exactly_manifest_jobs_and_packages(release: SyntheticRelease) -> None:
    built = release.build()
    assert built.tarball == release.root / "build/demo-2.3.4+dev.1.tgz"
    assert _members(built.tarball) == [
        "release.MF", "jobs", "jobs/web.tgz", "packages", "packages/app.tgz", "packages/runtime.tgz",
    ]  # fmt: skip


def test_job_and_package_archives_have_the_clis_layout(release: SyntheticRelease, tmp_path: Path) -> None:
    built = release.build()
    with tarfile.open(built.tarball, "r:gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    job = tmp_path / "x/jobs/web.tgz"
    assert _members(job) == [
        ".", "./job.MF", "./monit", "./templates", "./templates/config.yml.erb", "./templates/ctl.erb",
    ]  # fmt: skip
    assert _read(job, "./job.MF") == (release.root / "jobs/web/spec").read_bytes()
    with tarfile.open(job, "r:gz") as tar:
        assert tar.getmember("./templates/ctl.erb").mode == 0o755
        assert tar.getmember("./templates/config.yml.erb").mode == 0o644
    app = tmp_path / "x/packages/app.tgz"
    assert _members(app) == [
        ".", "./app", "./app/bin", "./app/bin/run", "./app/lib", "./app/lib/util.py", "./app/main.py",
        "./packaging",
    ]  # fmt: skip
    runtime = tmp_path / "x/packages/runtime.tgz"
    assert _members(runtime) == [".", "./packaging", "./runtime", "./runtime/runtime-1.0.tar.gz"]
    assert _read(runtime, "./runtime/runtime-1.0.tar.gz") == SyntheticRelease.BLOB


def test_version_override_and_license(release: SyntheticRelease) -> None:
    write(release.root / "LICENSE", "Apache-2.0\n")
    write(release.root / "NOTICE", "Copyright\n")
    built = release.build(version="9.9.9-rc.1")
    manifest = yaml.safe_load(_read(built.tarball, "release.MF"))
    assert manifest["version"] == "9.9.9-rc.1"
    assert list(manifest["license"]) == ["version", "fingerprint", "sha1"]
    assert (
        manifest["license"]["sha1"]
        == "sha256:" + hashlib.sha256(_read(built.tarball, "license.tgz")).hexdigest()
    )
    assert _members(built.tarball)[-3:] == ["license.tgz", "LICENSE", "NOTICE"]
    assert _read(built.tarball, "LICENSE") == b"Apache-2.0\n"


def test_dev_releases_are_recorded_like_the_cli(release: SyntheticRelease) -> None:
    release.build()
    index = yaml.safe_load((release.root / "dev_releases/demo/index.yml").read_text())
    assert index["format-version"] == "2"
    assert [b["version"] for b in index["builds"].values()] == ["2.3.4+dev.1"]
    recorded = yaml.safe_load((release.root / "dev_releases/demo/demo-2.3.4+dev.1.yml").read_text())
    assert recorded["version"] == "2.3.4+dev.1"
