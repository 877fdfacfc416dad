"""The release manifest (release.MF, and releases/<name>/<name>-<version>.yml for finals).

Field names and order follow the BOSH CLI's release manifest: name, version,
commit_hash, uncommitted_changes, jobs, packages, license, no_compression.
Each job and package carries ``version`` equal to its fingerprint (the CLI
has done so since v2), ``sha1`` holding the archive digest as
``sha256:<hex>`` (the key keeps its historical name), and its package names or
dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ArchiveRef:
    """A built job, package or license archive as the manifest lists it."""

    name: str
    fingerprint: str
    sha256: str
    references: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256


def release_manifest(
    *,
    name: str,
    version: str,
    commit_hash: str,
    uncommitted_changes: bool,
    jobs: list[ArchiveRef],
    packages: list[ArchiveRef],
    license_ref: ArchiveRef | None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "commit_hash": commit_hash,
        "uncommitted_changes": uncommitted_changes,
    }
    if jobs:
        manifest["jobs"] = [
            {
                "name": j.name,
                "version": j.fingerprint,
                "fingerprint": j.fingerprint,
                "sha1": j.digest,
                "packages": list(j.references),
            }
            for j in sorted(jobs, key=lambda r: r.name)
        ]
    if packages:
        manifest["packages"] = [
            {
                "name": p.name,
                "version": p.fingerprint,
                "fingerprint": p.fingerprint,
                "sha1": p.digest,
                "dependencies": list(p.references),
            }
            for p in sorted(packages, key=lambda r: r.name)
        ]
    if license_ref is not None:
        manifest["license"] = {
            "version": license_ref.fingerprint,
            "fingerprint": license_ref.fingerprint,
            "sha1": license_ref.digest,
        }
    manifest["no_compression"] = False
    return manifest
