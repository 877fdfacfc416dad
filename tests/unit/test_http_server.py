"""The broker's HTTP server over real sockets, with a small WSGI app that reports what it was given."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from postgres_service_broker.http_server import ServerLimits, WsgiServer

MAX_BODY = 1000


class Recorder:
    """A WSGI app that answers with what it saw: the environ's keys of interest and the body."""

    def __init__(self) -> None:
        self.closed: list[float] = []
        self.threads: list[int] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._running = 0
        self.most_at_once = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.threads.append(threading.get_ident())
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("the app failed")
        with self._lock:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            self._running -= 1
        body = environ["wsgi.input"].read()
        seen = {
            "method": environ["REQUEST_METHOD"],
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "uri": environ["REQUEST_URI"],
            "length": environ.get("CONTENT_LENGTH"),
            "body_bytes": len(body),
            "body": body[:50].decode("latin-1"),
            "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        }
        out = json.dumps(seen).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        recorder = self

        class Answer(list[bytes]):
            def close(self) -> None:
                recorder.closed.append(time.monotonic())

        return Answer([out])


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _start(app: Recorder, **limits: Any) -> Iterator[WsgiServer]:
    server = WsgiServer(app, "127.0.0.1", 0, ServerLimits(max_body_bytes=MAX_BODY, **limits))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.close(grace_s=2)
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[WsgiServer]:
    yield from _start(recorder)


def _connect(server: WsgiServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


# Bytes read past an answer (the next pipelined one), by socket.
_leftover: dict[int, bytes] = {}


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One answer off the socket: status, headers (lower-case names), body."""
    data = _leftover.pop(id(sock), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        rest += chunk
    _leftover[id(sock)] = rest[length:]
    return status, headers, rest[:length]


def _is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_answers_several_requests_on_one_connection_on_its_own_thread(
    server: WsgiServer, recorder: Recorder
) -> None:
    with _connect(server) as sock:
        for i in range(3):
            sock.sendall(f"GET /v2/catalog?n={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, headers, body = _read_answer(sock)
            assert status == 200
            assert json.loads(body)["query"] == f"n={i}"
            assert "date" in headers
            assert "connection" not in headers
    # No hand-off to another thread per request: the point of this server.
    assert len(set(recorder.threads)) == 1
    assert recorder.threads[0] != threading.get_ident()


def test_pipelined_requests_are_answered_in_order(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answers = [json.loads(_read_answer(sock)[2]) for _ in range(3)]
    assert [a["path"] for a in answers] == ["/a", "/b", "/c"]
    assert answers[1]["body"] == "abc"


def test_request_begun_behind_another_is_finished_when_its_rest_arrives(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nPUT /second HTTP/1.1\r\nHost: x\r\nContent-Le")
        assert json.loads(_read_answer(sock)[2])["path"] == "/first"
        time.sleep(0.1)
        sock.sendall(b"ngth: 2\r\n\r\nok")
        seen = json.loads(_read_answer(sock)[2])
    assert seen["path"] == "/second"
    assert seen["body"] == "ok"


def test_path_is_percent_decoded_and_the_raw_target_kept(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /v2/service_instances/a%2Fb%C3%A9?x=%20 HTTP/1.1\r\nHost: x\r\n\r\n")
        seen = json.loads(_read_answer(sock)[2])
    # PEP 3333: PATH_INFO carries the decoded bytes as latin-1 text.
    assert seen["path"] == "/v2/service_instances/a/b\u00c3\u00a9"
    assert seen["uri"] == "/v2/service_instances/a%2Fb%C3%A9?x=%20"
    assert seen["query"] == "x=%20"


def test_chunked_body_reaches_the_app_decoded_with_its_length(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        status, _, body = _read_answer(sock)
    seen = json.loads(body)
    assert status == 200
    assert seen["body"] == "hello world"
    assert seen["length"] == "11"
    assert "HTTP_TRANSFER_ENCODING" not in seen["headers"]


def test_body_over_the_limit_with_content_length_is_not_read_and_the_connection_closes(
    server: WsgiServer,
) -> None:
    with _connect(server) as sock:
        # The whole body is sent, as most clients do before they read: the
        # answer must still arrive, not be lost to a reset.
        sock.sendall(
            f"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY * 50}\r\n\r\n".encode()
            + b"a" * (MAX_BODY * 50)
        )
        status, headers, body = _read_answer(sock)
        seen = json.loads(body)
        assert status == 200
        assert seen["length"] == str(MAX_BODY * 50)  # the app refuses it by its length
        assert seen["body_bytes"] <= MAX_BODY + 1
        assert headers["connection"] == "close"
        assert _is_closed(sock)


def test_chunked_body_over_the_limit_reaches_the_app_one_byte_over(server: WsgiServer) -> None:
    with _connect(server) as sock:
        chunk = b"a" * 400
        sock.sendall(
            b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"190\r\n" + chunk + b"\r\n" for _ in range(10))
            + b"0\r\n\r\n"
        )
        status, headers, body = _read_answer(sock)
        seen = json.loads(body)
        assert status == 200
        assert seen["body_bytes"] == MAX_BODY + 1
        assert seen["length"] == str(MAX_BODY + 1)
        assert headers["connection"] == "close"


def test_body_of_exactly_the_limit_is_whole_and_keeps_the_connection(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            f"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY}\r\n\r\n".encode() + b"b" * MAX_BODY
        )
        _status, headers, body = _read_answer(sock)
        assert json.loads(body)["body_bytes"] == MAX_BODY
        assert "connection" not in headers
        sock.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert json.loads(_read_answer(sock)[2])["path"] == "/again"


def test_oversized_header_block_is_431_with_an_error_body(server: WsgiServer, recorder: Recorder) -> None:
    with _connect(server) as sock:
        padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 60) for i in range(2000))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + padding + b"\r\n")
        status, headers, body = _read_answer(sock)
        assert status == 431
        assert json.loads(body)["error"] == "RequestHeaderFieldsTooLarge"
        assert headers["connection"] == "close"
        assert _is_closed(sock)
    assert recorder.threads == []


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        # Both framings at once: the classic request-smuggling shape.
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ],
    ids=["garbage", "content-length-and-chunked", "bad-length", "bad-header"],
)
def test_malformed_requests_get_400_and_never_reach_the_app(
    server: WsgiServer, recorder: Recorder, raw: bytes
) -> None:
    with _connect(server) as sock:
        sock.sendall(raw)
        status, _, body = _read_answer(sock)
        assert status == 400
        assert json.loads(body)["error"] == "BadRequest"
        assert _is_closed(sock)
    assert recorder.threads == []


def test_request_that_stops_halfway_gets_408(recorder: Recorder) -> None:
    for server in _start(recorder, request_timeout_s=0.3):
        with _connect(server) as sock:
            sock.sendall(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            status, _, body = _read_answer(sock)
            assert status == 408
            assert json.loads(body)["error"] == "RequestTimeout"
            assert _is_closed(sock)
    assert recorder.threads == []


def test_idle_connection_is_closed_after_the_idle_timeout(recorder: Recorder) -> None:
    for server in _start(recorder, idle_timeout_s=0.3):
        with _connect(server) as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_answer(sock)[0] == 200
            started = time.monotonic()
            assert _is_closed(sock)
            assert 0.2 < time.monotonic() - started < 3


def test_http_1_0_closes_after_the_answer(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /x HTTP/1.0\r\n\r\n")
        _, headers, _ = _read_answer(sock)
        assert headers["connection"] == "close"
        assert _is_closed(sock)


def test_head_answer_has_the_length_but_no_body(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    head_answer, _, rest = data.partition(b"\r\n\r\n")
    assert b"Content-Length:" in head_answer
    # The next answer follows the HEAD answer's headers at once: no body in between.
    assert rest.startswith(b"HTTP/1.1 200")


def test_headers_reach_the_app_as_wsgi_says_without_spoofable_ones(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"GET /x HTTP/1.1\r\nHost: x\r\nX-Broker-API-Version: 2.17\r\n"
            b"X-Broker_API-Version: 9.99\r\nX-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n"
            b"Accept: a\r\nAccept: b\r\n\r\n"
        )
        headers = json.loads(_read_answer(sock)[2])["headers"]
    assert headers["HTTP_X_BROKER_API_VERSION"] == "2.17"
    assert headers["HTTP_ACCEPT"] == "a, b"
    assert "HTTP_X_FORWARDED_FOR" not in headers
    assert "HTTP_FORWARDED" not in headers


def test_expect_100_continue_is_answered_before_the_body(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        status, _, body = _read_answer(sock)
    assert status == 200
    assert json.loads(body)["body"] == "data"


def test_an_app_that_raises_gets_a_500_error_body(server: WsgiServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = _read_answer(sock)
        assert status == 500
        assert json.loads(body)["error"] == "InternalError"
        assert "the app failed" not in body.decode()
        assert headers["connection"] == "close"


def test_answer_is_closed_after_its_last_byte_is_sent(server: WsgiServer, recorder: Recorder) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        _read_answer(sock)
        received = time.monotonic()
        deadline = received + 5
        while not recorder.closed and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(recorder.closed) == 1


def test_idle_connections_make_room_when_every_slot_is_taken(recorder: Recorder) -> None:
    for server in _start(recorder, max_connections=2, reclaim_idle_after_s=0.3):
        idle = [_connect(server) for _ in range(2)]
        try:
            for sock in idle:
                sock.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _read_answer(sock)[0] == 200
            with _connect(server) as third:
                started = time.monotonic()
                third.sendall(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
                assert json.loads(_read_answer(third)[2])["path"] == "/third"
                # Not before the idle one had been idle long enough.
                assert time.monotonic() - started > 0.1
            # The connection idle longest was closed to make that room.
            assert _is_closed(idle[0])
        finally:
            for sock in idle:
                sock.close()


def test_close_lets_a_running_request_finish_and_closes_idle_connections(recorder: Recorder) -> None:
    server = WsgiServer(recorder, "127.0.0.1", 0, ServerLimits(max_body_bytes=MAX_BODY))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    idle = _connect(server)
    idle.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _read_answer(idle)[0] == 200
    busy = _connect(server)
    recorder.delay_s = 0.5
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)  # the slow request is running
    started = time.monotonic()
    server.close(grace_s=5)
    assert time.monotonic() - started < 3
    status, _, body = _read_answer(busy)
    assert status == 200
    assert json.loads(body)["path"] == "/slow"
    assert _is_closed(busy)
    assert _is_closed(idle)
    thread.join(timeout=5)
    assert not thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        _connect(server)
    idle.close()
    busy.close()


def test_requests_past_max_requests_wait_for_their_turn(recorder: Recorder) -> None:
    recorder.delay_s = 0.2
    for server in _start(recorder, max_requests=2):
        socks = [_connect(server) for _ in range(5)]
        try:
            for i, sock in enumerate(socks):
                sock.sendall(f"GET /r{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            paths = [json.loads(_read_answer(sock)[2])["path"] for sock in socks]
        finally:
            for sock in socks:
                sock.close()
    assert paths == [f"/r{i}" for i in range(5)]
    assert recorder.most_at_once == 2
