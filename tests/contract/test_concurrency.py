"""The spec's rows for a resource that another operation holds: 422 ConcurrencyError, 404, "in progress".

A broker mid-operation holds the resource's advisory lock in PostgreSQL (that
is how brokers settle races). The test takes that same lock from its own
session, so the broker under test sees exactly what a second broker busy with
the resource would look like. The broker here waits at most one second for a
lock (`lock_timeout_seconds=1`) so refusals come quickly.

For "still being created", the test also writes the broker's own record row in
state 'creating' - what a broker writes before it makes any object - using the
broker's state module, while holding the lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from postgres_service_broker.backends import shared_state
from postgres_service_broker.backends.advisory_locks import lock_key
from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.backends.shared_state import BindingRecord, InstanceRecord
from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_json,
    assert_osb_error,
    bind_body,
    binding_path,
    bound,
    can_connect,
    deprovision,
    instance_path,
    provision_body,
    provisioned,
    put_binding,
    put_instance,
    state_connection,
    unbind,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import LARGE_PLAN, SERVICE_ID, SMALL_PLAN, OsbClient, new_id


@pytest.fixture(scope="module")
def impatient_broker(
    pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    workdir: Path = tmp_path_factory.mktemp("impatient-broker")
    proc = BrokerProcess.write(workdir, pg_cluster, lock_timeout_seconds=1).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(impatient_broker: BrokerProcess) -> OsbClient:
    return OsbClient(impatient_broker.url, BROKER_USER, BROKER_PASSWORD)


@pytest.fixture
def probe(pg_cluster: LocalCluster) -> ClusterProbe:
    return ClusterProbe(pg_cluster)


@pytest.fixture
def instance(client: OsbClient) -> Iterator[str]:
    ident = provisioned(client, new_id())
    yield ident
    assert deprovision(client, ident).status_code == 200


@contextmanager
def busy(conn: psycopg.Connection, kind: str, ident: str) -> Iterator[None]:
    """Hold the exclusive advisory lock a broker holds while it works on this instance or binding."""
    key = lock_key(kind, ident)
    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


@pytest.fixture
def locker(pg_cluster: LocalCluster, impatient_broker: BrokerProcess) -> Iterator[psycopg.Connection]:
    """A session of 'another broker': it can take the same locks and write the same records."""
    with state_connection(pg_cluster) as conn:
        yield conn


# -- an instance being updated -----------------------------------------------------------


def test_fetching_an_instance_being_updated_is_422(
    client: OsbClient, locker: psycopg.Connection, instance: str
) -> None:
    with busy(locker, "instance", instance):
        resp = client.request("GET", instance_path(instance))
        assert_osb_error(resp, 422, "ConcurrencyError")
    # Once the other operation is done, the same request is answered.
    assert assert_json(client.request("GET", instance_path(instance)), 200)["plan_id"] == SMALL_PLAN


def test_updating_an_instance_that_is_busy_is_422_and_changes_nothing(
    client: OsbClient, locker: psycopg.Connection, probe: ClusterProbe, instance: str
) -> None:
    body = {"service_id": SERVICE_ID, "plan_id": LARGE_PLAN}
    with busy(locker, "instance", instance):
        resp = client.request("PATCH", instance_path(instance), json=body)
        assert_osb_error(resp, 422, "ConcurrencyError")
    database = InstanceNames.for_instance(instance).database
    assert probe.connection_limit(database) == 10
    record = probe.instance_record(instance)
    assert record is not None
    assert record["plan_id"] == SMALL_PLAN
    # A retry once the instance is free goes through: the refusal was about timing only.
    assert client.request("PATCH", instance_path(instance), json=body).status_code == 200
    assert probe.connection_limit(database) == 100


def test_deprovisioning_an_instance_that_is_busy_is_422_and_deletes_nothing(
    client: OsbClient, locker: psycopg.Connection, probe: ClusterProbe
) -> None:
    instance = provisioned(client, new_id())
    creds = bound(client, instance, new_id())
    with busy(locker, "instance", instance):
        assert_osb_error(deprovision(client, instance), 422, "ConcurrencyError")
    probe.assert_instance_ready(instance)
    assert can_connect(creds)
    assert deprovision(client, instance).status_code == 200
    probe.assert_no_instance(instance)


def test_provisioning_again_while_the_instance_is_busy_is_422(
    client: OsbClient, locker: psycopg.Connection, instance: str
) -> None:
    # Not a row of the provisioning table, but "Blocking Operations" covers every endpoint.
    with busy(locker, "instance", instance):
        assert_osb_error(put_instance(client, instance, json=provision_body()), 422, "ConcurrencyError")
    assert put_instance(client, instance, json=provision_body()).status_code == 200


def test_binding_to_an_instance_that_is_busy_is_422_and_creates_nothing(
    client: OsbClient, locker: psycopg.Connection, probe: ClusterProbe, instance: str
) -> None:
    # "Brokers MAY choose to treat the creation of a Service Binding as a mutation of the instance."
    binding = new_id()
    with busy(locker, "instance", instance):
        resp = put_binding(client, instance, binding, json=bind_body())
        assert_osb_error(resp, 422, "ConcurrencyError")
    probe.assert_no_binding(binding)


# -- a binding being worked on ---------------------------------------------------------------


def test_unbinding_a_binding_that_is_busy_is_422_and_removes_nothing(
    client: OsbClient, locker: psycopg.Connection, probe: ClusterProbe, instance: str
) -> None:
    binding = new_id()
    creds = bound(client, instance, binding)
    with busy(locker, "binding", binding):
        assert_osb_error(unbind(client, instance, binding), 422, "ConcurrencyError")
    assert can_connect(creds)
    assert probe.binding_record(binding) is not None
    assert unbind(client, instance, binding).status_code == 200


def test_binding_again_while_the_binding_is_busy_is_422(
    client: OsbClient, locker: psycopg.Connection, instance: str
) -> None:
    binding = new_id()
    bound(client, instance, binding)
    with busy(locker, "binding", binding):
        assert_osb_error(put_binding(client, instance, binding, json=bind_body()), 422, "ConcurrencyError")
    assert put_binding(client, instance, binding, json=bind_body()).status_code == 200


# -- operations still in progress -------------------------------------------------------------


def creating_instance(instance_id: str) -> InstanceRecord:
    return InstanceRecord(
        instance_id=instance_id,
        service_id=SERVICE_ID,
        plan_id=SMALL_PLAN,
        database_name=InstanceNames.for_instance(instance_id).database,
        organization_guid="org-guid",
        space_guid="space-guid",
        parameters={},
        context={},
        maintenance_version=None,
        state="creating",
    )


def test_an_instance_still_being_provisioned(
    client: OsbClient, locker: psycopg.Connection, probe: ClusterProbe
) -> None:
    instance = new_id()
    with busy(locker, "instance", instance):
        shared_state.insert_instance(locker, creating_instance(instance))
        # Fetching: "404 ... if a provisioning operation is still in progress".
        assert_osb_error(client.request("GET", instance_path(instance)), 404, "NotFound")
        # Polling: the operation is under way.
        resp = client.request("GET", instance_path(instance) + "/last_operation")
        assert assert_json(resp, 200)["state"] == "in progress"
    # The lock is gone but the record still says 'creating': the broker doing the work died.
    resp = client.request("GET", instance_path(instance) + "/last_operation")
    assert assert_json(resp, 200)["state"] == "failed"
    # The platform's orphan mitigation: a delete cleans up whatever was begun.
    assert deprovision(client, instance).status_code == 200
    probe.assert_no_instance(instance)


def test_a_binding_still_being_created(
    client: OsbClient, locker: psycopg.Connection, probe: ClusterProbe, instance: str
) -> None:
    binding = new_id()
    record = BindingRecord(
        binding_id=binding,
        instance_id=instance,
        role_name=binding_role(binding),
        service_id=SERVICE_ID,
        plan_id=SMALL_PLAN,
        app_guid=None,
        predecessor_binding_id=None,
        parameters={},
        context={},
        password_sealed=b"not yet sealed",
        state="creating",
    )
    with busy(locker, "binding", binding):
        shared_state.insert_binding(locker, record)
        # "404 ... if a binding operation is still in progress" - and no credentials leak out.
        resp = client.request("GET", binding_path(instance, binding))
        assert_osb_error(resp, 404, "NotFound")
        resp = client.request("GET", binding_path(instance, binding) + "/last_operation")
        assert assert_json(resp, 200)["state"] == "in progress"
    resp = client.request("GET", binding_path(instance, binding) + "/last_operation")
    assert assert_json(resp, 200)["state"] == "failed"
    assert unbind(client, instance, binding).status_code == 200
    probe.assert_no_binding(binding)
