"""PATCH /v2/service_instances/:instance_id - every row of the spec's Updating response table.

Updates are synchronous on the shared plan (a connection limit, extensions),
so there is no 202 and no AsyncRequired case. After each refusal the instance
is checked to be exactly as it was.

The spec's update table has no 404: an update of an instance the broker does
not know is "invalid data", so the broker answers 400 (as other brokers do).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from postgres_service_broker import __version__
from postgres_service_broker.backends.shared_names import InstanceNames
from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_empty_object,
    assert_osb_error,
    bound,
    deprovision,
    instance_path,
    provisioned,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import LARGE_PLAN, SERVICE_ID, SMALL_PLAN, OsbClient, new_id


@pytest.fixture
def probe(pg_cluster: LocalCluster) -> ClusterProbe:
    return ClusterProbe(pg_cluster)


@pytest.fixture
def instance(osb: OsbClient) -> Iterator[str]:
    """A small-plan instance without parameters, for a test that changes it; removed afterwards."""
    ident = provisioned(osb, new_id())
    yield ident
    assert deprovision(osb, ident).status_code == 200


@pytest.fixture(scope="module")
def untouched(broker: BrokerProcess) -> Iterator[str]:
    """One instance every refused or no-op update in this module is sent to; each checks it is unchanged."""
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    ident = provisioned(client, new_id())
    yield ident
    assert deprovision(client, ident).status_code == 200


def patch(osb: OsbClient, instance_id: str, **kwargs: Any) -> Any:
    return osb.request("PATCH", instance_path(instance_id), **kwargs)


def assert_unchanged(osb: OsbClient, probe: ClusterProbe, instance_id: str) -> None:
    """The instance is exactly as `instance` made it: small plan, no parameters, first context."""
    record = probe.instance_record(instance_id)
    assert record is not None
    assert record["plan_id"] == SMALL_PLAN
    assert record["parameters"] == {}
    assert record["context"]["instance_name"] == "my-db"
    assert record["maintenance_version"] == __version__
    assert probe.connection_limit(InstanceNames.for_instance(instance_id).database) == 10
    assert "citext" not in probe.extensions(InstanceNames.for_instance(instance_id).database)


# -- 200 OK -----------------------------------------------------------------------


def test_plan_change_is_200_and_applied(osb: OsbClient, probe: ClusterProbe, instance: str) -> None:
    body = {
        "service_id": SERVICE_ID,
        "plan_id": LARGE_PLAN,
        "previous_values": {"plan_id": SMALL_PLAN, "service_id": SERVICE_ID},
    }
    assert_empty_object(patch(osb, instance, json=body, params={"accepts_incomplete": "true"}), 200)
    assert probe.connection_limit(InstanceNames.for_instance(instance).database) == 100
    assert osb.fetch_instance(instance).json()["plan_id"] == LARGE_PLAN


def test_parameter_change_is_200_and_applied(osb: OsbClient, probe: ClusterProbe, instance: str) -> None:
    body = {"service_id": SERVICE_ID, "parameters": {"extensions": ["citext"]}}
    assert_empty_object(patch(osb, instance, json=body), 200)
    assert "citext" in probe.extensions(InstanceNames.for_instance(instance).database)
    assert osb.fetch_instance(instance).json()["parameters"] == {"extensions": ["citext"]}
    # Leaving plan_id out must not change the plan.
    assert probe.connection_limit(InstanceNames.for_instance(instance).database) == 10


def test_context_only_change_is_200_and_recorded(osb: OsbClient, probe: ClusterProbe, instance: str) -> None:
    # allow_context_updates: the platform tells the broker about a renamed instance.
    body = {"service_id": SERVICE_ID, "context": {"platform": "cloudfoundry", "instance_name": "renamed-db"}}
    assert_empty_object(patch(osb, instance, json=body), 200)
    record = probe.instance_record(instance)
    assert record is not None
    assert record["context"]["instance_name"] == "renamed-db"
    assert record["plan_id"] == SMALL_PLAN
    assert record["parameters"] == {}


def test_an_update_without_changes_is_200(osb: OsbClient, probe: ClusterProbe, untouched: str) -> None:
    # "MAY be returned if the request's changes have had no effect."
    assert_empty_object(patch(osb, untouched, json={"service_id": SERVICE_ID, "plan_id": SMALL_PLAN}), 200)
    assert_unchanged(osb, probe, untouched)


def test_matching_maintenance_info_is_200(osb: OsbClient, probe: ClusterProbe, untouched: str) -> None:
    body = {"service_id": SERVICE_ID, "maintenance_info": {"version": __version__}}
    assert_empty_object(patch(osb, untouched, json=body), 200)
    assert_unchanged(osb, probe, untouched)


@pytest.mark.parametrize("accepts_incomplete", ["false", None], ids=["false", "absent"])
def test_update_is_synchronous_whatever_accepts_incomplete_says(
    osb: OsbClient, probe: ClusterProbe, instance: str, accepts_incomplete: str | None
) -> None:
    params = {} if accepts_incomplete is None else {"accepts_incomplete": accepts_incomplete}
    assert_empty_object(
        patch(osb, instance, json={"service_id": SERVICE_ID, "plan_id": LARGE_PLAN}, params=params), 200
    )
    assert probe.connection_limit(InstanceNames.for_instance(instance).database) == 100


def test_vendor_extension_fields_are_ignored(osb: OsbClient, probe: ClusterProbe, untouched: str) -> None:
    body = {"service_id": SERVICE_ID, "x-acme-trace": "abc", "acme": {"deep": [1]}}
    assert_empty_object(patch(osb, untouched, json=body), 200)
    assert_unchanged(osb, probe, untouched)


# -- 400 Bad Request ------------------------------------------------------------------

BAD_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "missing-service_id": ({"plan_id": LARGE_PLAN}, "service_id"),
    "unknown-service_id": ({"service_id": "no-such-service", "plan_id": LARGE_PLAN}, "service_id"),
    "unknown-plan": ({"service_id": SERVICE_ID, "plan_id": "no-such-plan"}, "plan_id"),
    "plan_id-a-number": ({"service_id": SERVICE_ID, "plan_id": 7}, "plan_id"),
    "parameters-an-array": ({"service_id": SERVICE_ID, "parameters": ["citext"]}, "parameters"),
    "unknown-parameter": ({"service_id": SERVICE_ID, "parameters": {"work_mem": "1GB"}}, "extensions"),
    "extension-not-allowed": (
        {"service_id": SERVICE_ID, "parameters": {"extensions": ["adminpack"]}},
        "extensions",
    ),
    "context-a-string": ({"service_id": SERVICE_ID, "context": "x", "plan_id": LARGE_PLAN}, "context"),
    "previous_values-a-string": ({"service_id": SERVICE_ID, "previous_values": "x"}, "previous_values"),
    "maintenance_info.version-a-number": (
        {"service_id": SERVICE_ID, "maintenance_info": {"version": 2}},
        "maintenance_info.version",
    ),
    "nul-in-context": ({"service_id": SERVICE_ID, "context": {"instance_name": "a\u0000b"}}, "context"),
}


@pytest.mark.parametrize(("body", "mentions"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_invalid_update_is_400_and_changes_nothing(
    osb: OsbClient, probe: ClusterProbe, untouched: str, body: dict[str, Any], mentions: str
) -> None:
    error = assert_osb_error(patch(osb, untouched, json=body), 400, "BadRequest")
    assert mentions in error["description"]
    assert_unchanged(osb, probe, untouched)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b"null", b'"plan"'], ids=["empty", "malformed", "array", "null", "string"]
)
def test_malformed_update_body_is_400_and_changes_nothing(
    osb: OsbClient, probe: ClusterProbe, untouched: str, raw: bytes
) -> None:
    resp = patch(osb, untouched, data=raw, headers={"Content-Type": "application/json"})
    assert_osb_error(resp, 400, "BadRequest")
    assert_unchanged(osb, probe, untouched)


def test_accepts_incomplete_that_is_not_a_boolean_is_400(
    osb: OsbClient, probe: ClusterProbe, untouched: str
) -> None:
    body = {"service_id": SERVICE_ID, "plan_id": LARGE_PLAN}
    assert_osb_error(
        patch(osb, untouched, json=body, params={"accepts_incomplete": "maybe"}), 400, "BadRequest"
    )
    assert_unchanged(osb, probe, untouched)


def test_update_of_an_instance_that_does_not_exist_is_400(osb: OsbClient, probe: ClusterProbe) -> None:
    # No 404 row in the spec's update table; unknown instance = invalid data = 400. Nothing is created.
    missing = new_id()
    body = {"service_id": SERVICE_ID, "plan_id": LARGE_PLAN}
    assert "exist" in assert_osb_error(patch(osb, missing, json=body), 400, "BadRequest")["description"]
    probe.assert_no_instance(missing)


# -- 422 Unprocessable Entity ------------------------------------------------------------


def test_a_different_maintenance_version_is_422_and_changes_nothing(
    osb: OsbClient, probe: ClusterProbe, untouched: str
) -> None:
    body = {"service_id": SERVICE_ID, "plan_id": LARGE_PLAN, "maintenance_info": {"version": "99.0.0"}}
    error = assert_osb_error(patch(osb, untouched, json=body), 422, "MaintenanceInfoConflict")
    assert __version__ in error["description"]
    assert_unchanged(osb, probe, untouched)


def test_a_change_the_instance_cannot_take_now_is_422(osb: OsbClient, probe: ClusterProbe) -> None:
    # "the request cannot currently be fulfilled due to the state of the Service Instance":
    # an extension cannot be removed while a table uses its type.
    instance = provisioned(osb, new_id(), parameters={"extensions": ["citext"]})
    creds = bound(osb, instance, new_id())
    with psycopg.connect(creds["uri"], autocommit=True) as conn:
        conn.execute("CREATE TABLE emails (address citext)")
    resp = patch(osb, instance, json={"service_id": SERVICE_ID, "parameters": {"extensions": []}})
    error = assert_osb_error(resp, 422)
    assert "extension" in error["description"]
    assert "citext" in probe.extensions(InstanceNames.for_instance(instance).database)
    assert osb.fetch_instance(instance).json()["parameters"] == {"extensions": ["citext"]}
    assert deprovision(osb, instance).status_code == 200
