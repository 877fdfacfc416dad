"""Build a release tarball in the format of `bosh create-release --tarball`.

Layout of the result (the CLI's): ``release.MF``, ``jobs/<name>.tgz`` (each
holding ``job.MF`` — the spec — plus ``monit`` and ``templates/``) and
``packages/<name>.tgz`` (each holding ``packaging`` plus the files its spec
selects from src/ and blobs/, at their paths relative to those folders), and
``license.tgz`` with LICENSE*/NOTICE* when the release has them.

Job and package archives are cached by fingerprint under the cache dir, so a
rebuild only archives what changed, and an unchanged tree keeps its version
and tarball untouched (the no-op rebuild).
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.release import blobs, fingerprint, specs, tarball, versions, yamlio
from scripts.release.errors import ReleaseError
from scripts.release.fingerprint import FingerprintFile
from scripts.release.manifest import ArchiveRef
from scripts.release.tarball import Member

Log = Callable[[str], None]

# Bump when the archive layout code changes, so archives cached by an older builder are not reused.
CACHE_FORMAT = "v1"


@dataclass(frozen=True)
class Resource:
    """A job, package or the license: what its fingerprint covers and what its archive holds."""

    kind: str  # "jobs", "packages" or "license"
    name: str
    files: list[FingerprintFile]
    members: list[Member]
    references: tuple[str, ...] = ()
    extra_chunks: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        return fingerprint.fingerprint(self.files, self.extra_chunks)


@dataclass
class BuiltRelease:
    name: str
    version: str
    tarball: Path
    manifest: dict[str, Any]
    jobs: list[ArchiveRef] = field(default_factory=list)
    packages: list[ArchiveRef] = field(default_factory=list)
    license: ArchiveRef | None = None
    archives: dict[tuple[str, str], Path] = field(default_factory=dict)
    tarball_written: bool = True


def release_name(root: Path) -> str:
    config = yamlio.read(root / "config" / "final.yml") or {}
    name = config.get("final_name") or config.get("name")
    if not name:
        raise ReleaseError(f"{root / 'config' / 'final.yml'} must give the release a 'name'")
    return str(name)


def job_resource(job: specs.JobSpec) -> Resource:
    # Jobs follow symlinks (the CLI copies a linked template's content); the spec is shipped as job.MF.
    entries: list[tuple[str, Path]] = [("job.MF", job.dir / "spec")]
    for optional in ("monit", "properties_schema.json"):
        if (job.dir / optional).exists():
            entries.append((optional, job.dir / optional))
    entries.extend((f"templates/{src}", job.dir / "templates" / src) for src in job.templates)
    files = [FingerprintFile(name, path, follow_symlinks=True) for name, path in entries]
    members = [
        Member(name=name, source=path.resolve(), executable=bool(path.lstat().st_mode & 0o100))
        for name, path in entries
    ]
    return Resource("jobs", job.name, files, tarball.tree(members, dot_prefix=True), tuple(job.packages))


def package_resource(package: specs.PackageSpec, index: specs.SourceIndex) -> Resource:
    shipped = index.package_files(package)
    # packaging's mode is not fingerprinted: BOSH runs it with bash whatever its mode.
    files = [FingerprintFile("packaging", package.dir / "packaging", include_mode=False)]
    files.extend(FingerprintFile(f.name, f.path) for f in shipped)
    members = [tarball.file_member("packaging", package.dir / "packaging")]
    members.extend(tarball.file_member(f.name, f.path) for f in shipped)
    deps = tuple(package.dependencies)
    return Resource("packages", package.name, files, tarball.tree(members, dot_prefix=True), deps, deps)


def license_resource(tree: specs.ReleaseTree) -> Resource | None:
    if not tree.license_files:
        return None
    files = [FingerprintFile(p.name, p, include_mode=False) for p in tree.license_files]
    members = [tarball.file_member(p.name, p) for p in tree.license_files]
    return Resource("license", "license", files, tarball.tree(members, dot_prefix=True))


def _cached_archive(resource: Resource, fp: str, cache_dir: Path, log: Log) -> tuple[Path, str]:
    """The resource's archive and its SHA-256, from the cache when this fingerprint was built before."""
    base = cache_dir / CACHE_FORMAT / resource.kind / resource.name
    archive, digest_file = base / f"{fp}.tgz", base / f"{fp}.sha256"
    if archive.is_file() and digest_file.is_file():
        return archive, digest_file.read_text().strip()
    log(f"  archiving {resource.kind}/{resource.name} ({fp[:12]})")
    tarball.write_tgz(archive, resource.members)
    digest = fingerprint.sha256_file(archive)
    # The digest file is written last: its presence says the archive beside it is complete.
    digest_file.write_text(digest + "\n")
    return archive, digest


def check_blob_pins(root: Path, package_resources: list[Resource]) -> None:
    """Refuse to package a blob whose content differs from its pin in config/blobs.yml."""
    pins = blobs.load_pins(root)
    blobs_dir = root / "blobs"
    for resource in package_resources:
        for entry in resource.files:
            if entry.path.parent.is_relative_to(blobs_dir) and entry.name in pins:
                problem = blobs.verify(entry.path, pins[entry.name])
                if problem:
                    raise ReleaseError(
                        f"package '{resource.name}': blob {entry.name} {problem}; "
                        "run `make blobs` to fetch it again"
                    )


def _tarball_manifest(path: Path) -> str | None:
    """release.MF of an existing release tarball (it is the first member, so this reads little)."""
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                if member.name in ("release.MF", "./release.MF"):
                    extracted = tar.extractfile(member)
                    return extracted.read().decode() if extracted else None
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


def write_release_tarball(dest: Path, manifest: dict[str, Any], built: BuiltRelease) -> bool:
    """Write the release tarball; False when dest already holds exactly this release."""
    text = yamlio.dumps(manifest)
    if dest.is_file() and _tarball_manifest(dest) == text:
        return False
    members = [Member(name="release.MF", data=text.encode())]
    for kind in ("jobs", "packages"):
        refs = built.jobs if kind == "jobs" else built.packages
        if refs:
            members.append(Member(name=f"{kind}/"))
            members.extend(
                Member(name=f"{kind}/{ref.name}.tgz", source=built.archives[(kind, ref.name)])
                for ref in sorted(refs, key=lambda r: r.name)
            )
    if built.license is not None:
        license_archive = built.archives[("license", "license")]
        members.append(Member(name="license.tgz", source=license_archive))
        with tarfile.open(license_archive, "r:gz") as lic:
            for info in lic.getmembers():
                if info.isfile():
                    extracted = lic.extractfile(info)
                    data = extracted.read() if extracted else b""
                    members.append(Member(name=info.name.removeprefix("./"), data=data))
    tarball.write_tgz(dest, members)
    return True


def collect(root: Path, log: Log) -> tuple[list[Resource], list[Resource], Resource | None]:
    tree = specs.read_tree(root)
    index = specs.SourceIndex(root)
    problems: list[str] = []
    packages: list[Resource] = []
    for package in tree.packages:
        try:
            packages.append(package_resource(package, index))
        except ReleaseError as exc:
            problems.append(str(exc))
    if problems:
        raise ReleaseError("the release directory has problems:\n  - " + "\n  - ".join(problems))
    jobs = [job_resource(job) for job in tree.jobs]
    return jobs, packages, license_resource(tree)


def build_archives(
    root: Path, cache_dir: Path, log: Log
) -> tuple[list[ArchiveRef], list[ArchiveRef], ArchiveRef | None, dict[tuple[str, str], Path]]:
    """Fingerprint every job, package and the license, and archive those not in the cache."""
    jobs, packages, license_res = collect(root, log)
    check_blob_pins(root, packages)
    archives: dict[tuple[str, str], Path] = {}

    def ref(resource: Resource) -> ArchiveRef:
        fp = resource.fingerprint()
        archive, digest = _cached_archive(resource, fp, cache_dir, log)
        archives[(resource.kind, resource.name)] = archive
        return ArchiveRef(resource.name, fp, digest, resource.references)

    job_refs = [ref(r) for r in jobs]
    package_refs = [ref(r) for r in packages]
    license_ref = ref(license_res) if license_res else None
    return job_refs, package_refs, license_ref, archives


def choose_dev_version(root: Path, name: str, base: str, probe: Callable[[str], dict[str, Any]]) -> str:
    """Reuse the newest dev version when its manifest equals this build's, else take the next N."""
    index = versions.ReleaseIndex(root / "dev_releases", name)
    latest_n, latest_version = versions.latest_dev(index, base)
    if latest_version is not None and index.manifest(latest_version) == probe(latest_version):
        return latest_version
    return f"{base}+dev.{latest_n + 1}"
