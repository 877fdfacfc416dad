"""DELETE /v2/service_instances/:instance_id - every row of the spec's Deprovisioning response table.

Deprovisioning is synchronous (DROP DATABASE ... WITH (FORCE)), so there is
no 202 and no AsyncRequired; 422 ConcurrencyError is in test_concurrency.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from postgres_service_broker.backends.shared_names import InstanceNames
from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_empty_object,
    assert_osb_error,
    bound,
    can_connect,
    deprovision,
    instance_path,
    provisioned,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import SERVICE_ID, SMALL_PLAN, OsbClient, new_id

HINTS = {"service_id": SERVICE_ID, "plan_id": SMALL_PLAN}


@pytest.fixture
def probe(pg_cluster: LocalCluster) -> ClusterProbe:
    return ClusterProbe(pg_cluster)


def delete(osb: OsbClient, instance_id: str, params: dict[str, str]) -> Any:
    return osb.request("DELETE", instance_path(instance_id), params=params)


@pytest.mark.parametrize("accepts_incomplete", ["true", None], ids=["true", "absent"])
def test_deprovision_is_200_and_removes_everything(
    osb: OsbClient, probe: ClusterProbe, accepts_incomplete: str | None
) -> None:
    instance = provisioned(osb, new_id())
    binding = new_id()
    creds = bound(osb, instance, binding)
    params = (
        dict(HINTS) if accepts_incomplete is None else {**HINTS, "accepts_incomplete": accepts_incomplete}
    )
    assert_empty_object(delete(osb, instance, params), 200)
    probe.assert_no_instance(instance)
    probe.assert_no_binding(binding)
    assert not can_connect(creds)


def test_deprovision_of_what_is_gone_is_410_with_an_empty_body(osb: OsbClient, probe: ClusterProbe) -> None:
    instance = provisioned(osb, new_id())
    assert deprovision(osb, instance).status_code == 200
    # The platform retries deletes (orphan mitigation): the second one must say "already gone".
    assert_empty_object(deprovision(osb, instance), 410)
    probe.assert_no_instance(instance)


def test_deprovision_of_an_instance_never_made_is_410(osb: OsbClient, probe: ClusterProbe) -> None:
    instance = new_id()
    assert_empty_object(deprovision(osb, instance), 410)
    probe.assert_no_instance(instance)


BAD_QUERIES = {
    "missing-service_id": {"plan_id": SMALL_PLAN},
    "missing-plan_id": {"service_id": SERVICE_ID},
    "missing-both": {},
    "empty-service_id": {"service_id": "", "plan_id": SMALL_PLAN},
    "empty-plan_id": {"service_id": SERVICE_ID, "plan_id": ""},
    "accepts_incomplete-not-boolean": {**HINTS, "accepts_incomplete": "maybe"},
}


@pytest.fixture(scope="module")
def untouched(broker: BrokerProcess) -> Iterator[tuple[str, dict[str, Any]]]:
    """An instance with a binding that every refused delete in this module is sent to."""
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    instance = provisioned(client, new_id())
    yield instance, bound(client, instance, new_id())
    assert deprovision(client, instance).status_code == 200


@pytest.mark.parametrize("params", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_deprovision_without_required_query_is_400_and_deletes_nothing(
    osb: OsbClient, probe: ClusterProbe, untouched: tuple[str, dict[str, Any]], params: dict[str, str]
) -> None:
    instance, creds = untouched
    error = assert_osb_error(delete(osb, instance, params), 400, "BadRequest")
    if "accepts_incomplete" in params:
        assert "accepts_incomplete" in error["description"]
    elif not params.get("service_id"):
        assert "service_id" in error["description"]
    else:
        assert "plan_id" in error["description"]
    probe.assert_instance_ready(instance)
    assert probe.database_exists(InstanceNames.for_instance(instance).database)
    assert can_connect(creds)


def test_deprovision_of_an_unknown_instance_without_query_is_still_400(osb: OsbClient) -> None:
    # The request is checked before the instance is looked up: a malformed request is 400, not 410.
    assert_osb_error(delete(osb, new_id(), {}), 400, "BadRequest")
