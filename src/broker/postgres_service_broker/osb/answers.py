"""The broker's answers as WSGI responses, without a framework's response object.

Every answer the broker gives is a short body it already holds whole (JSON,
or nothing), so the response is a status line, three or four headers and
that body. Werkzeug's Response does much more per request (header
normalisation, conditional and range handling, iterator wrapping) that the
broker never uses, and each layer costs several times over when the
broker's code is cold from waiting on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

JSON = "application/json"
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class _Body:
    """The body's one chunk; ``close`` (called by the server after the last byte) runs the callbacks."""

    __slots__ = ("_chunks", "_on_close")

    def __init__(self, chunks: list[bytes], on_close: list[Callable[[], None]]) -> None:
        self._chunks = chunks
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        for callback in self._on_close:
            callback()


class Answer:
    """One answer: a status, a body held whole, and any extra headers."""

    __slots__ = ("_on_close", "body", "content_type", "headers", "status_code")

    def __init__(
        self,
        body: bytes,
        status: int,
        headers: dict[str, str] | None = None,
        *,
        content_type: str | None = JSON,
    ) -> None:
        self.body = body
        self.status_code = status
        self.headers = dict(headers or {})
        self.content_type = content_type
        self._on_close: list[Callable[[], None]] = []

    def call_on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the server has sent the answer (WSGI's close())."""
        self._on_close.append(callback)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> _Body:
        headers = [("Content-Length", str(len(self.body)))]
        if self.content_type is not None:
            headers.append(("Content-Type", self.content_type))
        headers.extend(self.headers.items())
        start_response(_STATUS_LINES.get(self.status_code, f"{self.status_code} Unknown"), headers)
        # A HEAD answer says how long the body would be, and sends none.
        chunks = [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]
        return _Body(chunks, self._on_close)
