"""File patterns of package specs (`files:` / `excluded_files:`), matched the way the BOSH CLI does.

BOSH matches these with a "doublestar" glob relative to src/ and blobs/: ``*``
and ``?`` stay within one path segment, ``**`` as a whole segment spans any
number of directories (zero included), ``[...]`` is a character class and
``{a,b}`` an alternation. Leading dots are not special, so ``*`` matches
``.hidden`` as well. Directories are never packaged, only files and symlinks.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Translate one spec pattern into a regular expression over '/'-separated relative paths."""
    return re.compile(_translate(pattern.strip("/")) + r"\Z", re.DOTALL)


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            at_segment_start = i == 0 or pattern[i - 1] == "/"
            j = i + 2
            if at_segment_start and (j == n or pattern[j] == "/"):
                if j == n:
                    out.append(".*")
                    i = j
                else:
                    # "**/" may also match no directory at all.
                    out.append("(?:[^/]*/)*")
                    i = j + 1
                continue
            out.append("[^/]*")
            i = j
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("(?:(?!/)[" + body.replace("\\", "\\\\") + "])")
            i = end + 1
        elif c == "{":
            end = pattern.find("}", i)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            options = pattern[i + 1 : end].split(",")
            out.append("(?:" + "|".join(_translate(opt) for opt in options) + ")")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def list_files(base: Path) -> list[str]:
    """Every file and symlink under base, as sorted '/'-separated paths relative to it.

    Directory symlinks are listed as symlinks, not followed, so a package never
    picks up files from outside its tree through a link.
    """
    if not base.is_dir():
        return []
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in filenames:
            found.append(prefix + name)
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                found.append(prefix + name)
                dirnames.remove(name)
        dirnames.sort()
    return sorted(found)


def matching(pattern: str, candidates: list[str]) -> list[str]:
    regex = compile_pattern(pattern)
    return [path for path in candidates if regex.match(path)]
