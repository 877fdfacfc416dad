"""The .pivotal file: a zip, written so the same inputs give the same bytes.

tile-generator zips with the files' mtimes and the build's clock, so two
builds of one tree differ. Here every entry has a fixed timestamp, fixed
permissions (0644 files, 0755 directories), no extra fields, and entries come
in sorted order; the file appears only when complete.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes | None = None
    source: Path | None = None


def _info(name: str, directory: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.create_system = 3  # Unix, so external_attr carries the mode below
    info.external_attr = ((0o40755 if directory else 0o100644) << 16) | (0x10 if directory else 0)
    # Release tarballs are gzip'd already: storing them saves time and changes nothing else.
    info.compress_type = zipfile.ZIP_STORED if directory or name.endswith(".tgz") else zipfile.ZIP_DEFLATED
    return info


def write_pivotal(dest: Path, entries: list[Entry]) -> None:
    dirs = {"/".join(e.name.split("/")[:i]) + "/" for e in entries for i in range(1, e.name.count("/") + 1)}
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w") as archive:
            for name in sorted(dirs | {e.name for e in entries}):
                if name in dirs:
                    archive.writestr(_info(name, directory=True), b"")
                    continue
                entry = next(e for e in entries if e.name == name)
                info = _info(name, directory=False)
                if entry.data is not None:
                    archive.writestr(info, entry.data, compresslevel=6)
                else:
                    assert entry.source is not None
                    with entry.source.open("rb") as src, archive.open(info, "w", force_zip64=True) as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
