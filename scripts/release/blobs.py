"""config/blobs.yml: each blob pinned by size and SHA-256, in the BOSH CLI's format.

    postgres/postgresql-15_15.20.orig.tar.bz2:
      size: 23930664
      object_id: 3f0e...   # only once uploaded to the final blobstore
      sha: sha256:30e6...

Blobs themselves live in blobs/ (git-ignored) at those paths.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from scripts.release import yamlio
from scripts.release.errors import ReleaseError
from scripts.release.fingerprint import sha256_file

BLOBS_YML = Path("config/blobs.yml")


@dataclass(frozen=True)
class BlobPin:
    path: str
    size: int
    sha256: str
    object_id: str | None = None

    def with_object_id(self, object_id: str) -> BlobPin:
        return replace(self, object_id=object_id)


def load_pins(root: Path) -> dict[str, BlobPin]:
    data = yamlio.read(root / BLOBS_YML) or {}
    pins: dict[str, BlobPin] = {}
    for path, entry in data.items():
        sha = str(entry.get("sha", ""))
        if not sha.startswith("sha256:") or len(sha) != len("sha256:") + 64:
            raise ReleaseError(f"{BLOBS_YML}: blob {path} must be pinned as 'sha: sha256:<64 hex digits>'")
        pins[str(path)] = BlobPin(
            path=str(path),
            size=int(entry["size"]),
            sha256=sha.removeprefix("sha256:"),
            object_id=entry.get("object_id") or None,
        )
    return pins


def save_pins(root: Path, pins: dict[str, BlobPin]) -> None:
    data: dict[str, dict[str, object]] = {}
    for path in sorted(pins):
        pin = pins[path]
        entry: dict[str, object] = {"size": pin.size}
        if pin.object_id:
            entry["object_id"] = pin.object_id
        entry["sha"] = "sha256:" + pin.sha256
        data[path] = entry
    yamlio.write(root / BLOBS_YML, data)


def verify(path: Path, pin: BlobPin) -> str | None:
    """None when the file matches its pin, else what is wrong with it (for a message)."""
    size = path.stat().st_size
    if size != pin.size:
        return f"has {size} bytes, but config/blobs.yml pins {pin.size}"
    digest = sha256_file(path)
    if digest != pin.sha256:
        return f"has sha256:{digest}, but config/blobs.yml pins sha256:{pin.sha256}"
    return None
