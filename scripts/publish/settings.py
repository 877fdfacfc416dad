"""Where to publish, read from the environment the way CI passes it (credentials never on a command line).

- ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (required)
- ``AWS_REGION`` or ``AWS_DEFAULT_REGION`` (default ``us-east-1``)
- ``S3_ENDPOINT``: the URL of an S3-compatible server (e.g. ``http://127.0.0.1:9000``); unset for AWS S3
- ``S3_BUCKET``: the bucket, unless given with ``--bucket``
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from scripts.publish.errors import PublishError

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    region: str
    endpoint: str | None
    # Kept out of repr so that printing the settings can never show a credential.
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                # S3-compatible servers rarely resolve bucket subdomains; AWS does both.
                s3={"addressing_style": "path" if self.endpoint else "auto"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )


def settings_from_env(env: Mapping[str, str], bucket: str | None = None) -> S3Settings:
    """Read the settings; a missing or malformed one is a PublishError naming the variable."""
    key_id = env.get("AWS_ACCESS_KEY_ID", "").strip()
    secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
    missing = [
        name
        for name, value in [("AWS_ACCESS_KEY_ID", key_id), ("AWS_SECRET_ACCESS_KEY", secret)]
        if not value
    ]
    if missing:
        raise PublishError("no S3 credentials: set " + " and ".join(missing) + " in the environment")
    bucket = (bucket or env.get("S3_BUCKET", "")).strip()
    if not bucket:
        raise PublishError("no bucket: pass --bucket or set S3_BUCKET")
    endpoint = env.get("S3_ENDPOINT", "").strip() or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PublishError(f"S3_ENDPOINT '{endpoint}' is not an http:// or https:// URL")
        if parts.username or parts.password:
            raise PublishError("S3_ENDPOINT must not carry credentials; use AWS_ACCESS_KEY_ID and friends")
    region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION).strip()
    return S3Settings(
        bucket=bucket,
        region=region,
        endpoint=endpoint,
        access_key_id=key_id,
        secret_access_key=secret,
    )
