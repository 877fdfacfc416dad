"""The final-release blobstore: S3 (or an S3-compatible server) named in config/final.yml.

Options follow the BOSH CLI's S3 blobstore: ``bucket_name`` (required),
``region``, ``host``, ``port``, ``use_ssl``, ``ssl_verify_peer``, ``folder``,
``access_key_id``, ``secret_access_key``. Credentials belong in
config/private.yml (git-ignored) or the environment (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, or any source boto3 reads), never in final.yml, and
are never logged. Objects are named by a random id, as the CLI names them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.release import yamlio
from scripts.release.errors import ReleaseError
from scripts.release.fingerprint import sha256_file

SECRET_KEYS = ("access_key_id", "secret_access_key", "session_token")


def blobstore_options(root: Path) -> dict[str, Any]:
    public = yamlio.read(root / "config" / "final.yml") or {}
    private = yamlio.read(root / "config" / "private.yml") or {}
    store = public.get("blobstore") or {}
    if store.get("provider") != "s3":
        raise ReleaseError("config/final.yml: blobstore.provider must be 's3' for final releases")
    options: dict[str, Any] = dict(store.get("options") or {})
    leaked = [k for k in SECRET_KEYS if k in options]
    if leaked:
        raise ReleaseError(
            "config/final.yml holds blobstore credentials (" + ", ".join(leaked) + "); "
            "move them to config/private.yml or the environment"
        )
    options.update((private.get("blobstore") or {}).get("options") or {})
    if not options.get("bucket_name"):
        raise ReleaseError("config/final.yml: blobstore.options.bucket_name is required")
    return options


@dataclass
class S3Blobstore:
    bucket: str
    folder: str
    client: Any

    @classmethod
    def from_release_dir(cls, root: Path) -> S3Blobstore:
        import boto3  # imported here: dev releases must build without boto3 installed
        from botocore.config import Config

        options = blobstore_options(root)
        use_ssl = bool(options.get("use_ssl", True))
        endpoint = None
        if options.get("host"):
            scheme = "https" if use_ssl else "http"
            port = f":{options['port']}" if options.get("port") else ""
            endpoint = f"{scheme}://{options['host']}{port}"
        client = boto3.client(
            "s3",
            region_name=options.get("region") or "us-east-1",
            endpoint_url=endpoint,
            use_ssl=use_ssl,
            verify=bool(options.get("ssl_verify_peer", True)),
            aws_access_key_id=options.get("access_key_id"),
            aws_secret_access_key=options.get("secret_access_key"),
            aws_session_token=options.get("session_token"),
            config=Config(
                s3={"addressing_style": "path" if endpoint else "auto"},
                retries={"max_attempts": 3},
            ),
        )
        return cls(bucket=str(options["bucket_name"]), folder=str(options.get("folder") or ""), client=client)

    def key(self, object_id: str) -> str:
        return f"{self.folder.strip('/')}/{object_id}" if self.folder else object_id

    def upload(self, path: Path, sha256: str) -> str:
        """Upload a file under a new random id and return that id."""
        object_id = str(uuid.uuid4())
        try:
            self.client.upload_file(
                str(path), self.bucket, self.key(object_id), ExtraArgs={"Metadata": {"sha256": sha256}}
            )
        except Exception as exc:  # botocore raises many types; the message says which
            raise ReleaseError(f"uploading {path.name} to bucket '{self.bucket}' failed: {exc}") from exc
        return object_id

    def download(self, object_id: str, dest: Path, sha256: str) -> None:
        """Fetch an object and refuse it unless its content has the expected digest."""
        partial = dest.with_name(dest.name + ".partial")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self.key(object_id), str(partial))
        except Exception as exc:
            raise ReleaseError(
                f"downloading object {object_id} from bucket '{self.bucket}' failed: {exc}"
            ) from exc
        actual = sha256_file(partial)
        if actual != sha256:
            partial.unlink()
            raise ReleaseError(
                f"object {object_id} has sha256:{actual}, expected sha256:{sha256}; removed it"
            )
        partial.replace(dest)
