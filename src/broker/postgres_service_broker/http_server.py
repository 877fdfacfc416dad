"""The broker's HTTP/1.1 server: each request runs on the thread that reads its connection.

Why not a ready-made WSGI server. waitress (which served the broker before)
reads every request on one I/O thread and hands it to a worker thread; the
other pure-Python servers (gunicorn's gthread, cheroot) do the same. Between
two broker requests the machine waits on PostgreSQL, its cores go idle, and
waking a second thread for each request costs more than the rest of the
server's work. Measured on the broker's own lifecycle (provision, bind,
unbind, deprovision against a local cluster, medians of 50 lifecycles, time
outside the backend): 3.85-3.98 ms with waitress, 2.76-2.91 ms with this
server. Here a connection's thread waits for its next request itself, and
when one arrives it parses it, runs the app and writes the answer, with no
hand-off.

What this module does not do itself: parsing HTTP. That is httptools, the
binding to llhttp (Node.js's parser), which also refuses what the RFCs call
ambiguous (a Content-Length next to Transfer-Encoding, bad chunk sizes, bare
CR). This module owns the socket loop and the limits around it:

- at most ``max_requests`` requests in the app at once (the others wait for
  their turn on their own threads, as waitress queued them);
- a thread per connection, at most ``max_connections``; when all are taken,
  the connection that has waited longest for its next request (a second at
  least) is closed to make room (HTTP lets a server close an idle persistent
  connection; clients retry there);
- the header block (431), the body (the app's 413: see ``_Exchange``), the
  time a request may take to arrive (408) and the time a client may idle
  between requests;
- SIGTERM-friendly stop: `close` stops accepting, closes idle connections and
  lets requests already running finish.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import httptools

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

_RECV_BYTES = 64 * 1024
# Proxy headers are dropped: nothing in front of the broker is trusted to set
# them, and the app does not use them (as waitress's clear_untrusted_proxy_headers).
_UNTRUSTED_HEADERS = frozenset(
    {
        "FORWARDED",
        "X_FORWARDED_FOR",
        "X_FORWARDED_HOST",
        "X_FORWARDED_PROTO",
        "X_FORWARDED_PORT",
        "X_FORWARDED_BY",
    }
)


@dataclass(frozen=True)
class ServerLimits:
    max_requests: int = 32
    max_connections: int = 100
    max_header_bytes: int = 64 * 1024
    # Bodies up to this many bytes reach the app whole; beyond it the app is
    # handed the first max_body_bytes + 1 bytes (enough to refuse them with
    # 413) and the connection closes after the answer.
    max_body_bytes: int = 1024 * 1024
    # Longer than the idle timeouts of the routers in front (Cloud Foundry's
    # gorouter keeps backend connections for 90 s), so they close first.
    idle_timeout_s: float = 120.0
    # From a request's first byte to its last, and for each write of an answer.
    request_timeout_s: float = 30.0
    # When every connection is taken, one idle at least this long is closed
    # to make room for a new one; until then the new one waits.
    reclaim_idle_after_s: float = 1.0
    # After refusing a body, how long to read (and drop) the rest the client
    # still sends, so the answer is not lost to a reset.
    drain_timeout_s: float = 2.0


class _Refused(Exception):
    """A request the server answers itself, without the app, and then closes."""

    def __init__(self, status: str, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class _Request:
    url: bytearray = field(default_factory=bytearray)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_bytes: int = 0
    body: list[bytes] = field(default_factory=list)
    body_bytes: int = 0
    method: bytes = b""
    version: str = "1.1"
    keep_alive: bool = True
    # The body went over the limit: the app gets what fits plus one byte.
    truncated: bool = False
    expects_continue: bool = False


class _Exchange:
    """httptools' callbacks for one connection: turns its bytes into whole requests, in order."""

    def __init__(self, limits: ServerLimits) -> None:
        self._limits = limits
        self.current: _Request | None = None
        self.ready: collections.deque[_Request] = collections.deque()
        self.parser = httptools.HttpRequestParser(self)

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            # httptools wraps what a callback raised; a refusal is ours to answer.
            if isinstance(exc.__context__, _Refused):
                raise exc.__context__ from None
            raise

    # -- httptools callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        self.current = _Request()

    def on_url(self, url: bytes) -> None:
        request = self._request()
        request.url += url
        self._count_header(request, len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._request()
        request.headers.append((name, value))
        self._count_header(request, len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        request = self._request()
        request.method = self.parser.get_method()
        request.version = self.parser.get_http_version()
        request.keep_alive = bool(self.parser.should_keep_alive()) and request.version == "1.1"
        length = _header(request, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self._limits.max_body_bytes:
            # Not worth reading: the app refuses it from its Content-Length alone.
            request.truncated = True
            self._finish(request)
        elif (_header(request, b"expect") or b"").lower() == b"100-continue":
            request.expects_continue = True

    def on_body(self, body: bytes) -> None:
        request = self._request()
        if request.truncated:
            return
        room = self._limits.max_body_bytes + 1 - request.body_bytes
        request.body.append(body[:room])
        request.body_bytes += min(len(body), room)
        if len(body) > room - 1 and request.body_bytes > self._limits.max_body_bytes:
            request.truncated = True
            self._finish(request)

    def on_message_complete(self) -> None:
        request = self._request()
        if not request.truncated:
            self._finish(request)
        self.current = None

    # -- helpers ------------------------------------------------------------

    def _request(self) -> _Request:
        if self.current is None:  # pragma: no cover - llhttp always begins a message first
            self.current = _Request()
        return self.current

    def _count_header(self, request: _Request, size: int) -> None:
        request.header_bytes += size
        if request.header_bytes > self._limits.max_header_bytes:
            raise _Refused(
                "431 Request Header Fields Too Large",
                "RequestHeaderFieldsTooLarge",
                f"the request line and headers are larger than {self._limits.max_header_bytes} bytes",
            )

    def _finish(self, request: _Request) -> None:
        self.ready.append(request)


def _header(request: _Request, name: bytes) -> bytes | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value
    return None


def _error_body(error: str, description: str) -> bytes:
    """An error body in the OSB API's shape, for the answers the server gives itself."""
    return json.dumps({"error": error, "description": description}).encode()


def _response_bytes(
    status: str, headers: Iterable[tuple[str, str]], body: bytes, *, keep_alive: bool, send_body: bool = True
) -> bytes:
    """A whole answer: status line, headers (with Content-Length and Date added), then the body."""
    lines = [f"HTTP/1.1 {status}\r\n"]
    has_length = False
    for name, value in headers:
        if name.lower() == "content-length":
            has_length = True
        lines.append(f"{name}: {value}\r\n")
    if not has_length:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append(f"Date: {formatdate(usegmt=True)}\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("latin-1")
    return head + body if send_body else head


def _refusal_bytes(refused: _Refused) -> bytes:
    return _response_bytes(
        refused.status,
        [("Content-Type", "application/json")],
        _error_body(refused.error, refused.description),
        keep_alive=False,
    )


class _Closed(Exception):
    """The client went away, or its connection was closed to make room or to stop."""


class _Connection:
    def __init__(self, server: WsgiServer, sock: socket.socket, address: Any) -> None:
        self.server = server
        self.sock = sock
        self.address = address
        self.reclaimed = False

    # -- reading -------------------------------------------------------------

    def _recv(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(_RECV_BYTES)
        except TimeoutError:
            raise
        except OSError:
            raise _Closed() from None
        return data

    def _next_request(self, exchange: _Exchange) -> _Request | None:
        """The next whole request (or one whose body is over the limit), or None if the client left."""
        if exchange.ready:
            return exchange.ready.popleft()
        limits = self.server.limits
        data = b""
        if exchange.current is None:
            # Between requests: the connection is idle and may be reclaimed.
            # (A request already begun, pipelined behind the last one, is not.)
            if not self.server._mark_idle(self):
                return None
            try:
                data = self._recv(limits.idle_timeout_s)
            except TimeoutError:
                self.server._mark_busy(self)
                return None
            if not self.server._mark_busy(self) or not data:
                return None
        deadline = time.monotonic() + limits.request_timeout_s
        continued = False
        while True:
            try:
                if data:
                    exchange.feed(data)
            except httptools.HttpParserUpgrade:
                # Upgrades are not offered: serve what was asked, then close.
                if not exchange.ready:
                    raise _Refused(
                        "400 Bad Request", "BadRequest", "protocol upgrades are not supported"
                    ) from None
                exchange.ready[-1].keep_alive = False
            if exchange.ready:
                return exchange.ready.popleft()
            request = exchange.current
            if request is not None and request.expects_continue and not continued:
                self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                continued = True
            try:
                data = self._recv(deadline - time.monotonic())
            except TimeoutError:
                raise _Refused(
                    "408 Request Timeout",
                    "RequestTimeout",
                    f"the request did not arrive whole within {limits.request_timeout_s:.0f} seconds",
                ) from None
            if not data:
                return None

    # -- the loop ------------------------------------------------------------

    def serve(self) -> None:
        exchange = _Exchange(self.server.limits)
        try:
            while not self.server.stopping:
                request = self._next_request(exchange)
                if request is None:
                    return
                if not self._answer(request) or self.server.stopping:
                    return
        except _Refused as refused:
            self._send_quietly(_refusal_bytes(refused))
            self._drain()
        except httptools.HttpParserError as exc:
            reason = str(exc)[:200] or "malformed"
            self._send_quietly(
                _refusal_bytes(_Refused("400 Bad Request", "BadRequest", f"malformed HTTP request: {reason}"))
            )
            self._drain()
        except (_Closed, TimeoutError):
            pass
        except Exception:
            log.exception("connection from %s failed", self.address)
        finally:
            self.sock.close()

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.sock.settimeout(self.server.limits.request_timeout_s)
            self.sock.sendall(data)
        except OSError:
            pass

    def _drain(self) -> None:
        """Half-close and read what the client still sends, so it sees the answer, not a reset."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.server.limits.drain_timeout_s
            left = 8 * self.server.limits.max_body_bytes
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                data = self.sock.recv(_RECV_BYTES)
                if not data:
                    break
                left -= len(data)
        except OSError:
            pass

    def _answer(self, request: _Request) -> bool:
        """Run the app for one request and send its answer; whether the connection stays open."""
        environ = self.server._environ(request, self.address)
        keep_alive = request.keep_alive and not request.truncated
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            # Nothing is sent before the app returns, so a second call (with
            # exc_info, after an error) simply replaces the first (PEP 3333).
            started[:] = [status, headers]
            return written.append

        written: list[bytes] = []
        result: Iterable[bytes] | None = None
        try:
            with self.server.app_turns:
                result = self.server.app(environ, start_response)
                body = b"".join([*written, *result])
            status, headers = started[0], started[1]
        except Exception:
            log.exception("the app failed on %s", json.dumps(request.url[:300].decode("latin-1")))
            status, headers, keep_alive = (
                "500 Internal Server Error",
                [("Content-Type", "application/json")],
                False,
            )
            body = _error_body("InternalError", "the broker failed; see its logs")
        send_body = request.method != b"HEAD"
        out = _response_bytes(status, headers, body, keep_alive=keep_alive, send_body=send_body)
        try:
            self.sock.settimeout(self.server.limits.request_timeout_s)
            self.sock.sendall(out)
        except OSError:
            raise _Closed() from None
        finally:
            # WSGI's close() comes after the last byte: the app's audit line is written then.
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing the app's answer failed")
        if request.truncated:
            self._drain()
        return keep_alive


class WsgiServer:
    """Serves a WSGI app on (host, port) until `close`; `serve_forever` runs the accept loop."""

    def __init__(self, app: WSGIApplication, host: str, port: int, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=1024)
        self.port: int = self._listener.getsockname()[1]
        self.stopping = False
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._idle: dict[_Connection, float] = {}
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        # Taken by a connection's thread for as long as the app runs its request.
        self.app_turns = threading.BoundedSemaphore(limits.max_requests)
        self._environ_base: dict[str, Any] = {
            "SERVER_NAME": host,
            "SERVER_PORT": str(self.port),
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            # The whole body is read before the app runs: it may read to the end.
            "wsgi.input_terminated": True,
        }

    # -- accept loop ---------------------------------------------------------

    def serve_forever(self) -> None:
        while not self.stopping:
            try:
                sock, address = self._listener.accept()
            except OSError:
                if self.stopping:
                    return
                # Out of file descriptors, say: wait for connections to close.
                time.sleep(0.1)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._take_slot()
            connection = _Connection(self, sock, address)
            with self._lock:
                self._connections.add(connection)
            try:
                threading.Thread(
                    target=self._run, args=(connection,), name="http-connection", daemon=True
                ).start()
            except RuntimeError:
                # No thread to be had (a process limit): refuse this one, serve on.
                log.error("no thread for a new connection from %s; closed it", address)
                with self._lock:
                    self._connections.discard(connection)
                self._slots.release()
                sock.close()

    def _take_slot(self) -> None:
        while not self._slots.acquire(timeout=0.05):
            self._reclaim_idle()

    def _reclaim_idle(self) -> None:
        with self._lock:
            if not self._idle:
                return
            victim = min(self._idle, key=self._idle.__getitem__)
            if time.monotonic() - self._idle[victim] < self.limits.reclaim_idle_after_s:
                # A client between two requests in quick succession would
                # likely send its next one as the connection closes.
                return
            del self._idle[victim]
            victim.reclaimed = True
        _shutdown(victim.sock)

    def _run(self, connection: _Connection) -> None:
        try:
            connection.serve()
        finally:
            with self._lock:
                self._connections.discard(connection)
                self._idle.pop(connection, None)
            self._slots.release()

    def _mark_idle(self, connection: _Connection) -> bool:
        with self._lock:
            if connection.reclaimed or self.stopping:
                return False
            self._idle[connection] = time.monotonic()
            return True

    def _mark_busy(self, connection: _Connection) -> bool:
        """False if the connection was closed while idle: a request read then is dropped."""
        with self._lock:
            self._idle.pop(connection, None)
            return not connection.reclaimed

    # -- requests ------------------------------------------------------------

    def _environ(self, request: _Request, address: Any) -> WSGIEnvironment:
        url = bytes(request.url)
        parsed = httptools.parse_url(url)
        environ: dict[str, Any] = dict(self._environ_base)
        environ["REQUEST_METHOD"] = request.method.decode("latin-1")
        environ["PATH_INFO"] = unquote_to_bytes(parsed.path or b"/").decode("latin-1")
        environ["QUERY_STRING"] = (parsed.query or b"").decode("latin-1")
        environ["REQUEST_URI"] = environ["RAW_URI"] = url.decode("latin-1")
        environ["SERVER_PROTOCOL"] = f"HTTP/{request.version}"
        environ["REMOTE_ADDR"] = str(address[0]) if address else ""
        environ["wsgi.input"] = io.BytesIO(b"".join(request.body))
        for raw_name, raw_value in request.headers:
            name = raw_name.decode("latin-1").upper()
            if "_" in name:
                # X-Foo_Bar would land on the same key as X-Foo-Bar: drop it (as waitress does).
                continue
            key = name.replace("-", "_")
            if key in _UNTRUSTED_HEADERS:
                continue
            value = raw_value.decode("latin-1").strip()
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            environ[key] = f"{environ[key]}, {value}" if key in environ else value
        if environ.pop("HTTP_TRANSFER_ENCODING", None) is not None:
            # The chunks are decoded already, and the body arrived whole (or one
            # byte over the limit): the app sees a plain body of that length,
            # so it refuses an oversized one by its size, as any other.
            environ["CONTENT_LENGTH"] = str(request.body_bytes)
        return environ

    # -- stop ----------------------------------------------------------------

    def close(self, grace_s: float = 10.0) -> None:
        """Stop accepting, close idle connections, and wait up to `grace_s` for running requests."""
        with self._lock:
            self.stopping = True
            idle = list(self._idle)
            self._idle.clear()
            for connection in idle:
                connection.reclaimed = True
        # shutdown() wakes an accept() blocked on another thread; close() alone does not.
        _shutdown(self._listener)
        self._listener.close()
        for connection in idle:
            _shutdown(connection.sock)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections:
                    return
            time.sleep(0.02)
        log.warning("stopped with requests still running")


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
