"""The app's router and its WSGI answers, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from postgres_service_broker.osb.answers import Answer
from postgres_service_broker.osb.routing import Routes


def _view(name: str) -> Any:
    def view(**_args: str) -> str:
        return name

    return view


@pytest.fixture
def routes() -> Routes:
    r = Routes()
    r.add("GET", "/v2/catalog", _view("catalog"))
    r.add("PUT", "/v2/service_instances/<instance_id>", _view("provision"))
    r.add("GET", "/v2/service_instances/<instance_id>", _view("fetch"))
    r.add("GET", "/v2/service_instances/<instance_id>/last_operation", _view("last_operation"))
    r.add("PUT", "/v2/service_instances/<instance_id>/service_bindings/<binding_id>", _view("bind"))
    return r


def test_ids_are_taken_from_their_segments(routes: Routes) -> None:
    view, args = routes.match("/v2/service_instances/i-1/service_bindings/b 2", "PUT")
    assert view() == "bind"
    assert args == {"instance_id": "i-1", "binding_id": "b 2"}


def test_a_fixed_segment_beats_nothing_and_must_match_exactly(routes: Routes) -> None:
    assert routes.match("/v2/service_instances/x/last_operation", "GET")[0]() == "last_operation"
    with pytest.raises(NotFound):
        routes.match("/v2/service_instances/x/last_operations", "GET")


@pytest.mark.parametrize(
    "path",
    [
        "/v2/catalog/",
        "/v2//catalog",
        "//v2/catalog",
        "/v2/service_instances/",
        "/v2/service_instances//x",
        "/",
    ],
)
def test_trailing_doubled_or_empty_segments_match_nothing(routes: Routes, path: str) -> None:
    with pytest.raises(NotFound):
        routes.match(path, "GET")


def test_get_answers_head_too(routes: Routes) -> None:
    assert routes.match("/v2/catalog", "HEAD")[0]() == "catalog"


def test_wrong_method_names_the_allowed_ones(routes: Routes) -> None:
    with pytest.raises(MethodNotAllowed) as raised:
        routes.match("/v2/service_instances/x", "DELETE")
    assert raised.value.valid_methods == ["GET", "HEAD", "PUT"]


class _StartResponse:
    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status, self.headers = status, headers


def test_answer_sends_status_length_type_and_extra_headers() -> None:
    start = _StartResponse()
    body = list(Answer(b'{"a": 1}', 201, {"Retry-After": "10"})({"REQUEST_METHOD": "PUT"}, start))
    assert start.status == "201 Created"
    assert dict(start.headers) == {
        "Content-Length": "8",
        "Content-Type": "application/json",
        "Retry-After": "10",
    }
    assert body == [b'{"a": 1}']


def test_head_answer_keeps_the_length_and_drops_the_body() -> None:
    start = _StartResponse()
    body = list(Answer(b"{}", 200)({"REQUEST_METHOD": "HEAD"}, start))
    assert dict(start.headers)["Content-Length"] == "2"
    assert body == []


def test_callbacks_run_when_the_server_closes_the_answer() -> None:
    ran: list[str] = []
    answer = Answer(b"", 200, content_type=None)
    answer.call_on_close(lambda: ran.append("audit"))
    body = answer({"REQUEST_METHOD": "OPTIONS"}, _StartResponse())
    assert ran == []
    body.close()
    assert ran == ["audit"]
