"""A small real filesystem (tmpfs) that a test can fill up, so a server meets a genuinely full disk.

The kernel answers writes beyond the size with ENOSPC, exactly what a full
volume does; nothing in PostgreSQL or pg_autoctl is told it is a test.
Mounting needs root (CAP_SYS_ADMIN); `can_mount` says whether this process
may, so a test can skip naming what is missing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# What one write of the filler asks for: large enough to fill fast, small
# enough that the last partial chunk leaves (almost) nothing free.
FILL_CHUNK_BYTES = 64 * 1024


class SmallFilesystemError(RuntimeError):
    pass


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root, with the mount capability): tried, not guessed."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(tempfile.mkdtemp(prefix="pgsvc-mount-probe-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True, check=False
        )
        if done.returncode != 0:
            return False
        _unmount(probe)
        return True
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


@contextlib.contextmanager
def small_tmpfs(size_bytes: int, owner_uid: int = 0, owner_gid: int = 0) -> Iterator[Path]:
    """Mount a tmpfs of `size_bytes` on a fresh temporary directory; always unmount and remove it after."""
    mount_point = Path(tempfile.mkdtemp(prefix="pgsvc-small-fs-"))
    try:
        done = subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size_bytes},mode=0700,uid={owner_uid},gid={owner_gid}",
                "tmpfs",
                str(mount_point),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SmallFilesystemError(f"cannot mount a tmpfs on {mount_point}: {done.stderr.strip()}")
        try:
            yield mount_point
        finally:
            _unmount(mount_point)
    finally:
        with contextlib.suppress(OSError):
            mount_point.rmdir()


def _unmount(mount_point: Path, timeout_s: float = 30) -> None:
    """Unmount, retrying while a process still holds a file there; lazily as the last resort."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = subprocess.run(["umount", str(mount_point)], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            # Detach it now; the kernel frees it when the last holder lets go.
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)
            return
        time.sleep(0.5)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still put on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, name: str = "filler") -> Path:
    """Write a file under `path` until the filesystem refuses (ENOSPC); returns the file.

    tmpfs has no reserved blocks, so afterwards not even a page is free for anyone.
    """
    filler = path / name
    chunk = b"\0" * FILL_CHUNK_BYTES
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        # Smaller and smaller writes take the last partial chunk too.
        size = FILL_CHUNK_BYTES // 2
        while size >= 1:
            try:
                out.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                size //= 2
    return filler


def move_directory_onto(directory: Path, mount_point: Path, owner_uid: int, owner_gid: int) -> Path:
    """Move `directory`'s contents onto `mount_point` and leave a symlink in its place; returns the new home.

    This is how an operator puts pg_wal on a volume of its own (PostgreSQL
    follows the symlink). The owning process must be stopped meanwhile.
    """
    target = mount_point / directory.name
    shutil.copytree(directory, target, symlinks=True)
    for path in (target, *target.rglob("*")):
        os.chown(path, owner_uid, owner_gid, follow_symlinks=False)
    target.chmod(directory.stat().st_mode & 0o7777)
    shutil.rmtree(directory)
    directory.symlink_to(target)
    os.chown(directory, owner_uid, owner_gid, follow_symlinks=False)
    return target


def move_directory_back(directory: Path, owner_uid: int, owner_gid: int) -> None:
    """Undo `move_directory_onto`: copy the contents home and drop the symlink (owner stopped meanwhile)."""
    if not directory.is_symlink():
        return
    target = directory.resolve()
    staging = directory.with_name(directory.name + ".back")
    shutil.copytree(target, staging, symlinks=True)
    for path in (staging, *staging.rglob("*")):
        os.chown(path, owner_uid, owner_gid, follow_symlinks=False)
    staging.chmod(target.stat().st_mode & 0o7777)
    directory.unlink()
    staging.rename(directory)
