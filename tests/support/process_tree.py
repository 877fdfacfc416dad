"""A process and everything below it, found through /proc, and signals sent to all of them.

The HA tests kill and freeze whole servers (a keeper, its PostgreSQL, that
server's backends). PostgreSQL's backends start sessions of their own, so a
process group does not reach them; the parent links in /proc do.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces; fields follow the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, parents before children.

    PostgreSQL's backends put themselves in sessions of their own; the
    parent links still lead to them.
    """
    children = _children_by_parent()
    order: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop(0)
        order.append(pid)
        todo.extend(children.get(pid, []))
    return order


def signal_all(pids: list[int], sig: int) -> None:
    """Send `sig` to each of `pids`, skipping those that are already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
