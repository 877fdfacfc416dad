"""HTTP around the OSB routes: oversized bodies (413), wrong methods (405), unknown paths (404).

Whatever goes wrong at this level, a platform still gets an OSB error body
(JSON with "error" and "description"), never an HTML page from the web stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_json,
    assert_osb_error,
    deprovision,
    instance_path,
    provision_body,
    put_instance,
)
from tests.support.broker_process import BrokerProcess
from tests.support.osb_client import OsbClient, new_id

MAX_BODY = 1024 * 1024  # the broker's default max_request_bytes


def padded_provision_body(total_bytes: int) -> bytes:
    """A valid provision request exactly `total_bytes` long, padded in a vendor extension field."""
    doc = provision_body(**{"x-padding": ""})
    bare = len(json.dumps(doc).encode())
    doc["x-padding"] = "p" * (total_bytes - bare)
    raw = json.dumps(doc).encode()
    assert len(raw) == total_bytes
    return raw


def chunks(raw: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A generator body: requests sends it with Transfer-Encoding: chunked and no Content-Length."""
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


# -- 413 Payload Too Large -----------------------------------------------------------


def test_body_over_the_limit_with_content_length_is_413(osb: OsbClient, pg_cluster: LocalCluster) -> None:
    instance = new_id()
    resp = put_instance(osb, instance, data=padded_provision_body(MAX_BODY + 1))
    assert resp.request.headers["Content-Length"] == str(MAX_BODY + 1)
    body = assert_osb_error(resp, 413, "PayloadTooLarge")
    assert str(MAX_BODY) in body["description"]
    ClusterProbe(pg_cluster).assert_no_instance(instance)


def test_body_over_the_limit_sent_chunked_is_413(osb: OsbClient, pg_cluster: LocalCluster) -> None:
    # Without a Content-Length the size is only known while reading; the limit must still hold.
    instance = new_id()
    resp = put_instance(
        osb,
        instance,
        data=chunks(padded_provision_body(MAX_BODY + 512 * 1024)),
        headers={"Content-Type": "application/json"},
    )
    assert resp.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in resp.request.headers
    assert_osb_error(resp, 413, "PayloadTooLarge")
    ClusterProbe(pg_cluster).assert_no_instance(instance)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_of_exactly_the_limit_is_accepted(
    osb: OsbClient, pg_cluster: LocalCluster, chunked: bool
) -> None:
    instance = new_id()
    raw = padded_provision_body(MAX_BODY)
    resp = put_instance(
        osb, instance, data=chunks(raw) if chunked else raw, headers={"Content-Type": "application/json"}
    )
    assert assert_json(resp, 201) == {}
    ClusterProbe(pg_cluster).assert_instance_ready(instance)
    assert deprovision(osb, instance).status_code == 200


def test_credentials_are_checked_before_the_body_size(broker: BrokerProcess) -> None:
    resp = requests.put(
        broker.url + instance_path(new_id()),
        data=padded_provision_body(MAX_BODY + 1),
        headers={"X-Broker-API-Version": "2.17"},
        timeout=30,
    )
    assert_osb_error(resp, 401, "Unauthorized")


# -- 405 Method Not Allowed --------------------------------------------------------------

WRONG_METHODS = {
    "POST-catalog": ("POST", "/v2/catalog", {"GET"}),
    "DELETE-catalog": ("DELETE", "/v2/catalog", {"GET"}),
    "POST-instance": ("POST", "/v2/service_instances/{i}", {"PUT", "PATCH", "DELETE", "GET"}),
    "PATCH-binding": ("PATCH", "/v2/service_instances/{i}/service_bindings/{b}", {"PUT", "DELETE", "GET"}),
    "PUT-last-operation": ("PUT", "/v2/service_instances/{i}/last_operation", {"GET"}),
}


@pytest.mark.parametrize(("method", "template", "allowed"), WRONG_METHODS.values(), ids=WRONG_METHODS.keys())
def test_wrong_method_is_405_with_an_osb_body_and_allow(
    osb: OsbClient, method: str, template: str, allowed: set[str]
) -> None:
    resp = osb.request(method, template.format(i=new_id(), b=new_id()), json={})
    body = assert_osb_error(resp, 405, "MethodNotAllowed")
    assert method in body["description"]
    allow = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed <= allow
    assert method not in allow


# -- unknown paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v2",
        "/v2/",
        "/v2/catalogue",
        "/v3/catalog",
        "/v2/service_instances",
        "/v2/service_instances/",
        "/v2/service_instances/{i}/service_bindings",
        "/v2/service_instances/{i}/service_bindings/",
        "/v2/service_instances/{i}/last_operation/extra",
        "/v2/service_bindings/{b}",
        "/admin",
        "/../../etc/passwd",
    ],
)
def test_unknown_path_is_404_with_an_osb_body(osb: OsbClient, path: str) -> None:
    resp = osb.request("GET", path.format(i=new_id(), b=new_id()))
    assert_osb_error(resp, 404, "NotFound")


def test_put_without_an_instance_id_is_404(osb: OsbClient) -> None:
    resp = osb.request("PUT", "/v2/service_instances/", json=provision_body())
    assert_osb_error(resp, 404, "NotFound")
