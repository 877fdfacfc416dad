"""`create-release`: a dev or final release tarball from the release directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.release import builder, final, gitinfo, versions
from scripts.release.errors import ReleaseError
from scripts.release.manifest import ArchiveRef, release_manifest

Log = Callable[[str], None]


@dataclass(frozen=True)
class CreateOptions:
    root: Path
    version: str | None = None
    final: bool = False
    force: bool = False
    tarball: Path | None = None  # default: <root>/build/<name>-<version>.tgz
    cache_dir: Path | None = None  # default: <root>/build/.release-cache


def create_release(options: CreateOptions, log: Log = print) -> builder.BuiltRelease:
    root = options.root.resolve()
    cache_dir = options.cache_dir or root / "build" / ".release-cache"
    name = builder.release_name(root)
    commit, dirty = gitinfo.commit_and_dirty(root)
    if options.final and dirty and not options.force:
        raise ReleaseError(
            "the work tree has uncommitted changes; commit them before a final release (or pass --force)"
        )

    job_refs, package_refs, license_ref, archives = builder.build_archives(root, cache_dir, log)

    def manifest_for(version: str, jobs: list[ArchiveRef], packages: list[ArchiveRef]) -> dict[str, Any]:
        return release_manifest(
            name=name,
            version=version,
            commit_hash=commit,
            uncommitted_changes=dirty,
            jobs=jobs,
            packages=packages,
            license_ref=license_ref,
        )

    base = versions.product_version(root)
    if options.final:
        version = versions.check_version(options.version or base)
        releases = versions.ReleaseIndex(root / "releases", name)
        if releases.contains(version):
            raise ReleaseError(f"final release '{name}' version '{version}' already exists in {releases.dir}")
        store = final.S3Blobstore.from_release_dir(root)
        uploaded = final.upload_blobs(root, store, log)
        refs: dict[str, list[ArchiveRef]] = {"jobs": job_refs, "packages": package_refs}
        if license_ref is not None:
            refs["license"] = [license_ref]
        published = final.finalize_archives(root, refs, archives, store, cache_dir, log)
        job_refs, package_refs = published["jobs"], published["packages"]
        license_ref = published["license"][0] if license_ref is not None else None
        manifest = manifest_for(version, job_refs, package_refs)
        releases.add(manifest)
        log(f"final release {name}/{version} recorded in releases/{name}/ ({uploaded} blob(s) uploaded)")
    else:
        dev_index = versions.ReleaseIndex(root / "dev_releases", name)
        if options.version:
            version = versions.check_version(options.version)
        else:
            version = builder.choose_dev_version(
                root, name, base, lambda v: manifest_for(v, job_refs, package_refs)
            )
        manifest = manifest_for(version, job_refs, package_refs)
        if dev_index.manifest(version) != manifest:
            if dev_index.contains(version):
                raise ReleaseError(
                    f"dev release '{name}' version '{version}' already exists with other content; "
                    "choose another --version"
                )
            dev_index.add(manifest)

    dest = options.tarball or root / "build" / f"{name}-{version}.tgz"
    built = builder.BuiltRelease(
        name=name,
        version=version,
        tarball=dest,
        manifest=manifest,
        jobs=job_refs,
        packages=package_refs,
        license=license_ref,
        archives=archives,
    )
    built.tarball_written = builder.write_release_tarball(dest, manifest, built)
    if options.tarball is None and not options.final:
        # Each commit makes a new dev version; keep only the newest ~70 MB tarball in build/.
        for stale in dest.parent.glob(f"{name}-*+dev.*.tgz"):
            if stale != dest:
                stale.unlink()
    state = "written" if built.tarball_written else "unchanged"
    log(f"release {name}/{version}: {dest} ({state}, {dest.stat().st_size / 1e6:.1f} MB)")
    return built
