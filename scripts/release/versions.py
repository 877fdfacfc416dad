"""Release versions: the product version from its one place, dev suffixes, and dev_releases/ records.

The product version is ``__version__`` in the broker package. A dev release is
``<version>+dev.<N>``, N counting up per product version, recorded in
dev_releases/<name>/ the way the BOSH CLI records dev releases (an index.yml
of build ids and versions, plus each release's manifest). A build whose
manifest equals the newest dev release's keeps that version: rebuilding an
unchanged tree is a no-op rather than a new release.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from scripts.release import yamlio
from scripts.release.errors import ReleaseError

VERSION_FILE = Path("src/broker/postgres_service_broker/__init__.py")
_VERSION_RE = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)
_DEV_RE = re.compile(r"^(?P<base>.+)\+dev\.(?P<n>\d+)$")


def product_version(root: Path) -> str:
    path = root / VERSION_FILE
    match = _VERSION_RE.search(path.read_text()) if path.is_file() else None
    if not match:
        raise ReleaseError(f"no __version__ = '...' line in {path}; that line is the product version")
    return match.group(1)


def check_version(version: str) -> str:
    # BOSH versions are dotted segments with optional -pre and +post parts; keep to characters it accepts.
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+_-]*", version):
        raise ReleaseError(
            f"'{version}' is not a usable release version (digits, letters, '.', '+', '-', '_')"
        )
    return version


class ReleaseIndex:
    """dev_releases/<name>/ or releases/<name>/: index.yml plus <name>-<version>.yml per release."""

    def __init__(self, base_dir: Path, name: str) -> None:
        self.dir = base_dir / name
        self.name = name

    @property
    def index_path(self) -> Path:
        return self.dir / "index.yml"

    def manifest_path(self, version: str) -> Path:
        return self.dir / f"{self.name}-{version}.yml"

    def versions(self) -> list[str]:
        data = yamlio.read(self.index_path) or {}
        builds = data.get("builds") or {}
        return [str(entry["version"]) for entry in builds.values()]

    def contains(self, version: str) -> bool:
        return version in self.versions()

    def add(self, manifest: dict[str, Any]) -> None:
        version = str(manifest["version"])
        data = yamlio.read(self.index_path) or {}
        builds: dict[str, Any] = dict(data.get("builds") or {})
        if any(str(b["version"]) == version for b in builds.values()):
            raise ReleaseError(
                f"release '{self.name}' version '{version}' already exists in {self.index_path}"
            )
        # The CLI keys entries by a random id; only the version inside matters to readers.
        builds[str(uuid.uuid4())] = {"version": version}
        yamlio.write(self.manifest_path(version), manifest)
        yamlio.write(
            self.index_path,
            {"builds": {k: builds[k] for k in sorted(builds)}, "format-version": "2"},
        )

    def manifest(self, version: str) -> dict[str, Any] | None:
        data = yamlio.read(self.manifest_path(version))
        return data if isinstance(data, dict) else None


def latest_dev(index: ReleaseIndex, base: str) -> tuple[int, str | None]:
    """The highest N among <base>+dev.N releases, and that version (0, None when there is none)."""
    best, best_version = 0, None
    for version in index.versions():
        match = _DEV_RE.match(version)
        if match and match.group("base") == base and int(match.group("n")) > best:
            best, best_version = int(match.group("n")), version
    return best, best_version
