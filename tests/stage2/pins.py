"""What a requirements file pins, and what a package really needs, to prove the one covers the other."""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DEV_LOCK = REPO / "requirements" / "dev.lock"


def read_pins(path: Path) -> dict[str, str]:
    """name -> version for every `name==version` line (extras and markers dropped); other lines skipped."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" not in line:
            continue
        name, _, version = line.partition("==")
        pins[canonicalize_name(re.sub(r"\[.*\]", "", name).strip())] = version.strip()
    return pins


def dependency_closure(name: str, extras: Iterable[str] = ()) -> dict[str, str]:
    """name -> installed version of everything `name[extras]` needs here, transitively (not itself)."""
    found: dict[str, str] = {}
    pending = [(name, frozenset(extras))]
    visited: set[tuple[str, frozenset[str]]] = set()
    while pending:
        current, current_extras = pending.pop()
        key = (canonicalize_name(current), current_extras)
        if key in visited:
            continue
        visited.add(key)
        for text in distribution(current).requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in (current_extras or {""})
            ):
                continue
            dep = canonicalize_name(req.name)
            found[dep] = distribution(req.name).version
            pending.append((req.name, frozenset(req.extras)))
    return found
