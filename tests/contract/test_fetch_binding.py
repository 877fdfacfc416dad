"""GET .../service_bindings/:binding_id - the spec's Fetching a Service Binding table.

The 404 for "a binding operation is still in progress" needs a broker
mid-operation, so it is in test_concurrency.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.osb_expectations import (
    assert_json,
    assert_osb_error,
    bind_body,
    binding_path,
    bound,
    can_connect,
    deprovision,
    provisioned,
    put_binding,
    unbind,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import SERVICE_ID, SMALL_PLAN, OsbClient, new_id


@pytest.fixture(scope="module")
def bound_pair(broker: BrokerProcess) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """An instance, a read-only binding of it, and the whole bind response."""
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    instance, binding = provisioned(client, new_id()), new_id()
    resp = put_binding(client, instance, binding, json=bind_body(parameters={"read_only": True}))
    assert resp.status_code == 201, resp.text
    yield instance, binding, resp.json()
    assert deprovision(client, instance).status_code == 200


def test_fetch_is_200_with_the_same_credentials_as_the_bind(
    osb: OsbClient, bound_pair: tuple[str, str, dict[str, Any]]
) -> None:
    instance, binding, bind_response = bound_pair
    body = assert_json(osb.request("GET", binding_path(instance, binding)), 200)
    assert body["credentials"] == bind_response["credentials"]
    assert body["endpoints"] == bind_response["endpoints"]
    assert body["parameters"] == {"read_only": True}
    assert can_connect(body["credentials"])


def test_fetch_accepts_the_query_hints(osb: OsbClient, bound_pair: tuple[str, str, dict[str, Any]]) -> None:
    instance, binding, bind_response = bound_pair
    params = {"service_id": SERVICE_ID, "plan_id": SMALL_PLAN}
    body = assert_json(osb.request("GET", binding_path(instance, binding), params=params), 200)
    assert body["credentials"] == bind_response["credentials"]


@pytest.mark.parametrize("hint", ["service_id", "plan_id"])
def test_an_empty_query_hint_is_400(
    osb: OsbClient, bound_pair: tuple[str, str, dict[str, Any]], hint: str
) -> None:
    instance, binding, _ = bound_pair
    resp = osb.request("GET", binding_path(instance, binding), params={hint: ""})
    assert hint in assert_osb_error(resp, 400, "BadRequest")["description"]


def test_fetch_of_an_unknown_binding_is_404(
    osb: OsbClient, bound_pair: tuple[str, str, dict[str, Any]]
) -> None:
    assert_osb_error(osb.request("GET", binding_path(bound_pair[0], new_id())), 404, "NotFound")


def test_fetch_under_another_instance_is_404(
    osb: OsbClient, bound_pair: tuple[str, str, dict[str, Any]]
) -> None:
    # Credentials are only handed out under the instance they belong to.
    resp = osb.request("GET", binding_path(new_id(), bound_pair[1]))
    assert_osb_error(resp, 404, "NotFound")
    assert "password" not in resp.text


def test_fetch_after_unbind_is_404(osb: OsbClient, bound_pair: tuple[str, str, dict[str, Any]]) -> None:
    instance = bound_pair[0]
    binding = new_id()
    bound(osb, instance, binding)
    assert unbind(osb, instance, binding).status_code == 200
    assert_osb_error(osb.request("GET", binding_path(instance, binding)), 404, "NotFound")
