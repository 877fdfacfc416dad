"""PUT .../service_bindings/:binding_id - the spec's Binding response table, and Binding Rotation.

Credentials are proven by logging in with them, not by their shape alone.
Binding is synchronous (one CREATE ROLE), so there is no 202 and no
AsyncRequired; 422 ConcurrencyError is in test_concurrency.py. The broker
does not require an app (service keys have none), so there is no RequiresApp.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_json,
    assert_osb_error,
    bind_body,
    bound,
    can_connect,
    deprovision,
    provisioned,
    put_binding,
    unbind,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import LARGE_PLAN, OsbClient, new_id

CREDENTIAL_KEYS = {"uri", "jdbcUrl", "hostname", "hosts", "port", "name", "username", "password"}


@pytest.fixture
def probe(pg_cluster: LocalCluster) -> ClusterProbe:
    return ClusterProbe(pg_cluster)


@pytest.fixture(scope="module")
def instance(broker: BrokerProcess) -> Iterator[str]:
    """One instance for every binding in this module (binding ids are fresh per test)."""
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    ident = provisioned(client, new_id())
    yield ident
    assert deprovision(client, ident).status_code == 200


# -- 201 Created / 200 OK ------------------------------------------------------------


def test_new_binding_is_201_with_credentials_that_connect(
    osb: OsbClient, probe: ClusterProbe, instance: str, pg_cluster: LocalCluster
) -> None:
    binding = new_id()
    body = assert_json(put_binding(osb, instance, binding, json=bind_body()), 201)
    creds = body["credentials"]
    assert set(creds) >= CREDENTIAL_KEYS
    database = InstanceNames.for_instance(instance).database
    assert creds["name"] == database
    assert creds["username"] == binding_role(binding)
    assert creds["hostname"] == "127.0.0.1"
    assert creds["hosts"] == ["127.0.0.1"]
    assert creds["port"] == pg_cluster.port
    assert creds["uri"].startswith(f"postgres://{creds['username']}:")
    assert creds["uri"].endswith(f"@127.0.0.1:{pg_cluster.port}/{database}")
    assert creds["jdbcUrl"].startswith(f"jdbc:postgresql://127.0.0.1:{pg_cluster.port}/{database}?")
    assert len(creds["password"]) >= 32
    assert body["endpoints"] == [{"host": "127.0.0.1", "ports": [str(pg_cluster.port)], "protocol": "tcp"}]
    assert can_connect(creds)
    assert probe.role_exists(binding_role(binding))


def test_identical_repeat_is_200_with_the_same_credentials(osb: OsbClient, instance: str) -> None:
    binding = new_id()
    first = assert_json(put_binding(osb, instance, binding, json=bind_body()), 201)
    again = assert_json(put_binding(osb, instance, binding, json=bind_body()), 200)
    assert again["credentials"] == first["credentials"]
    assert can_connect(again["credentials"])


@pytest.mark.parametrize("accepts_incomplete", ["true", "false", None], ids=["true", "false", "absent"])
def test_bind_is_synchronous_whatever_accepts_incomplete_says(
    osb: OsbClient, instance: str, accepts_incomplete: str | None
) -> None:
    params = {} if accepts_incomplete is None else {"accepts_incomplete": accepts_incomplete}
    resp = put_binding(osb, instance, new_id(), json=bind_body(), params=params)
    assert can_connect(assert_json(resp, 201)["credentials"])


def test_a_binding_without_an_app_is_201(osb: OsbClient, instance: str) -> None:
    # A service key: no bind_resource, no app_guid. Hence no 422 RequiresApp.
    resp = put_binding(osb, instance, new_id(), json=bind_body(bind_resource=None))
    assert can_connect(assert_json(resp, 201)["credentials"])


def test_the_deprecated_top_level_app_guid_is_accepted(osb: OsbClient, instance: str) -> None:
    resp = put_binding(osb, instance, new_id(), json=bind_body(bind_resource=None, app_guid="app-guid"))
    assert can_connect(assert_json(resp, 201)["credentials"])


def test_vendor_extension_fields_are_ignored(osb: OsbClient, instance: str) -> None:
    resp = put_binding(osb, instance, new_id(), json=bind_body(**{"x-acme": [1], "acme_flag": True}))
    assert can_connect(assert_json(resp, 201)["credentials"])


def test_binding_parameters_are_applied(osb: OsbClient, instance: str) -> None:
    writer = bound(osb, instance, new_id())
    with psycopg.connect(writer["uri"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bind_contract (n int)")
    reader = bound(osb, instance, new_id(), parameters={"read_only": True})
    with psycopg.connect(reader["uri"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM bind_contract").fetchone() is not None
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
            conn.execute("INSERT INTO bind_contract VALUES (1)")


# -- 409 Conflict ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"parameters": {"read_only": True}}, {"bind_resource": {"app_guid": "another-app"}}],
    ids=["different-parameters", "different-app"],
)
def test_same_binding_id_with_different_attributes_is_409(
    osb: OsbClient, instance: str, change: dict[str, Any]
) -> None:
    binding = new_id()
    first = assert_json(put_binding(osb, instance, binding, json=bind_body()), 201)["credentials"]
    assert_osb_error(put_binding(osb, instance, binding, json=bind_body(**change)), 409, "Conflict")
    # The first binding is untouched and still works.
    assert can_connect(first)
    assert osb.fetch_binding(instance, binding).json()["parameters"] == {}


# -- 400 Bad Request ---------------------------------------------------------------------

BAD_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "missing-service_id": ({"service_id": None}, "service_id"),
    "missing-plan_id": ({"plan_id": None}, "plan_id"),
    "unknown-service_id": ({"service_id": "no-such-service"}, "service_id"),
    "unknown-plan": ({"plan_id": "no-such-plan"}, "plan_id"),
    "plan_id-a-number": ({"plan_id": 3}, "plan_id"),
    "unknown-parameter": ({"parameters": {"superuser": True}}, "read_only"),
    "read_only-not-boolean": ({"parameters": {"read_only": "yes"}}, "read_only"),
    "parameters-an-array": ({"parameters": [{"read_only": True}]}, "parameters"),
    "bind_resource-a-string": ({"bind_resource": "app-guid"}, "bind_resource"),
    "empty-app_guid": ({"app_guid": ""}, "app_guid"),
    "context-a-list": ({"context": ["cloudfoundry"]}, "context"),
    "nul-in-context": ({"context": {"platform": "cloud\u0000foundry"}}, "context"),
}


@pytest.mark.parametrize(("change", "mentions"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_invalid_bind_is_400_and_creates_nothing(
    osb: OsbClient, probe: ClusterProbe, instance: str, change: dict[str, Any], mentions: str
) -> None:
    binding = new_id()
    error = assert_osb_error(put_binding(osb, instance, binding, json=bind_body(**change)), 400, "BadRequest")
    assert mentions in error["description"]
    probe.assert_no_binding(binding)


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b"null", b"17"], ids=["empty", "malformed", "array", "null", "number"]
)
def test_malformed_bind_body_is_400_and_creates_nothing(
    osb: OsbClient, probe: ClusterProbe, instance: str, raw: bytes
) -> None:
    binding = new_id()
    resp = put_binding(osb, instance, binding, data=raw, headers={"Content-Type": "application/json"})
    assert_osb_error(resp, 400, "BadRequest")
    probe.assert_no_binding(binding)


def test_accepts_incomplete_that_is_not_a_boolean_is_400(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    binding = new_id()
    resp = put_binding(osb, instance, binding, json=bind_body(), params={"accepts_incomplete": "sometimes"})
    assert_osb_error(resp, 400, "BadRequest")
    probe.assert_no_binding(binding)


def test_bind_to_an_instance_that_does_not_exist_is_400(osb: OsbClient, probe: ClusterProbe) -> None:
    missing, binding = new_id(), new_id()
    error = assert_osb_error(put_binding(osb, missing, binding, json=bind_body()), 400, "BadRequest")
    assert "instance" in error["description"]
    probe.assert_no_binding(binding)
    probe.assert_no_instance(missing)


def test_bind_with_a_plan_other_than_the_instances_is_still_bound_to_its_database(
    osb: OsbClient, instance: str
) -> None:
    # plan_id names a plan of the offering; the binding is always to the instance as it is.
    creds = assert_json(put_binding(osb, instance, new_id(), json=bind_body(plan_id=LARGE_PLAN)), 201)[
        "credentials"
    ]
    assert creds["name"] == InstanceNames.for_instance(instance).database


# -- rotation ---------------------------------------------------------------------------


def test_rotation_with_only_a_predecessor_is_201_with_new_credentials(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    old, new = new_id(), new_id()
    old_creds = bound(osb, instance, old)
    resp = put_binding(osb, instance, new, json={"predecessor_binding_id": old})
    new_creds = assert_json(resp, 201)["credentials"]
    assert new_creds["username"] == binding_role(new)
    assert new_creds["username"] != old_creds["username"]
    assert new_creds["password"] != old_creds["password"]
    assert new_creds["name"] == old_creds["name"]
    # "Both Service Bindings, the new and the old one, MUST both be valid in parallel."
    assert can_connect(old_creds)
    assert can_connect(new_creds)
    # Deleting the predecessor leaves the successor working.
    assert unbind(osb, instance, old).status_code == 200
    assert not can_connect(old_creds)
    assert can_connect(new_creds)


def test_rotation_keeps_the_predecessors_parameters(osb: OsbClient, instance: str) -> None:
    # Platforms need not store binding parameters; the successor inherits them.
    old, new = new_id(), new_id()
    bound(osb, instance, old, parameters={"read_only": True})
    assert put_binding(osb, instance, new, json={"predecessor_binding_id": old}).status_code == 201
    assert osb.fetch_binding(instance, new).json()["parameters"] == {"read_only": True}


def test_repeated_rotation_is_200_with_the_same_credentials(osb: OsbClient, instance: str) -> None:
    old, new = new_id(), new_id()
    bound(osb, instance, old)
    first = assert_json(put_binding(osb, instance, new, json={"predecessor_binding_id": old}), 201)
    again = assert_json(put_binding(osb, instance, new, json={"predecessor_binding_id": old}), 200)
    assert again["credentials"] == first["credentials"]


def test_rotation_with_an_unknown_predecessor_is_400(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    new = new_id()
    resp = put_binding(osb, instance, new, json={"predecessor_binding_id": new_id()})
    assert "predecessor_binding_id" in assert_osb_error(resp, 400, "BadRequest")["description"]
    probe.assert_no_binding(new)


def test_rotation_with_a_predecessor_of_another_instance_is_400(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    other = provisioned(osb, new_id())
    foreign = new_id()
    bound(osb, other, foreign)
    new = new_id()
    resp = put_binding(osb, instance, new, json={"predecessor_binding_id": foreign})
    assert_osb_error(resp, 400, "BadRequest")
    probe.assert_no_binding(new)
    assert deprovision(osb, other).status_code == 200


def test_rotation_naming_itself_as_predecessor_is_400(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    new = new_id()
    resp = put_binding(osb, instance, new, json={"predecessor_binding_id": new})
    assert_osb_error(resp, 400, "BadRequest")
    probe.assert_no_binding(new)


def test_rotation_with_a_predecessor_that_is_not_a_string_is_400(
    osb: OsbClient, probe: ClusterProbe, instance: str
) -> None:
    new = new_id()
    resp = put_binding(osb, instance, new, json={"predecessor_binding_id": 12345})
    assert "predecessor_binding_id" in assert_osb_error(resp, 400, "BadRequest")["description"]
    probe.assert_no_binding(new)


# -- secrets --------------------------------------------------------------------------


def test_the_password_never_reaches_the_broker_log(
    osb: OsbClient, instance: str, broker: BrokerProcess
) -> None:
    binding = new_id()
    creds = bound(osb, instance, binding)
    assert osb.fetch_binding(instance, binding).status_code == 200
    log = broker.wait_for_log(binding)  # the audit line for this bind was written...
    assert creds["password"] not in log  # ...without the secret
