"""PUT /v2/service_instances/:instance_id - every row of the spec's Provisioning response table.

After every refusal the cluster is checked directly: the spec says a 4xx must
leave the broker's resources "semantically unchanged", so no database, no
roles and no record row may exist for the would-be instance.

No case expects 202 or 422 AsyncRequired: the shared plan provisions
synchronously (a database and two roles take milliseconds), so the broker
finishes every provision within the request whatever `accepts_incomplete` says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from postgres_service_broker import __version__
from postgres_service_broker.backends.shared_names import InstanceNames
from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_json,
    assert_osb_error,
    deprovision,
    provision_body,
    put_instance,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import LARGE_PLAN, SERVICE_ID, SMALL_PLAN, OsbClient, new_id


@pytest.fixture
def probe(pg_cluster: LocalCluster) -> ClusterProbe:
    return ClusterProbe(pg_cluster)


@pytest.fixture
def instance_id(osb: OsbClient) -> Iterator[str]:
    """A fresh id, deprovisioned afterwards if the test made an instance with it."""
    ident = new_id()
    yield ident
    assert deprovision(osb, ident).status_code in (200, 410)


# -- 201 Created / 200 OK -------------------------------------------------------


def test_new_instance_is_201_with_an_empty_body(
    osb: OsbClient, probe: ClusterProbe, instance_id: str
) -> None:
    resp = put_instance(osb, instance_id, json=provision_body(), params={"accepts_incomplete": "true"})
    # dashboard_url, operation and metadata are all optional; this broker has none of them.
    assert assert_json(resp, 201) == {}
    probe.assert_instance_ready(instance_id)
    record = probe.instance_record(instance_id)
    assert record is not None
    assert record["plan_id"] == SMALL_PLAN
    assert record["maintenance_version"] == __version__


def test_parameters_are_applied(osb: OsbClient, probe: ClusterProbe, instance_id: str) -> None:
    body = provision_body(parameters={"extensions": ["citext", "pg_trgm"]})
    assert assert_json(put_instance(osb, instance_id, json=body), 201) == {}
    assert {"citext", "pg_trgm"} <= probe.extensions(InstanceNames.for_instance(instance_id).database)


def test_identical_repeat_is_200(osb: OsbClient, probe: ClusterProbe, instance_id: str) -> None:
    body = provision_body(parameters={"extensions": ["citext"]})
    assert put_instance(osb, instance_id, json=body).status_code == 201
    assert assert_json(put_instance(osb, instance_id, json=body), 200) == {}
    probe.assert_instance_ready(instance_id)


def test_repeat_with_a_changed_context_only_is_still_200(osb: OsbClient, instance_id: str) -> None:
    # context is platform bookkeeping (e.g. a renamed space), not an attribute of the instance.
    assert put_instance(osb, instance_id, json=provision_body()).status_code == 201
    changed = provision_body(context={"platform": "cloudfoundry", "instance_name": "renamed"})
    assert assert_json(put_instance(osb, instance_id, json=changed), 200) == {}


@pytest.mark.parametrize("accepts_incomplete", ["false", None], ids=["false", "absent"])
def test_provision_is_synchronous_whatever_accepts_incomplete_says(
    osb: OsbClient, probe: ClusterProbe, instance_id: str, accepts_incomplete: str | None
) -> None:
    # Hence no AsyncRequired: the broker never needs the platform to poll.
    params = {} if accepts_incomplete is None else {"accepts_incomplete": accepts_incomplete}
    assert assert_json(put_instance(osb, instance_id, json=provision_body(), params=params), 201) == {}
    probe.assert_instance_ready(instance_id)


def test_vendor_extension_fields_are_ignored(osb: OsbClient, probe: ClusterProbe, instance_id: str) -> None:
    # "Receivers ... MUST ignore those fields and MUST NOT halt processing".
    body = provision_body(**{"x-acme-trace": {"anything": [1, 2]}, "acme_priority": 7})
    assert assert_json(put_instance(osb, instance_id, json=body), 201) == {}
    probe.assert_instance_ready(instance_id)


def test_a_body_without_content_type_is_still_read(
    osb: OsbClient, probe: ClusterProbe, instance_id: str
) -> None:
    # "If the Content-Type is not set, Service Brokers ... MAY still attempt to process the body."
    resp = put_instance(osb, instance_id, data=json.dumps(provision_body()).encode())
    assert "Content-Type" not in resp.request.headers
    assert assert_json(resp, 201) == {}
    probe.assert_instance_ready(instance_id)


def test_matching_maintenance_info_is_201(osb: OsbClient, probe: ClusterProbe, instance_id: str) -> None:
    body = provision_body(maintenance_info={"version": __version__, "description": "ignored"})
    assert assert_json(put_instance(osb, instance_id, json=body), 201) == {}
    probe.assert_instance_ready(instance_id)


# -- 409 Conflict ---------------------------------------------------------------

CONFLICTING = {
    "different-plan": {"plan_id": LARGE_PLAN},
    "different-parameters": {"parameters": {"extensions": ["citext"]}},
    "different-organization": {"organization_guid": "another-org"},
    "different-space": {"space_guid": "another-space"},
}


@pytest.fixture(scope="module")
def existing(broker: BrokerProcess) -> Iterator[str]:
    """An instance made from `provision_body()`, which every conflicting repeat must leave alone."""
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    ident = new_id()
    assert put_instance(client, ident, json=provision_body()).status_code == 201
    yield ident
    assert deprovision(client, ident).status_code == 200


@pytest.mark.parametrize("change", CONFLICTING.values(), ids=CONFLICTING.keys())
def test_same_id_with_different_attributes_is_409(
    osb: OsbClient, probe: ClusterProbe, existing: str, change: dict[str, Any]
) -> None:
    instance_id = existing
    assert_osb_error(put_instance(osb, instance_id, json=provision_body(**change)), 409, "Conflict")
    # The first instance is untouched.
    record = probe.instance_record(instance_id)
    assert record is not None
    assert (record["plan_id"], record["parameters"], record["organization_guid"], record["space_guid"]) == (
        SMALL_PLAN,
        {},
        "org-guid",
        "space-guid",
    )
    assert probe.connection_limit(InstanceNames.for_instance(instance_id).database) == 10


# -- 400 Bad Request --------------------------------------------------------------

# (change to a valid body, a word the description must contain so the user knows what to fix)
BAD_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "missing-service_id": ({"service_id": None}, "service_id"),
    "missing-plan_id": ({"plan_id": None}, "plan_id"),
    "missing-organization_guid": ({"organization_guid": None}, "organization_guid"),
    "missing-space_guid": ({"space_guid": None}, "space_guid"),
    "unknown-service_id": ({"service_id": "no-such-service"}, "service_id"),
    "unknown-plan_id": ({"plan_id": "no-such-plan"}, "plan_id"),
    "plan_id-of-another-kind": ({"plan_id": SERVICE_ID}, "plan_id"),
    "empty-organization_guid": ({"organization_guid": ""}, "organization_guid"),
    "plan_id-a-number": ({"plan_id": 42}, "plan_id"),
    "service_id-a-list": ({"service_id": [SERVICE_ID]}, "service_id"),
    "space_guid-a-boolean": ({"space_guid": True}, "space_guid"),
    "parameters-an-array": ({"parameters": ["extensions"]}, "parameters"),
    "parameters-a-string": ({"parameters": "extensions=citext"}, "parameters"),
    "context-a-string": ({"context": "cloudfoundry"}, "context"),
    "maintenance_info-a-string": ({"maintenance_info": __version__}, "maintenance_info"),
    "maintenance_info.version-a-number": ({"maintenance_info": {"version": 1}}, "maintenance_info.version"),
    "maintenance_info-without-version": ({"maintenance_info": {"description": "x"}}, "maintenance_info"),
    "unknown-parameter": ({"parameters": {"max_connections": 500}}, "extensions"),
    "extension-not-allowed": ({"parameters": {"extensions": ["plpython3u"]}}, "extensions"),
    "extensions-a-string": ({"parameters": {"extensions": "citext"}}, "extensions"),
    "extension-twice": ({"parameters": {"extensions": ["citext", "citext"]}}, "extensions"),
    "nul-in-organization_guid": ({"organization_guid": "org\u0000guid"}, "organization_guid"),
    "nul-in-context": ({"context": {"instance_name": "my\u0000db"}}, "context"),
    "nul-in-parameters-key": ({"parameters": {"extensions\u0000": []}}, "parameter"),
}


@pytest.mark.parametrize(("change", "mentions"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_invalid_body_is_400_and_creates_nothing(
    osb: OsbClient, probe: ClusterProbe, change: dict[str, Any], mentions: str
) -> None:
    instance = new_id()
    body = assert_osb_error(put_instance(osb, instance, json=provision_body(**change)), 400, "BadRequest")
    assert mentions in body["description"]
    probe.assert_no_instance(instance)


def test_unknown_parameter_error_lists_the_accepted_ones(osb: OsbClient, probe: ClusterProbe) -> None:
    instance = new_id()
    resp = put_instance(osb, instance, json=provision_body(parameters={"shoe_size": 44}))
    description = assert_osb_error(resp, 400, "BadRequest")["description"]
    assert "shoe_size" in description
    assert "accepted: extensions" in description
    probe.assert_no_instance(instance)


# Raw bodies no JSON parser turns into a provision request.
MALFORMED = {
    "malformed-json": b'{"service_id": ',
    "trailing-garbage": b'{"service_id": "x"} trailing',
    "empty": b"",
    "whitespace-only": b"  \n\t ",
    "json-array": b"[]",
    "json-null": b"null",
    "json-string": b'"a provision request"',
    "json-number": b"42",
    "not-utf8": b'{"service_id": "\xff\xfe"}',
    "deeply-nested": b"[" * 100_000,
    "number-too-long": b'{"plan_id": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_body_is_400_and_creates_nothing(osb: OsbClient, probe: ClusterProbe, raw: bytes) -> None:
    instance = new_id()
    resp = put_instance(osb, instance, data=raw, headers={"Content-Type": "application/json"})
    assert_osb_error(resp, 400, "BadRequest")
    probe.assert_no_instance(instance)


def test_lone_surrogate_in_a_stored_field_is_400(osb: OsbClient, probe: ClusterProbe) -> None:
    # Valid JSON, but text PostgreSQL cannot store; refused up front, not as a 500 halfway through.
    instance = new_id()
    raw = provision_body(context={"instance_name": "PLACEHOLDER"})
    data = json.dumps(raw).replace("PLACEHOLDER", "\\udc00").encode()
    resp = put_instance(osb, instance, data=data, headers={"Content-Type": "application/json"})
    assert_osb_error(resp, 400, "BadRequest")
    probe.assert_no_instance(instance)


@pytest.mark.parametrize("value", ["maybe", "", "TRUE", "1", "yes"])
def test_accepts_incomplete_that_is_not_a_boolean_is_400(
    osb: OsbClient, probe: ClusterProbe, value: str
) -> None:
    instance = new_id()
    resp = put_instance(osb, instance, json=provision_body(), params={"accepts_incomplete": value})
    assert "accepts_incomplete" in assert_osb_error(resp, 400, "BadRequest")["description"]
    probe.assert_no_instance(instance)


# -- 422 Unprocessable Entity -------------------------------------------------------


@pytest.mark.parametrize("version", ["0.0.1", __version__ + "-rc.1", "99.0.0"])
def test_a_different_maintenance_version_is_422_maintenance_info_conflict(
    osb: OsbClient, probe: ClusterProbe, version: str
) -> None:
    instance = new_id()
    resp = put_instance(osb, instance, json=provision_body(maintenance_info={"version": version}))
    body = assert_osb_error(resp, 422, "MaintenanceInfoConflict")
    assert __version__ in body["description"]  # says what the catalog offers
    probe.assert_no_instance(instance)


def test_a_conflicting_maintenance_version_leaves_an_existing_instance_alone(
    osb: OsbClient, probe: ClusterProbe, instance_id: str
) -> None:
    assert put_instance(osb, instance_id, json=provision_body()).status_code == 201
    resp = put_instance(osb, instance_id, json=provision_body(maintenance_info={"version": "0.0.1"}))
    assert_osb_error(resp, 422, "MaintenanceInfoConflict")
    record = probe.instance_record(instance_id)
    assert record is not None
    assert record["maintenance_version"] == __version__
