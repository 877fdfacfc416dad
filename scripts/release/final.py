"""Final releases: .final_builds/ indices, blob uploads, and releases/<name>/ — laid out as the BOSH CLI does.

For each job and package (and the license) of a final release the CLI keeps
``.final_builds/<jobs|packages>/<name>/index.yml`` (the license:
``.final_builds/license/index.yml``)::

    builds:
      <fingerprint>:
        version: <fingerprint>
        blobstore_id: <object id in the blobstore>
        sha1: sha256:<archive digest>
    format-version: "2"

An archive whose fingerprint is already there is not uploaded again; the
release then lists the digest recorded there, and if our local archive is
not that very file it is fetched from the blobstore, so a final release
always refers to the archives already published. Blobs of config/blobs.yml
without an object_id are uploaded too (like `bosh upload-blobs`), and the
release manifest and index go to releases/<name>/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from scripts.release import blobs, yamlio
from scripts.release.blobstore import S3Blobstore
from scripts.release.errors import ReleaseError
from scripts.release.manifest import ArchiveRef

Log = Callable[[str], None]


class FinalIndex:
    def __init__(self, root: Path, kind: str, name: str) -> None:
        base = root / ".final_builds" / kind
        self.path = base / "index.yml" if kind == "license" else base / name / "index.yml"

    def entries(self) -> dict[str, dict[str, Any]]:
        data = yamlio.read(self.path) or {}
        return {str(k): dict(v) for k, v in (data.get("builds") or {}).items()}

    def find(self, fingerprint: str) -> dict[str, Any] | None:
        return next((e for e in self.entries().values() if e.get("version") == fingerprint), None)

    def add(self, fingerprint: str, blobstore_id: str, sha256: str) -> None:
        builds = self.entries()
        builds[fingerprint] = {
            "version": fingerprint,
            "blobstore_id": blobstore_id,
            "sha1": "sha256:" + sha256,
        }
        yamlio.write(self.path, {"builds": {k: builds[k] for k in sorted(builds)}, "format-version": "2"})


def upload_blobs(root: Path, store: S3Blobstore, log: Log) -> int:
    """Upload blobs that have no object_id yet and record their ids in config/blobs.yml."""
    pins = blobs.load_pins(root)
    uploaded = 0
    for path, pin in sorted(pins.items()):
        if pin.object_id:
            continue
        local = root / "blobs" / path
        if not local.is_file():
            raise ReleaseError(f"blob {path} is not in blobs/ and not uploaded yet; run `make blobs` first")
        problem = blobs.verify(local, pin)
        if problem:
            raise ReleaseError(f"blob {path} {problem}; run `make blobs` to fetch it again")
        log(f"  uploading blob {path} ({pin.size / 1e6:.1f} MB)")
        pins[path] = pin.with_object_id(store.upload(local, pin.sha256))
        blobs.save_pins(root, pins)  # after each upload, so an interruption loses no id
        uploaded += 1
    return uploaded


def finalize_archives(
    root: Path,
    refs: dict[str, list[ArchiveRef]],
    archives: dict[tuple[str, str], Path],
    store: S3Blobstore,
    cache_dir: Path,
    log: Log,
) -> dict[str, list[ArchiveRef]]:
    """Record every archive in .final_builds/, uploading the new ones; returns the refs as published."""
    published: dict[str, list[ArchiveRef]] = {}
    for kind, kind_refs in refs.items():
        published[kind] = []
        for ref in kind_refs:
            index = FinalIndex(root, kind, ref.name)
            entry = index.find(ref.fingerprint)
            if entry is None:
                log(f"  uploading {kind}/{ref.name} ({ref.fingerprint[:12]})")
                object_id = store.upload(archives[(kind, ref.name)], ref.sha256)
                index.add(ref.fingerprint, object_id, ref.sha256)
                published[kind].append(ref)
                continue
            sha = str(entry.get("sha1", "")).removeprefix("sha256:")
            if sha != ref.sha256:
                # Same content, archived elsewhere: use the published archive, as the CLI does.
                dest = cache_dir / "final" / kind / ref.name / f"{ref.fingerprint}.tgz"
                if not dest.is_file():
                    store.download(str(entry["blobstore_id"]), dest, sha)
                archives[(kind, ref.name)] = dest
            published[kind].append(ArchiveRef(ref.name, ref.fingerprint, sha, ref.references))
    return published
