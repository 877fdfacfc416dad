"""A real S3-compatible server (moto's server mode) with one empty bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.release.s3_server import S3Server, running_s3_server

BUCKET = "postgres-service-published"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    yield s3_server
    # Empty and drop the bucket so the next test starts from nothing.
    for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(server: S3Server, bucket: str = BUCKET) -> list[str]:
    return sorted(o["Key"] for o in server.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def pending_uploads(server: S3Server, bucket: str = BUCKET) -> list[str]:
    return [u["Key"] for u in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
