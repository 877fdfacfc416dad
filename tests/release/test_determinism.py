"""Deterministic output: same tree, same bytes; an unchanged tree rebuilds as a no-op."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from scripts.release.tarball import FIXED_MTIME
from tests.release.conftest import SyntheticRelease, write


def test_two_builds_are_byte_identical(release: SyntheticRelease, tmp_path: Path) -> None:
    first = release.build(cache=tmp_path / "cache-a", tarball=tmp_path / "a.tgz")
    # A second copy of the tree with other mtimes, built with an empty cache.
    copy = SyntheticRelease.__new__(SyntheticRelease)
    copy.root = tmp_path / "copy"
    shutil.copytree(release.root, copy.root)
    for path in copy.root.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    second = copy.build(cache=tmp_path / "cache-b", tarball=tmp_path / "b.tgz")

    assert first.manifest == second.manifest
    for key, archive in first.archives.items():
        assert archive.read_bytes() == second.archives[key].read_bytes(), key
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def test_archives_carry_no_build_time_or_owner(release: SyntheticRelease) -> None:
    import tarfile

    built = release.build()
    for archive in [built.tarball, *built.archives.values()]:
        header = archive.read_bytes()[:10]
        assert header[4:8] == b"\0\0\0\0", f"{archive.name}: gzip header has a timestamp"
        with gzip.open(archive) as gz, tarfile.open(fileobj=gz) as tar:
            for member in tar.getmembers():
                assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
                    FIXED_MTIME,
                    0,
                    0,
                    "",
                    "",
                ), member.name


def test_noop_rebuild_keeps_version_and_tarball(release: SyntheticRelease) -> None:
    first = release.build()
    stat_before = first.tarball.stat()
    second = release.build()
    assert second.version == first.version == "2.3.4+dev.1"
    assert second.tarball_written is False
    assert first.tarball.stat().st_mtime_ns == stat_before.st_mtime_ns

    write(release.root / "src/app/main.py", "print('changed')\n")
    third = release.build()
    assert third.version == "2.3.4+dev.2"
    assert third.tarball_written is True
    assert third.manifest["jobs"] == first.manifest["jobs"]  # the job did not change
    assert not first.tarball.exists()  # build/ keeps only the newest dev tarball
