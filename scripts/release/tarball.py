"""Deterministic gzip'd tarballs: the same members always give the same bytes.

The BOSH CLI shells out to ``tar -czf`` and so embeds the builder's mtimes,
owners and directory order. We fix all of them instead (a constant mtime,
uid/gid 0 without names, members sorted, gzip header without timestamp or file
name), so two builds of one tree give byte-identical job and package archives
and a cache keyed by fingerprint stays valid.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

# 1980-01-01T00:00:00Z, the earliest time every archive format can carry; any
# constant would do, but not "now".
FIXED_MTIME = 315532800
GZIP_LEVEL = 6  # what `tar -z` gets from gzip by default


@dataclass(frozen=True)
class Member:
    """One entry of an archive: a regular file copied from ``source``, a symlink, or a directory."""

    name: str
    source: Path | None = None
    data: bytes | None = None
    executable: bool = False
    symlink_target: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.source is None and self.data is None and self.symlink_target is None


def file_member(name: str, source: Path) -> Member:
    """A member copied from a file; a symlink stays a symlink, as the CLI keeps package links."""
    info = source.lstat()
    if stat.S_ISLNK(info.st_mode):
        return Member(name=name, symlink_target=os.readlink(source))
    # Like the CLI: only the owner's execute bit decides between 0755 and 0644.
    return Member(name=name, source=source, executable=bool(info.st_mode & stat.S_IXUSR))


def tree(members: Iterable[Member], *, dot_prefix: bool) -> list[Member]:
    """Members plus a directory entry for each parent, sorted so a directory precedes its content.

    With ``dot_prefix`` every name starts with ``./`` and ``./`` itself comes
    first: the listing `tar -C staging .` gives for the CLI's job and package archives.
    """
    by_name = {m.name: m for m in members}
    for name in list(by_name):
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            dir_name = "/".join(parts[:depth]) + "/"
            by_name.setdefault(dir_name, Member(name=dir_name))
    ordered = sorted(by_name.values(), key=lambda m: m.name)
    if dot_prefix:
        ordered = [Member(name="./"), *(replace(m, name="./" + m.name) for m in ordered)]
    return ordered


def _tarinfo(member: Member) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if member.is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif member.symlink_target is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = member.symlink_target
        info.mode = 0o777
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o755 if member.executable else 0o644
    return info


def write_tgz(dest: Path, members: Iterable[Member]) -> None:
    """Write members, in the order given, to dest atomically (a reader never sees half a file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    with (
        partial.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for member in members:
            info = _tarinfo(member)
            if member.data is not None:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            elif member.source is not None and member.symlink_target is None:
                info.size = member.source.stat().st_size
                with member.source.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    partial.replace(dest)
