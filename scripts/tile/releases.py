"""What a BOSH release tarball holds, read from it directly: its release.MF and each job's spec.

The metadata check trusts the tarball, not the source tree: a job type may only
name a job that is really inside the release the tile carries, and a job
type's manifest may only set properties that job's spec (job.MF) declares.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from scripts.tile.errors import TileError


@dataclass(frozen=True)
class ReleaseJob:
    name: str
    properties: frozenset[str]
    consumes: frozenset[str] = frozenset()
    provides: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Release:
    name: str
    version: str
    path: Path
    jobs: dict[str, ReleaseJob] = field(default_factory=dict)
    # A release declared in tile.yml without a tarball: its job names are taken on trust.
    declared_only: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.tgz"


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _read_yaml(tar: tarfile.TarFile, member: tarfile.TarInfo, what: str, path: Path) -> dict:
    handle = tar.extractfile(member)
    if handle is None:
        raise TileError(f"{path}: {what} is not a regular file")
    data = yaml.safe_load(handle.read())
    if not isinstance(data, dict):
        raise TileError(f"{path}: {what} is not a YAML mapping")
    return data


def _job_spec(job_tgz: bytes, job_name: str, path: Path) -> dict:
    with tarfile.open(fileobj=io.BytesIO(job_tgz), mode="r:gz") as tar:
        for member in tar.getmembers():
            if _member_name(member.name) == "job.MF":
                return _read_yaml(tar, member, f"jobs/{job_name}.tgz job.MF", path)
    raise TileError(f"{path}: jobs/{job_name}.tgz has no job.MF")


def _link_names(links: object) -> frozenset[str]:
    if not isinstance(links, list):
        return frozenset()
    return frozenset(str(link["name"]) for link in links if isinstance(link, dict) and "name" in link)


def read_release(path: Path) -> Release:
    """The release's name and version, and its jobs with their properties and links."""
    if not path.is_file():
        raise TileError(f"release tarball {path} does not exist")
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members = {_member_name(m.name): m for m in tar.getmembers() if m.isfile()}
            if "release.MF" not in members:
                raise TileError(f"{path} is not a BOSH release tarball: it has no release.MF")
            manifest = _read_yaml(tar, members["release.MF"], "release.MF", path)
            jobs: dict[str, ReleaseJob] = {}
            for entry in manifest.get("jobs") or []:
                name = str(entry["name"])
                member = members.get(f"jobs/{name}.tgz")
                if member is None:
                    raise TileError(f"{path}: release.MF lists job '{name}' but jobs/{name}.tgz is missing")
                handle = tar.extractfile(member)
                assert handle is not None  # members holds regular files only
                spec = _job_spec(handle.read(), name, path)
                jobs[name] = ReleaseJob(
                    name=name,
                    properties=frozenset((spec.get("properties") or {}).keys()),
                    consumes=_link_names(spec.get("consumes")),
                    provides=_link_names(spec.get("provides")),
                )
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TileError(f"{path} is not a readable gzip'd tarball: {exc}") from exc
    if not manifest.get("name") or not manifest.get("version"):
        raise TileError(f"{path}: release.MF has no name or version")
    return Release(
        name=str(manifest["name"]),
        version=str(manifest["version"]),
        path=path,
        jobs=jobs,
    )
