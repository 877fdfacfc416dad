"""The ops-file path language (`/instance_groups/name=broker/jobs/-`), parsed into tokens.

Each segment after a `/` is one of: an array index (`0`, `-1` from the end), `-`
(after the last element: append), `key=value` (the one array element whose
`key` equals `value`), or a map key. A trailing `?` makes the segment optional,
and, as in the BOSH CLI, every segment after it too: the rest of the path is
then created by a replace, or skipped by a remove, when it is missing.
`~1` and `~0` escape `/` and `~` inside a segment (JSON pointer escapes).
As in the BOSH CLI, the last segment of a replace may name an array item
followed by `:before` or `:after` (`/instance_groups/name=postgres:before`):
the value is then inserted next to that item instead of replacing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scripts.manifests.errors import ManifestError

_INDEX = re.compile(r"-?\d+")


@dataclass(frozen=True)
class KeyToken:
    key: str
    optional: bool


@dataclass(frozen=True)
class IndexToken:
    index: int
    # "before" or "after": insert next to the item rather than name it.
    insert: str | None = None


@dataclass(frozen=True)
class AppendToken:
    """`-`: the position after the last element of an array."""


@dataclass(frozen=True)
class MatchToken:
    key: str
    value: str
    optional: bool
    insert: str | None = None


Token = KeyToken | IndexToken | AppendToken | MatchToken


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def parse(path: str) -> list[Token]:
    """Tokens of `path`; the empty list is the document root (`/`)."""
    if not path.startswith("/"):
        raise ManifestError(f"path {path!r} must start with '/'")
    if path == "/":
        return []
    tokens: list[Token] = []
    optional = False
    segments = path[1:].split("/")
    for number, raw in enumerate(segments, start=1):
        if raw == "":
            raise ManifestError(f"path {path!r} has an empty segment")
        if raw.endswith("?"):
            optional = True
            raw = raw[:-1]
        insert = None
        for suffix in (":before", ":after"):
            if raw.endswith(suffix) and (_INDEX.fullmatch(raw[: -len(suffix)]) or "=" in raw):
                if number != len(segments):
                    raise ManifestError(f"path {path!r}: {suffix!r} may only end the last segment")
                insert, raw = suffix[1:], raw[: -len(suffix)]
        if raw == "-":
            tokens.append(AppendToken())
        elif _INDEX.fullmatch(raw):
            tokens.append(IndexToken(int(raw), insert))
        elif "=" in raw:
            key, value = raw.split("=", 1)
            tokens.append(MatchToken(_unescape(key), _unescape(value), optional, insert))
        else:
            tokens.append(KeyToken(_unescape(raw), optional))
    for token in tokens[:-1]:
        if isinstance(token, AppendToken):
            raise ManifestError(f"path {path!r}: '-' (append) may only be the last segment")
    return tokens
