"""A release tarball holding this repository's real jobs, and a fixture that builds tiles from it.

The tile build reads a release's release.MF and its job archives (job.MF:
properties and links); it never opens a package. So the fixture release is
made by our release builder from a copy of the repository's jobs/ and
config/final.yml, with each package the jobs name present as a one-line
stand-in: building the real packages would mean fetching ~70 MB of blobs and
archiving them, which these tests do not look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from scripts.release.create import CreateOptions, create_release
from scripts.tile.build import BPM_ENV, BuildOptions, BuiltTile, build_tile

REPO = Path(__file__).resolve().parents[2]
# A real bpm release tarball, when the environment offers one; the other tests build without it.
REAL_BPM = os.environ.get(BPM_ENV)


@pytest.fixture(autouse=True)
def _no_bpm_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BPM_ENV, raising=False)


def _stand_in_release_dir(dest: Path) -> Path:
    shutil.copytree(REPO / "jobs", dest / "jobs")
    (dest / "config").mkdir(parents=True)
    shutil.copy(REPO / "config" / "final.yml", dest / "config" / "final.yml")
    (dest / "config" / "blobs.yml").write_text("{}\n")
    version_file = "src/broker/postgres_service_broker/__init__.py"
    (dest / version_file).parent.mkdir(parents=True)
    shutil.copy(REPO / version_file, dest / version_file)
    packages = set()
    for spec in (dest / "jobs").glob("*/spec"):
        packages.update(yaml.safe_load(spec.read_text()).get("packages") or [])
    for name in sorted(packages):
        (dest / "packages" / name).mkdir(parents=True)
        (dest / "packages" / name / "spec").write_text(f"---\nname: {name}\ndependencies: []\nfiles: []\n")
        (dest / "packages" / name / "packaging").write_text("# stand-in: the tile tests never compile it\n")
    return dest


@pytest.fixture(scope="session")
def release_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _stand_in_release_dir(tmp_path_factory.mktemp("release") / "postgres-service")
    tarball = root.parent / "postgres-service-0.1.0+dev.1.tgz"
    create_release(CreateOptions(root=root, version="0.1.0+dev.1", tarball=tarball), log=lambda _l: None)
    return tarball


@pytest.fixture
def tile_yml(tmp_path: Path) -> Path:
    """A copy of the repository's tile.yml that a test may change."""
    path = tmp_path / "tile.yml"
    shutil.copy(REPO / "tile.yml", path)
    return path


BuildTile = Callable[..., BuiltTile]


@pytest.fixture
def build(release_tarball: Path, tmp_path: Path) -> BuildTile:
    """Build a tile from tile.yml (the repository's unless given) into tmp_path."""

    def run(
        tile: Path | None = None, output: Path | None = None, release: Path | None = None, **kwargs: object
    ) -> BuiltTile:
        options = BuildOptions(
            root=REPO,
            tile_yml=tile or REPO / "tile.yml",
            release=release or release_tarball,
            output=output or tmp_path / "out" / "tile.pivotal",
            **kwargs,  # type: ignore[arg-type]
        )
        return build_tile(options, log=lambda _line: None)

    return run
