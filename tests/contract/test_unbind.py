"""DELETE .../service_bindings/:binding_id - every row of the spec's Unbinding response table.

Unbinding is synchronous (the login role is dropped within the request), so
there is no 202 and no AsyncRequired; 422 ConcurrencyError is in
test_concurrency.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_empty_object,
    assert_osb_error,
    binding_path,
    bound,
    can_connect,
    deprovision,
    provisioned,
    unbind,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import SERVICE_ID, SMALL_PLAN, OsbClient, new_id

HINTS = {"service_id": SERVICE_ID, "plan_id": SMALL_PLAN}


@pytest.fixture
def probe(pg_cluster: LocalCluster) -> ClusterProbe:
    return ClusterProbe(pg_cluster)


@pytest.fixture(scope="module")
def instance(broker: BrokerProcess) -> Iterator[str]:
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    ident = provisioned(client, new_id())
    yield ident
    assert deprovision(client, ident).status_code == 200


def delete(osb: OsbClient, instance_id: str, binding_id: str, params: dict[str, str]) -> Any:
    return osb.request("DELETE", binding_path(instance_id, binding_id), params=params)


@pytest.mark.parametrize("accepts_incomplete", ["true", "false", None], ids=["true", "false", "absent"])
def test_unbind_is_200_and_the_credentials_stop_working(
    osb: OsbClient, probe: ClusterProbe, instance: str, accepts_incomplete: str | None
) -> None:
    binding = new_id()
    creds = bound(osb, instance, binding)
    params = (
        dict(HINTS) if accepts_incomplete is None else {**HINTS, "accepts_incomplete": accepts_incomplete}
    )
    assert_empty_object(delete(osb, instance, binding, params), 200)
    probe.assert_no_binding(binding)
    assert not can_connect(creds)


def test_unbind_of_what_is_gone_is_410_with_an_empty_body(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    binding = new_id()
    bound(osb, instance, binding)
    assert unbind(osb, instance, binding).status_code == 200
    assert_empty_object(unbind(osb, instance, binding), 410)
    probe.assert_no_binding(binding)


def test_unbind_of_a_binding_never_made_is_410(osb: OsbClient, instance: str) -> None:
    assert_empty_object(unbind(osb, instance, new_id()), 410)


def test_unbind_of_a_binding_of_an_instance_never_made_is_410(osb: OsbClient) -> None:
    assert_empty_object(unbind(osb, new_id(), new_id()), 410)


def test_unbind_under_the_wrong_instance_is_410_and_leaves_the_binding(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    # The binding does not exist *for that instance*; it must survive the mistaken request.
    binding = new_id()
    creds = bound(osb, instance, binding)
    assert_empty_object(unbind(osb, new_id(), binding), 410)
    assert can_connect(creds)
    assert probe.binding_record(binding) is not None


BAD_QUERIES = {
    "missing-service_id": {"plan_id": SMALL_PLAN},
    "missing-plan_id": {"service_id": SERVICE_ID},
    "missing-both": {},
    "empty-plan_id": {"service_id": SERVICE_ID, "plan_id": ""},
    "accepts_incomplete-not-boolean": {**HINTS, "accepts_incomplete": "perhaps"},
}


@pytest.mark.parametrize("params", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_unbind_without_required_query_is_400_and_removes_nothing(
    osb: OsbClient, probe: ClusterProbe, instance: str, params: dict[str, str]
) -> None:
    binding = new_id()
    creds = bound(osb, instance, binding)
    error = assert_osb_error(delete(osb, instance, binding, params), 400, "BadRequest")
    if "accepts_incomplete" in params:
        assert "accepts_incomplete" in error["description"]
    elif "service_id" not in params:
        assert "service_id" in error["description"]
    else:
        assert "plan_id" in error["description"]
    assert can_connect(creds)
    record = probe.binding_record(binding)
    assert record is not None
    assert record["state"] == "ready"
