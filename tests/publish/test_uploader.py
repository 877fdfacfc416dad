"""publish_files against a real S3-compatible server: parts, digests, no overwrite, nothing half-written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import MB, TransferConfig
from botocore.exceptions import ConnectionClosedError

from scripts.publish import PublishError, publish_files
from tests.publish.conftest import BUCKET, keys, pending_uploads
from tests.release.s3_server import S3Server

SMALL_PARTS = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB, max_concurrency=2)


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _fail_on_call(client: Any, operation: str, nth: int) -> list[int]:
    """Make the nth request of `operation` fail as a dropped connection would (a botocore event hook)."""
    calls: list[int] = []

    def hook(**_kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == nth:
            raise ConnectionClosedError(endpoint_url="injected-failure")

    client.meta.events.register(f"before-call.s3.{operation}", hook)
    return calls


def test_small_file_is_one_put_with_its_sha256(s3: S3Server, tmp_path: Path) -> None:
    tile = _file(tmp_path / "postgres-service-1.0.0.pivotal", 300_000)
    lines: list[str] = []
    (done,) = publish_files(s3.client(), BUCKET, [(tile, "tiles/" + tile.name)], SMALL_PARTS, lines.append)

    head = s3.client().head_object(Bucket=BUCKET, Key="tiles/postgres-service-1.0.0.pivotal")
    expected = hashlib.sha256(tile.read_bytes()).hexdigest()
    assert head["Metadata"]["sha256"] == expected == done.sha256
    assert head["ContentLength"] == 300_000
    assert done.parts == 0
    assert "-" not in head["ETag"]  # a single PUT's ETag has no part count
    assert lines == [
        f"published s3://{BUCKET}/tiles/{tile.name} (300000 bytes in one request, sha256 {expected})"
    ]


def test_large_file_goes_in_parts(s3: S3Server, tmp_path: Path) -> None:
    tarball = _file(tmp_path / "postgres-service-1.0.0.tgz", 11 * MB)
    (done,) = publish_files(s3.client(), BUCKET, [(tarball, tarball.name)], SMALL_PARTS, lambda _: None)

    client = s3.client()
    head = client.head_object(Bucket=BUCKET, Key=tarball.name)
    assert done.parts == 3
    assert head["ETag"].strip('"').endswith("-3")  # S3 names the part count of a multipart object
    assert head["Metadata"]["sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert client.get_object(Bucket=BUCKET, Key=tarball.name)["Body"].read() == tarball.read_bytes()
    assert pending_uploads(s3) == []


def test_failure_mid_upload_leaves_nothing(s3: S3Server, tmp_path: Path) -> None:
    tarball = _file(tmp_path / "postgres-service-1.0.0.tgz", 16 * MB)
    client = s3.client()
    calls = _fail_on_call(client, "UploadPart", nth=2)
    sequential = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB, max_concurrency=1)

    with pytest.raises(PublishError, match=r"^uploading postgres-service-1\.0\.0\.tgz to s3://.* failed"):
        publish_files(client, BUCKET, [(tarball, tarball.name)], sequential, lambda _: None)

    assert len(calls) >= 2  # the upload was under way when it failed
    assert keys(s3) == []
    assert pending_uploads(s3) == []  # the parts already sent were dropped too


def test_an_existing_version_is_refused_before_anything_is_sent(s3: S3Server, tmp_path: Path) -> None:
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="rel/postgres-service-1.0.0.pivotal", Body=b"published earlier")
    tarball = _file(tmp_path / "postgres-service-1.0.0.tgz", 1000)
    tile = _file(tmp_path / "postgres-service-1.0.0.pivotal", 1000)

    with pytest.raises(PublishError) as info:
        publish_files(
            client, BUCKET, [(tarball, "rel/" + tarball.name), (tile, "rel/" + tile.name)], SMALL_PARTS
        )

    assert str(info.value) == (
        f"s3://{BUCKET}/rel/postgres-service-1.0.0.pivotal already exists; "
        "a published version is never overwritten"
    )
    assert keys(s3) == ["rel/postgres-service-1.0.0.pivotal"]  # the tarball was not sent either
    body = client.get_object(Bucket=BUCKET, Key="rel/postgres-service-1.0.0.pivotal")["Body"].read()
    assert body == b"published earlier"


@pytest.mark.parametrize(("size", "operation"), [(1000, "PutObject"), (11 * MB, "CompleteMultipartUpload")])
def test_a_key_taken_during_the_upload_is_not_overwritten(
    s3: S3Server, tmp_path: Path, size: int, operation: str
) -> None:
    """Another publisher takes the key after our check: the conditional write refuses to replace it."""
    client = s3.client()
    rival = s3.client()

    def rival_publishes(**_kwargs: Any) -> None:
        rival.put_object(Bucket=BUCKET, Key="postgres-service-2.0.0.tgz", Body=b"the rival's bytes")

    client.meta.events.register(f"before-call.s3.{operation}", rival_publishes)
    tarball = _file(tmp_path / "postgres-service-2.0.0.tgz", size)

    with pytest.raises(PublishError, match="already exists; a published version is never overwritten"):
        publish_files(client, BUCKET, [(tarball, tarball.name)], SMALL_PARTS, lambda _: None)

    body = rival.get_object(Bucket=BUCKET, Key="postgres-service-2.0.0.tgz")["Body"].read()
    assert body == b"the rival's bytes"
    assert pending_uploads(s3) == []


def test_missing_bucket_and_missing_file_are_named(s3: S3Server, tmp_path: Path) -> None:
    tile = _file(tmp_path / "t.pivotal", 10)
    with pytest.raises(PublishError, match=r"^bucket 'no-such-bucket' does not exist"):
        publish_files(s3.client(), "no-such-bucket", [(tile, "t.pivotal")], SMALL_PARTS)
    with pytest.raises(PublishError, match=r"absent\.tgz is not a file$"):
        publish_files(s3.client(), BUCKET, [(tmp_path / "absent.tgz", "a.tgz")], SMALL_PARTS)
    with pytest.raises(PublishError, match="same key 'x'"):
        publish_files(s3.client(), BUCKET, [(tile, "x"), (tile, "x")], SMALL_PARTS)
    with pytest.raises(PublishError, match="below S3's minimum part size"):
        publish_files(s3.client(), BUCKET, [(tile, "x")], TransferConfig(multipart_chunksize=MB))
    assert keys(s3) == []
