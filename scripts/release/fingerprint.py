"""Fingerprints of jobs, packages and the license, computed exactly as the BOSH CLI computes them.

A director reuses a package it already has when the fingerprint matches, so
these must agree with `bosh create-release` byte for byte. The CLI (v7, SHA-256
digests) builds one string: ``"v2"``, then for each file in order of its path
inside the archive the concatenation of that path (or, for license files, the
base name), its digest as ``sha256:<hex>``, and, unless the file is exempt, a
mode token (``100755`` when any execute bit is set, ``100644`` otherwise,
``symlink`` for a link that is not followed; git only tracks the execute bit,
so a fresh clone fingerprints the same as the working copy); then, if any, the
sorted extra chunks joined by commas (a package's dependency names). The
fingerprint is the SHA-256 hex digest of that string.

A package's dependencies enter only by name: a change inside a dependency
does not change the dependent's fingerprint (the director recompiles
dependents through its own dependency key), exactly as with the BOSH CLI.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FingerprintFile:
    """One file as the fingerprint sees it.

    ``name`` is its path inside the archive (``templates/ctl.erb``,
    ``python3/Python.tgz``), or the base name for license files.
    """

    name: str
    path: Path
    include_mode: bool = True
    follow_symlinks: bool = False


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _chunk(entry: FingerprintFile) -> str:
    info = entry.path.lstat()
    is_link = stat.S_ISLNK(info.st_mode)
    if is_link and not entry.follow_symlinks:
        digest = sha256_text(os.readlink(entry.path))
    else:
        # The mode still comes from lstat, as in the CLI: a followed link counts as 100755.
        digest = sha256_file(entry.path)
    chunk = entry.name + "sha256:" + digest
    if entry.include_mode:
        if stat.S_ISDIR(info.st_mode):
            chunk += "40755"
        elif is_link and not entry.follow_symlinks:
            chunk += "symlink"
        elif info.st_mode & 0o111:
            chunk += "100755"
        else:
            chunk += "100644"
    return chunk


def fingerprint(files: Iterable[FingerprintFile], extra_chunks: Iterable[str] = ()) -> str:
    """The BOSH fingerprint of a set of files plus extra chunks (a package's dependency names)."""
    parts = ["v2"]
    parts.extend(_chunk(entry) for entry in sorted(files, key=lambda f: f.name))
    extras = sorted(extra_chunks)
    if extras:
        parts.append(",".join(extras))
    return sha256_text("".join(parts))
