"""Ops-files applied to a manifest, with the semantics of `bosh interpolate -o`.

An ops-file is a list of operations, each `type: replace` (set `value` at
`path`, creating what an optional `?` segment allows) or `type: remove`
(delete what `path` names; nothing when an optional segment is missing). A
replace whose path ends in an array item with `:before` or `:after` inserts
`value` next to that item, which must exist. An
operation may carry `error:`, a message shown instead of ours when it fails.
Operations apply in order, each to the result of the one before.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.manifests.errors import ManifestError
from scripts.manifests.opspath import AppendToken, IndexToken, KeyToken, MatchToken, Token, parse


@dataclass(frozen=True)
class Operation:
    type: str
    path: str
    value: Any = None
    error: str | None = None


class _PathError(Exception):
    """Raised while walking; turned into a ManifestError naming the ops-file and the op."""


_MISSING = object()


def _pointer(tokens: Sequence[Token]) -> str:
    """The path up to and including `tokens`, for error messages."""
    parts: list[str] = []
    for token in tokens:
        if isinstance(token, KeyToken):
            parts.append(token.key + ("?" if token.optional else ""))
        elif isinstance(token, IndexToken):
            parts.append(str(token.index) + (f":{token.insert}" if token.insert else ""))
        elif isinstance(token, AppendToken):
            parts.append("-")
        else:
            insert = f":{token.insert}" if token.insert else ""
            parts.append(f"{token.key}={token.value}{insert}" + ("?" if token.optional else ""))
    return "/" + "/".join(parts)


def _index(items: list[Any], token: IndexToken, where: str) -> int:
    index = token.index + len(items) if token.index < 0 else token.index
    if not 0 <= index < len(items):
        raise _PathError(f"index {token.index} is out of range at {where} (the array has {len(items)} items)")
    return index


def _matches(items: list[Any], token: MatchToken, where: str) -> list[int]:
    found = [
        i for i, item in enumerate(items) if isinstance(item, dict) and item.get(token.key) == token.value
    ]
    if len(found) > 1:
        raise _PathError(f"{len(found)} array items match {token.key}={token.value} at {where}; expected one")
    return found


def _container(node: Any, token: Token, where: str) -> None:
    wanted = dict if isinstance(token, KeyToken) else list
    if not isinstance(node, wanted):
        kind = "a map" if wanted is dict else "an array"
        raise _PathError(f"expected {kind} at {where}, found {type(node).__name__}")


def _child(node: Any, token: Token, tokens: Sequence[Token], at: int, create: bool) -> Any:
    """The node `token` names inside `node`; _MISSING when absent and optional (created if `create`)."""
    parent_where = _pointer(tokens[:at]) or "/"
    where = _pointer(tokens[: at + 1])
    _container(node, token, parent_where)
    if isinstance(token, KeyToken):
        if token.key in node:
            return node[token.key]
        if not token.optional:
            raise _PathError(f"no key {token.key!r} at {where}")
        if create:
            node[token.key] = {}
            return node[token.key]
        return _MISSING
    if isinstance(token, IndexToken):
        return node[_index(node, token, where)]
    if isinstance(token, MatchToken):
        found = _matches(node, token, where)
        if found:
            return node[found[0]]
        if not token.optional:
            raise _PathError(f"no array item with {token.key}={token.value} at {where}")
        if create:
            node.append({token.key: token.value})
            return node[-1]
        return _MISSING
    raise _PathError(f"'-' may only end a path ({where})")


def _replace(doc: Any, tokens: list[Token], value: Any) -> Any:
    if not tokens:
        return value
    node = doc
    for at, token in enumerate(tokens[:-1]):
        node = _child(node, token, tokens, at, create=True)
    last = tokens[-1]
    at = len(tokens) - 1
    where = _pointer(tokens)
    _container(node, last, _pointer(tokens[:at]) or "/")
    if isinstance(last, KeyToken):
        if last.key not in node and not last.optional:
            raise _PathError(f"no key {last.key!r} at {where} (end the segment with '?' to add it)")
        node[last.key] = value
    elif isinstance(last, IndexToken):
        index = _index(node, last, where)
        if last.insert:
            node.insert(index + (last.insert == "after"), value)
        else:
            node[index] = value
    elif isinstance(last, AppendToken):
        node.append(value)
    else:
        found = _matches(node, last, where)
        if found and last.insert:
            node.insert(found[0] + (last.insert == "after"), value)
        elif found:
            node[found[0]] = value
        elif last.insert:
            raise _PathError(f"no array item with {last.key}={last.value} at {where} to insert {last.insert}")
        elif last.optional:
            node.append(value)
        else:
            raise _PathError(f"no array item with {last.key}={last.value} at {where}")
    return doc


def _remove(doc: Any, tokens: list[Token]) -> Any:
    if not tokens:
        raise _PathError("the document root cannot be removed")
    last_token = tokens[-1]
    if isinstance(last_token, IndexToken | MatchToken) and last_token.insert:
        raise _PathError(f"':{last_token.insert}' names a position, not an item to remove")
    node = doc
    for at, token in enumerate(tokens[:-1]):
        node = _child(node, token, tokens, at, create=False)
        if node is _MISSING:
            return doc
    last = tokens[-1]
    where = _pointer(tokens)
    _container(node, last, _pointer(tokens[:-1]) or "/")
    if isinstance(last, KeyToken):
        if last.key in node:
            del node[last.key]
        elif not last.optional:
            raise _PathError(f"no key {last.key!r} at {where}")
    elif isinstance(last, IndexToken):
        del node[_index(node, last, where)]
    elif isinstance(last, AppendToken):
        raise _PathError(f"'-' names no element to remove ({where})")
    else:
        found = _matches(node, last, where)
        if found:
            del node[found[0]]
        elif not last.optional:
            raise _PathError(f"no array item with {last.key}={last.value} at {where}")
    return doc


def parse_ops(data: Any, source: str) -> list[Operation]:
    """The operations of an ops-file's parsed YAML, checked for shape."""
    if not isinstance(data, list):
        raise ManifestError(f"{source}: an ops-file is a list of operations")
    ops: list[Operation] = []
    for number, raw in enumerate(data, start=1):
        if not isinstance(raw, dict):
            raise ManifestError(f"{source}: op {number} is not a map")
        unknown = set(raw) - {"type", "path", "value", "error"}
        if unknown:
            raise ManifestError(f"{source}: op {number} has unknown keys {sorted(unknown)}")
        kind = raw.get("type")
        if kind not in ("replace", "remove"):
            raise ManifestError(f"{source}: op {number} has type {kind!r}; expected replace or remove")
        if not isinstance(raw.get("path"), str):
            raise ManifestError(f"{source}: op {number} ({kind}) needs a string path")
        if kind == "replace" and "value" not in raw:
            raise ManifestError(f"{source}: op {number} (replace {raw['path']}) needs a value")
        if kind == "remove" and "value" in raw:
            raise ManifestError(f"{source}: op {number} (remove {raw['path']}) must not have a value")
        ops.append(Operation(kind, raw["path"], raw.get("value"), raw.get("error")))
    return ops


def load_ops(path: Path) -> list[Operation]:
    return parse_ops(yaml.safe_load(path.read_text()), str(path))


def apply_ops(doc: Any, ops: Sequence[Operation], source: str = "ops") -> Any:
    """A new document: `doc` with `ops` applied in order; `doc` itself is left as it was."""
    result = copy.deepcopy(doc)
    for number, op in enumerate(ops, start=1):
        try:
            tokens = parse(op.path)
        except ManifestError as err:
            raise ManifestError(f"{source}: op {number} ({op.type} {op.path}): {err}") from None
        try:
            if op.type == "replace":
                # A copy per use: a value shared between two places would be written as a YAML alias.
                result = _replace(result, tokens, copy.deepcopy(op.value))
            else:
                result = _remove(result, tokens)
        except _PathError as err:
            detail = op.error or str(err)
            raise ManifestError(f"{source}: op {number} ({op.type} {op.path}): {detail}") from None
    return result
