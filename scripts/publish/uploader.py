"""Upload files to S3 so that a published version is written once, whole, and never replaced.

Why it is safe to re-run and to interrupt:

- Every key is checked before anything is sent, so publishing several files
  either finds them all free or writes none of them.
- Each object is written with a conditional put (``If-None-Match: *``): should
  another publisher take the key between the check and the write, S3 refuses
  ours instead of overwriting theirs.
- Small files go in one PUT; large ones (``TransferConfig.multipart_threshold``
  and up) in a multipart upload. S3 makes neither visible before it is whole: a
  multipart object appears only when the upload is completed, and on any
  failure the upload is aborted, so its parts do not linger either.
- The object carries the file's sha256 in its metadata (``x-amz-meta-sha256``),
  for consumers to check what they download.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import MB, TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from scripts.publish.errors import PublishError

# S3 refuses multipart parts below 5 MiB (except the last one).
MIN_PART_SIZE = 5 * MB
DEFAULT_TRANSFER = TransferConfig(multipart_threshold=64 * MB, multipart_chunksize=16 * MB, max_concurrency=4)

Log = Callable[[str], None]


@dataclass(frozen=True)
class PublishedObject:
    bucket: str
    key: str
    size: int
    sha256: str
    parts: int  # 0 for a single PUT


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    # botocore's messages name the operation and S3's error code, never the credentials.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def check_bucket(client: Any, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = _error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise PublishError(f"bucket '{bucket}' does not exist; create it or set another bucket") from None
        if code in ("403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise PublishError(f"access to bucket '{bucket}' denied: check the S3 credentials") from None
        raise PublishError(f"bucket '{bucket}': {_describe(exc)}") from None
    except BotoCoreError as exc:
        raise PublishError(f"bucket '{bucket}': {_describe(exc)}") from None


def object_exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise PublishError(f"checking s3://{bucket}/{key}: {_describe(exc)}") from None
    return True


def _already_published(bucket: str, key: str) -> PublishError:
    return PublishError(f"s3://{bucket}/{key} already exists; a published version is never overwritten")


def _put_whole(client: Any, bucket: str, key: str, path: Path, sha256: str, size: int) -> None:
    with path.open("rb") as body:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentLength=size,
            Metadata={"sha256": sha256},
            IfNoneMatch="*",
        )


def _put_multipart(
    client: Any, bucket: str, key: str, path: Path, sha256: str, size: int, config: TransferConfig
) -> int:
    chunk = int(config.multipart_chunksize)
    offsets = list(range(0, size, chunk))
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata={"sha256": sha256})[
        "UploadId"
    ]

    def send(number: int, offset: int) -> dict[str, Any]:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(chunk)
        reply = client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": reply["ETag"]}

    try:
        with ThreadPoolExecutor(max_workers=max(1, int(config.max_concurrency))) as pool:
            parts = list(pool.map(send, range(1, len(offsets) + 1), offsets))
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
        )
    except BaseException:
        # Nothing became visible yet; drop the parts so the bucket keeps no trace of this attempt.
        # A failing abort is ignored: the upload's own error, raised next, says more.
        with contextlib.suppress(ClientError, BotoCoreError):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return len(parts)


def publish_file(
    client: Any, bucket: str, key: str, path: Path, config: TransferConfig = DEFAULT_TRANSFER
) -> PublishedObject:
    """Upload one file under a key that must not exist yet."""
    before = path.stat()
    sha256 = sha256_file(path)
    size = before.st_size
    try:
        if size >= config.multipart_threshold:
            parts = _put_multipart(client, bucket, key, path, sha256, size, config)
        else:
            _put_whole(client, bucket, key, path, sha256, size)
            parts = 0
    except ClientError as exc:
        if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise _already_published(bucket, key) from None
        raise PublishError(f"uploading {path.name} to s3://{bucket}/{key} failed: {_describe(exc)}") from None
    except BotoCoreError as exc:
        raise PublishError(f"uploading {path.name} to s3://{bucket}/{key} failed: {_describe(exc)}") from None
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        # Too late to abort: say so loudly rather than leave a wrong digest unnoticed.
        raise PublishError(f"{path} changed while it was uploaded to s3://{bucket}/{key}; delete that object")
    return PublishedObject(bucket=bucket, key=key, size=size, sha256=sha256, parts=parts)


def check_config(config: TransferConfig) -> None:
    if config.multipart_chunksize < MIN_PART_SIZE:
        raise PublishError(
            f"multipart chunk size {config.multipart_chunksize} is below S3's minimum part size "
            f"{MIN_PART_SIZE}"
        )
    if config.multipart_threshold < 1:
        raise PublishError(f"multipart threshold {config.multipart_threshold} must be at least 1 byte")


def publish_files(
    client: Any,
    bucket: str,
    uploads: Sequence[tuple[Path, str]],
    config: TransferConfig = DEFAULT_TRANSFER,
    log: Log = print,
) -> list[PublishedObject]:
    """Publish (file, key) pairs: all keys are checked free before the first byte is sent."""
    check_config(config)
    keys = [key for _, key in uploads]
    duplicate = next((k for k in keys if keys.count(k) > 1), None)
    if duplicate is not None:
        raise PublishError(f"two files would be published as the same key '{duplicate}'")
    for path, _ in uploads:
        if not path.is_file():
            raise PublishError(f"{path} is not a file")
    check_bucket(client, bucket)
    taken = next((key for _, key in uploads if object_exists(client, bucket, key)), None)
    if taken is not None:
        raise _already_published(bucket, taken)
    published = []
    for path, key in uploads:
        done = publish_file(client, bucket, key, path, config)
        how = f"{done.parts} part{'s' if done.parts > 1 else ''}" if done.parts else "one request"
        log(f"published s3://{bucket}/{key} ({done.size} bytes in {how}, sha256 {done.sha256})")
        published.append(done)
    return published
