"""Build the tile: tile.yml checked against the release tarballs, then the .pivotal written.

Release tarballs come from, per package of tile.yml: ``--release`` for this
repository's release (default: the one build/<name>-*.tgz that
``python -m scripts.release create`` wrote), ``--bpm-release`` (or
BPM_RELEASE_TARBALL) for bpm, or the package's own ``path``.

bpm is not built from this repository and is published only where an
offline build cannot go, and a stand-in tarball would be a lie an operator
finds at deploy time. So without bpm's tarball the tile is still built and
checked, and its metadata still lists bpm at the version tile.yml pins (the
dependency is declared, not hidden), but the file is named
``...-without-bpm.pivotal`` and the build prints a warning: an operator
expects a .pivotal to install on its own, even with no internet access, and
Ops Manager refuses to import a tile whose listed release file is missing,
so the name says so before anyone tries. ``--require-complete`` (for publishing)
makes a missing tarball an error instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.release.builder import release_name
from scripts.release.errors import ReleaseError
from scripts.tile import check, icon, metadata, releases
from scripts.tile.errors import TileError
from scripts.tile.pivotal import Entry, write_pivotal
from scripts.tile.releases import Release
from scripts.tile.source import Source, line_of, load

Log = Callable[[str], None]
BPM_ENV = "BPM_RELEASE_TARBALL"


@dataclass(frozen=True)
class BuildOptions:
    root: Path
    tile_yml: Path | None = None  # default: <root>/tile.yml
    release: Path | None = None  # this repository's release tarball
    bpm_release: Path | None = None  # default: $BPM_RELEASE_TARBALL
    output: Path | None = None  # default: <root>/build/<name>-<version>[-without-...].pivotal
    version: str | None = None  # default: from the release's version
    require_complete: bool = False


@dataclass(frozen=True)
class BuiltTile:
    path: Path
    version: str
    missing: tuple[str, ...]  # releases listed in the metadata but not packed
    metadata: dict[str, Any]


def tile_version(release_version: str) -> str:
    """Ops Manager orders versions by semver, which ignores `+build` parts: a dev release's
    `+dev.N` becomes the pre-release `-dev.N`, so each dev tile upgrades the one before."""
    return release_version.replace("+dev.", "-dev.")


def _default_release(root: Path) -> Path:
    try:
        name = release_name(root)
    except ReleaseError as exc:
        raise TileError(str(exc)) from exc
    found = sorted((root / "build").glob(f"{name}-*.tgz"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise TileError(
            f"no {name}-*.tgz in {root / 'build'}; run `python -m scripts.release create` first "
            "(or pass --release)"
        )
    raise TileError(
        f"several release tarballs in {root / 'build'} ({', '.join(f.name for f in found)}); pass --release"
    )


def _releases(source: Source, options: BuildOptions, log: Log) -> dict[str, Release]:
    root = options.root
    own = release_name(root) if (root / "config" / "final.yml").is_file() else None
    bpm = options.bpm_release or (Path(os.environ[BPM_ENV]) if os.environ.get(BPM_ENV) else None)
    found: dict[str, Release] = {}
    for package in source.data.get("packages") or []:
        if not isinstance(package, dict) or package.get("type") != "bosh-release":
            continue  # the check reports it
        name = str(package.get("name"))
        path: Path | None = None
        if name == own:
            path = options.release or _default_release(root)
        elif name == "bpm" and bpm is not None:
            path = bpm
        elif isinstance(package.get("path"), str):
            path = root / package["path"]
        if path is not None:
            release = releases.read_release(path.resolve())
            if release.name != name:
                raise source.error(
                    f"package '{name}': {path} holds release '{release.name}', not '{name}'",
                    line_of(package, "name"),
                )
            pinned = package.get("version")
            if pinned is not None and str(pinned) != release.version:
                raise source.error(
                    f"package '{name}': {path} is version {release.version}; tile.yml pins {pinned}",
                    line_of(package, "version"),
                )
            found[name] = release
            log(f"release {release.name}/{release.version}: {path}")
        elif package.get("version") is not None and isinstance(package.get("jobs_in_release"), list):
            jobs = {str(j): releases.ReleaseJob(str(j), frozenset()) for j in package["jobs_in_release"]}
            version = str(package["version"])
            found[name] = Release(
                name=name, version=version, path=Path(f"{name}-{version}.tgz"), jobs=jobs, declared_only=True
            )
    return found


def build_tile(options: BuildOptions, log: Log = print) -> BuiltTile:
    root = options.root.resolve()
    source = load(options.tile_yml or root / "tile.yml")
    found = _releases(source, options, log)
    check.check(source, found)
    missing = tuple(sorted(name for name, r in found.items() if r.declared_only))
    if missing and options.require_complete:
        raise TileError(
            f"no tarball for release(s) {', '.join(missing)}: pass --bpm-release (or {BPM_ENV}) "
            "to build a complete tile"
        )
    name = str(source.data["name"])
    own = found.get(release_name(root)) if (root / "config" / "final.yml").is_file() else None
    version = options.version or tile_version(own.version if own else "0.0.0")
    listed = [found[str(p["name"])] for p in source.data["packages"] if str(p["name"]) in found]
    data = metadata.build_metadata(source, version, listed, icon.icon_image())
    entries = [Entry(f"metadata/{name}.yml", data=metadata.dump(data).encode())]
    entries += [Entry(f"releases/{r.file_name}", source=r.path) for r in listed if not r.declared_only]
    suffix = "".join(f"-without-{m}" for m in missing)
    dest = options.output or root / "build" / f"{name}-{version}{suffix}.pivotal"
    write_pivotal(dest, entries)
    for release in missing:
        log(
            f"warning: {release} is listed in the metadata but not packed: Ops Manager will not import "
            f"{dest.name}; pass --bpm-release (or {BPM_ENV}) for a complete tile"
        )
    log(f"tile {name} {version}: {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
    return BuiltTile(path=dest, version=version, missing=missing, metadata=data)
