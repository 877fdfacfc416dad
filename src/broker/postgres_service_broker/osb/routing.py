"""Which view a method and path go to: the OSB API's few fixed paths, matched segment by segment.

Werkzeug's routing, which the broker used before, compiles rules into a state
machine that does far more (converters, redirects, host matching, building
URLs) than eight fixed paths with one or two ids need, and costs a broker
request tens of microseconds when its code is cold. The rules here are the
same: an ``<id>`` segment is any non-empty text without a slash, a path with
a trailing or doubled slash matches nothing, and GET answers HEAD.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound


@dataclass
class _Path:
    segments: tuple[str, ...]
    views: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        args: dict[str, str] = {}
        for want, got in zip(self.segments, parts, strict=True):
            if want.startswith("<"):
                if not got:
                    return None
                args[want[1:-1]] = got
            elif want != got:
                return None
        return args


class Routes:
    def __init__(self) -> None:
        self._paths: dict[str, _Path] = {}
        # Paths by their number of segments: a request is compared with those only.
        self._by_length: dict[int, list[_Path]] = {}

    def add(self, method: str, pattern: str, view: Callable[..., Any]) -> None:
        path = self._paths.get(pattern)
        if path is None:
            path = self._paths[pattern] = _Path(tuple(pattern.split("/")))
            self._by_length.setdefault(len(path.segments), []).append(path)
        path.views[method] = view
        if method == "GET":
            path.views.setdefault("HEAD", view)

    def match(self, path: str, method: str) -> tuple[Callable[..., Any], dict[str, str]]:
        """The view and its arguments; NotFound, or MethodNotAllowed with the methods the path allows."""
        parts = path.split("/")
        for candidate in self._by_length.get(len(parts), ()):
            args = candidate.match(parts)
            if args is None:
                continue
            view = candidate.views.get(method)
            if view is None:
                raise MethodNotAllowed(valid_methods=sorted(candidate.views))
            return view, args
        raise NotFound()
