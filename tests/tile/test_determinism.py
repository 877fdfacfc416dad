"""Two builds of the same tree give the same .pivotal, byte for byte, whatever the clock and file times."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from scripts.tile.pivotal import FIXED_TIME
from tests.tile.conftest import BuildTile


def test_two_builds_are_byte_identical(build: BuildTile, release_tarball: Path, tmp_path: Path) -> None:
    first = build(output=tmp_path / "a" / "tile.pivotal")
    # The same inputs with other mtimes and under another umask, built later.
    copy = tmp_path / "copy" / release_tarball.name
    copy.parent.mkdir()
    shutil.copy(release_tarball, copy)
    os.utime(copy, (1_700_000_000, 1_700_000_000))
    old_umask = os.umask(0o077)
    try:
        second = build(output=tmp_path / "b" / "tile.pivotal", release=copy)
    finally:
        os.umask(old_umask)
    assert first.path.read_bytes() == second.path.read_bytes()


def test_entries_carry_no_build_time_and_fixed_modes(build: BuildTile) -> None:
    with zipfile.ZipFile(build().path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    for info in infos:
        assert info.date_time == FIXED_TIME, info.filename
        mode = info.external_attr >> 16
        assert mode == (0o40755 if info.is_dir() else 0o100644), (info.filename, oct(mode))
        assert info.extra == b"", info.filename
