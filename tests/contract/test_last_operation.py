"""GET .../last_operation for instances and bindings - the spec's two Polling Last Operation tables.

Every operation of the shared plan finishes within its request, so a platform
polls only if it chooses to; the answer for a finished operation is
"succeeded". 410 is "appropriate only for asynchronous delete operations",
which this broker never starts, so an instance or binding that is gone is 404.
"in progress" and "failed" need a broker mid-operation: see test_concurrency.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.osb_expectations import (
    assert_json,
    assert_osb_error,
    binding_path,
    bound,
    deprovision,
    instance_path,
    provisioned,
    unbind,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import SERVICE_ID, SMALL_PLAN, OsbClient, new_id

HINTS = {"service_id": SERVICE_ID, "plan_id": SMALL_PLAN}


@pytest.fixture(scope="module")
def pair(broker: BrokerProcess) -> Iterator[tuple[str, str]]:
    """An instance and one binding of it."""
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    instance, binding = provisioned(client, new_id()), new_id()
    bound(client, instance, binding)
    yield instance, binding
    assert deprovision(client, instance).status_code == 200


def instance_op(instance_id: str) -> str:
    return instance_path(instance_id) + "/last_operation"


def binding_op(instance_id: str, binding_id: str) -> str:
    return binding_path(instance_id, binding_id) + "/last_operation"


# -- service instances -------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, HINTS, {**HINTS, "operation": "provision"}],
    ids=["no-query", "hints", "hints-and-operation"],
)
def test_instance_last_operation_is_200_succeeded(
    osb: OsbClient, pair: tuple[str, str], params: dict[str, str]
) -> None:
    assert assert_json(osb.request("GET", instance_op(pair[0]), params=params), 200) == {"state": "succeeded"}


def test_instance_last_operation_after_an_update_is_succeeded(osb: OsbClient) -> None:
    instance = provisioned(osb, new_id())
    assert osb.update(instance, parameters={"extensions": ["citext"]}).status_code == 200
    assert assert_json(osb.request("GET", instance_op(instance)), 200) == {"state": "succeeded"}
    assert deprovision(osb, instance).status_code == 200


def test_instance_last_operation_of_an_unknown_instance_is_404(osb: OsbClient) -> None:
    assert_osb_error(osb.request("GET", instance_op(new_id()), params=HINTS), 404, "NotFound")


def test_instance_last_operation_after_deprovision_is_404(osb: OsbClient) -> None:
    instance = provisioned(osb, new_id())
    assert deprovision(osb, instance).status_code == 200
    assert_osb_error(osb.request("GET", instance_op(instance)), 404, "NotFound")


@pytest.mark.parametrize("name", ["operation", "service_id", "plan_id"])
def test_instance_last_operation_with_an_empty_query_value_is_400(
    osb: OsbClient, pair: tuple[str, str], name: str
) -> None:
    # operation: "If present, MUST be a non-empty string."
    resp = osb.request("GET", instance_op(pair[0]), params={**HINTS, name: ""})
    assert name in assert_osb_error(resp, 400, "BadRequest")["description"]


# -- service bindings ----------------------------------------------------------------


@pytest.mark.parametrize(
    "params", [{}, HINTS, {**HINTS, "operation": "bind"}], ids=["no-query", "hints", "hints-and-operation"]
)
def test_binding_last_operation_is_200_succeeded(
    osb: OsbClient, pair: tuple[str, str], params: dict[str, str]
) -> None:
    resp = osb.request("GET", binding_op(*pair), params=params)
    assert assert_json(resp, 200) == {"state": "succeeded"}


def test_binding_last_operation_of_an_unknown_binding_is_404(osb: OsbClient, pair: tuple[str, str]) -> None:
    assert_osb_error(osb.request("GET", binding_op(pair[0], new_id())), 404, "NotFound")


def test_binding_last_operation_under_another_instance_is_404(osb: OsbClient, pair: tuple[str, str]) -> None:
    # A binding belongs to one instance; asking about it under another must not find it.
    assert_osb_error(osb.request("GET", binding_op(new_id(), pair[1])), 404, "NotFound")


def test_binding_last_operation_after_unbind_is_404(osb: OsbClient, pair: tuple[str, str]) -> None:
    binding = new_id()
    bound(osb, pair[0], binding)
    assert unbind(osb, pair[0], binding).status_code == 200
    assert_osb_error(osb.request("GET", binding_op(pair[0], binding)), 404, "NotFound")


def test_binding_last_operation_with_an_empty_operation_is_400(osb: OsbClient, pair: tuple[str, str]) -> None:
    resp = osb.request("GET", binding_op(*pair), params={"operation": ""})
    assert "operation" in assert_osb_error(resp, 400, "BadRequest")["description"]
