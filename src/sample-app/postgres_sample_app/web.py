"""The HTTP side: ``GET /health``, ``POST /rows`` and ``GET /rows``, answered in JSON.

The standard library's threaded server is enough for a test app and keeps
its only dependency psycopg. Without a usable binding every route except an
unknown one answers 503 with the reason, so a person (or a smoke test) sees
at once why the app cannot reach its database.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from postgres_sample_app.rows import DatabaseUnavailable, RowStore

MAX_BODY_BYTES = 64 * 1024
ROUTES = {"/health": ("GET",), "/rows": ("GET", "POST")}

log = logging.getLogger("postgres_sample_app")


@dataclass(frozen=True)
class AppState:
    """The store to use, or why there is none (exactly one of the two is set)."""

    store: RowStore | None
    problem: str | None = None


class _Handler(BaseHTTPRequestHandler):
    server_version = "postgres-sample-app"
    sys_version = ""
    state: AppState  # set on the subclass that create_server makes

    # -- plumbing ---------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        # No access log: the platform's router logs requests already.
        pass

    def _send(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _unavailable(self, reason: str) -> None:
        self._send(503, {"status": "unavailable", "reason": reason})

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        allowed = ROUTES.get(path)
        if allowed is None:
            self._send(404, {"error": f"no such path: {path}; try /health or /rows"})
            return
        if method not in allowed:
            self._send(405, {"error": f"{method} is not allowed on {path}"}, {"Allow": ", ".join(allowed)})
            return
        if method == "POST":
            # Read the body even when the answer is 503, so the client sees the answer.
            body = self._read_body()
            if body is None:
                return
        state = self.state
        if state.store is None:
            self._unavailable(state.problem or "no database")
            return
        try:
            if path == "/health":
                state.store.ping()
                self._send(200, {"status": "ok"})
            elif method == "GET":
                self._send(200, state.store.all())
            else:
                self._send(201, state.store.add(body))
        except DatabaseUnavailable as exc:
            self.log_error("%s", exc)
            self._unavailable(str(exc))

    def _read_body(self) -> str | None:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._send(411, {"error": "send the row as the request body, with a Content-Length"})
            return None
        try:
            length = int(length_header)
        except ValueError:
            self._send(400, {"error": "Content-Length is not a number"})
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, {"error": f"a row may have at most {MAX_BODY_BYTES} bytes"})
            return None
        raw = self.rfile.read(length)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._send(400, {"error": "the body must be UTF-8 text"})
            return None
        if "\x00" in text:
            self._send(400, {"error": "the body must not contain NUL characters"})
            return None
        return text

    # -- methods ----------------------------------------------------------

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def log_error(self, format: str, *args: Any) -> None:
        log.warning(format, *args)


def create_server(state: AppState, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: any free port), not yet serving."""
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
