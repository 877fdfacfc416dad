"""Final releases: .final_builds/ and releases/ as the CLI lays them out, archives and blobs uploaded to S3.

The blobstore is a real S3-compatible server (moto's server mode) on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import yaml

from scripts.release import ReleaseError
from tests.release.conftest import SyntheticRelease, write
from tests.release.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, running_s3_server

BUCKET = "demo-release-blobs"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    with running_s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
def final_release(release: SyntheticRelease, s3: S3Server) -> SyntheticRelease:
    write(
        release.root / "config/final.yml",
        "name: demo\nblobstore:\n  provider: s3\n  options:\n"
        f"    bucket_name: {BUCKET}\n    host: {s3.host}\n    port: {s3.port}\n    use_ssl: false\n"
        "    folder: release\n",
    )
    return release


def _object_sha(s3: S3Server, object_id: str) -> str:
    body = s3.client().get_object(Bucket=BUCKET, Key=f"release/{object_id}")["Body"].read()
    return hashlib.sha256(body).hexdigest()


def _keys(s3: S3Server) -> set[str]:
    listing = s3.client().list_objects_v2(Bucket=BUCKET)
    return {o["Key"] for o in listing.get("Contents", [])}


def test_final_release_layout_and_uploads(final_release: SyntheticRelease, s3: S3Server) -> None:
    lines: list[str] = []
    from scripts.release.create import CreateOptions, create_release

    built = create_release(CreateOptions(root=final_release.root, final=True), log=lines.append)
    root = final_release.root
    assert built.version == "2.3.4"

    for kind, name in [("jobs", "web"), ("packages", "app"), ("packages", "runtime")]:
        index = yaml.safe_load((root / f".final_builds/{kind}/{name}/index.yml").read_text())
        assert index["format-version"] == "2"
        entry = next(e for e in built.manifest[kind] if e["name"] == name)
        assert index["builds"] == {
            entry["fingerprint"]: {
                "version": entry["fingerprint"],
                "blobstore_id": index["builds"][entry["fingerprint"]]["blobstore_id"],
                "sha1": entry["sha1"],
            }
        }
        object_id = index["builds"][entry["fingerprint"]]["blobstore_id"]
        assert "sha256:" + _object_sha(s3, object_id) == entry["sha1"]

    releases = yaml.safe_load((root / "releases/demo/index.yml").read_text())
    assert releases["format-version"] == "2"
    assert [b["version"] for b in releases["builds"].values()] == ["2.3.4"]
    assert yaml.safe_load((root / "releases/demo/demo-2.3.4.yml").read_text()) == built.manifest

    pins = yaml.safe_load((root / "config/blobs.yml").read_text())
    blob = pins["runtime/runtime-1.0.tar.gz"]
    assert _object_sha(s3, blob["object_id"]) == hashlib.sha256(SyntheticRelease.BLOB).hexdigest()
    assert "sha256:" + _object_sha(s3, blob["object_id"]) == blob["sha"]
    assert len(_keys(s3)) == 4  # one job, two packages, one blob

    assert not any(SECRET_KEY in line or ACCESS_KEY in line for line in lines)


def test_next_final_release_uploads_only_what_changed(final_release: SyntheticRelease, s3: S3Server) -> None:
    first = final_release.build(final=True)
    write(final_release.root / "src/app/main.py", "print('v2')\n")
    second = final_release.build(final=True, version="2.3.5")

    assert len(_keys(s3)) == 5  # only the app package is new
    old = {p["name"]: p for p in first.manifest["packages"]}
    new = {p["name"]: p for p in second.manifest["packages"]}
    assert new["runtime"] == old["runtime"]
    assert new["app"]["fingerprint"] != old["app"]["fingerprint"]
    app_index = yaml.safe_load((final_release.root / ".final_builds/packages/app/index.yml").read_text())
    assert len(app_index["builds"]) == 2
    versions = yaml.safe_load((final_release.root / "releases/demo/index.yml").read_text())
    assert sorted(b["version"] for b in versions["builds"].values()) == ["2.3.4", "2.3.5"]


def test_published_archive_is_reused_when_ours_differs(final_release: SyntheticRelease, s3: S3Server) -> None:
    first = final_release.build(final=True)
    # Pretend the published archive was made by another builder: same fingerprint, other bytes.
    index_path = final_release.root / ".final_builds/packages/runtime/index.yml"
    index = yaml.safe_load(index_path.read_text())
    ((fp, entry),) = index["builds"].items()
    other = b"an archive of the same files made elsewhere"
    object_id = "0f0e0d0c-0000-4000-8000-000000000001"
    s3.client().put_object(Bucket=BUCKET, Key=f"release/{object_id}", Body=other)
    entry.update(blobstore_id=object_id, sha1="sha256:" + hashlib.sha256(other).hexdigest())
    index_path.write_text(yaml.safe_dump(index))

    second = final_release.build(final=True, version="2.3.5", cache=final_release.root / "fresh-cache")
    runtime = next(p for p in second.manifest["packages"] if p["name"] == "runtime")
    assert runtime["fingerprint"] == fp
    assert runtime["sha1"] == entry["sha1"]
    assert second.archives[("packages", "runtime")].read_bytes() == other
    assert first.version == "2.3.4"


def test_refuses_an_existing_version_and_credentials_in_final_yml(final_release: SyntheticRelease) -> None:
    final_release.build(final=True)
    with pytest.raises(ReleaseError, match=r"version '2\.3\.4' already exists"):
        final_release.build(final=True)
    final_yml = final_release.root / "config/final.yml"
    write(final_yml, final_yml.read_text() + f"    secret_access_key: {SECRET_KEY}\n")
    with pytest.raises(ReleaseError) as info:
        final_release.build(final=True, version="3.0.0")
    assert "move them to config/private.yml" in str(info.value)
    assert SECRET_KEY not in str(info.value)
