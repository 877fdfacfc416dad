"""tile.yml read with ruamel.yaml, so every value keeps the line it was written on.

PyYAML forgets positions once it has built Python objects; the metadata check
needs them to name the offending line, which ruamel.yaml's round-trip loader
keeps on each mapping and sequence (``.lc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from scripts.tile.errors import TileError


@dataclass(frozen=True)
class Source:
    path: Path
    data: CommentedMap

    def error(self, message: str, line: int | None) -> TileError:
        return TileError(message, self.path, line)


def load(path: Path) -> Source:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise TileError(f"not valid YAML: {exc.problem or exc.context}", path, line) from exc
    if not isinstance(data, CommentedMap):
        raise TileError("the top level must be a mapping (name, label, packages, forms, ...)", path, 1)
    return Source(path, data)


def line_of(node: Any, key: str | int | None = None) -> int | None:
    """The 1-based line of ``node[key]`` (of the key for mappings), or of the node itself."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if isinstance(node, CommentedMap) and key is not None and key in node:
            return int(lc.key(key)[0]) + 1
        if isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            return int(lc.item(key)[0]) + 1
    except (KeyError, IndexError, TypeError):
        pass
    return int(lc.line) + 1


def plain(node: Any) -> Any:
    """The same data as plain dicts and lists (for writing metadata), order kept."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    # ruamel.yaml's scalar subclasses (kept for round-tripping) become the built-in types.
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node
