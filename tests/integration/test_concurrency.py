"""Races the platform really produces: retries of one request at once, two brokers, many tenants.

The broker keeps no state in memory, so every race is settled in PostgreSQL
(advisory locks, idempotent DDL). Each test fires real HTTP requests from many
threads, each with its own connection, released together by a barrier, and
then counts what exists on the cluster.

What the spec allows for identical requests that race: exactly one ``201``
(the one that made the resource); the others ``200`` (it exists, identical) or
``422`` with error ``ConcurrencyError`` ("Blocking Operations").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import requests

from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.local_cluster import LocalCluster
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.cluster_state import binding_footprint, connect_with, instance_footprint
from tests.support.osb_client import OsbClient, new_id

RACERS = 20


@pytest.fixture(scope="module")
def second_broker(
    pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerProcess]:
    """Another broker process on the same cluster, as in an HA deployment."""
    proc = BrokerProcess.write(tmp_path_factory.mktemp("second-broker"), pg_cluster).start()
    yield proc
    proc.stop()


def race(
    urls: list[str], count: int, send: Callable[[OsbClient], requests.Response]
) -> list[requests.Response]:
    """`count` clients (spread over `urls`), each with its own session, send at the same moment."""
    clients = [OsbClient(urls[i % len(urls)], BROKER_USER, BROKER_PASSWORD) for i in range(count)]
    barrier = threading.Barrier(count)

    def one(client: OsbClient) -> requests.Response:
        barrier.wait(timeout=30)
        return send(client)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, clients))


def assert_one_created(responses: list[requests.Response]) -> list[requests.Response]:
    """Exactly one 201; every other answer one the spec allows. Returns the successful ones."""
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    for resp in responses:
        if resp.status_code == 422:
            assert resp.json()["error"] == "ConcurrencyError", resp.text
        else:
            assert resp.status_code in (200, 201), resp.text
    return [r for r in responses if r.status_code in (200, 201)]


def count_databases(admin_conn: psycopg.Connection, instance_id: str) -> int:
    name = InstanceNames.for_instance(instance_id).database
    return admin_conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()[0]


def count_roles(admin_conn: psycopg.Connection, binding_id: str) -> int:
    role = binding_role(binding_id)
    return admin_conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


def assert_same_credentials(responses: list[requests.Response]) -> dict[str, Any]:
    bodies = [r.json() for r in responses]
    first = bodies[0]["credentials"]
    assert all(b["credentials"] == first for b in bodies)
    return first


def _provision_and_bind_race(
    urls: list[str], osb: OsbClient, pg_cluster: LocalCluster, admin_conn: psycopg.Connection
) -> None:
    instance, binding = new_id(), new_id()
    provisions = race(urls, RACERS, lambda c: c.provision(instance, parameters={"extensions": ["citext"]}))
    assert_one_created(provisions)
    assert count_databases(admin_conn, instance) == 1
    footprint = instance_footprint(pg_cluster, instance)
    assert footprint.complete
    assert footprint.extensions == {"citext"}

    binds = race(urls, RACERS, lambda c: c.bind(instance, binding))
    creds = assert_same_credentials(assert_one_created(binds))
    assert count_roles(admin_conn, binding) == 1
    assert binding_footprint(pg_cluster, binding).record_state == "ready"
    with connect_with(creds) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == footprint_name(instance)

    assert osb.unbind(instance, binding).status_code == 200
    assert osb.deprovision(instance).status_code == 200
    assert instance_footprint(pg_cluster, instance).absent


def footprint_name(instance_id: str) -> str:
    return InstanceNames.for_instance(instance_id).database


@pytest.mark.slow
def test_identical_provisions_and_binds_race_on_one_broker(
    broker: BrokerProcess, osb: OsbClient, pg_cluster: LocalCluster, admin_conn: psycopg.Connection
) -> None:
    _provision_and_bind_race([broker.url], osb, pg_cluster, admin_conn)


@pytest.mark.slow
def test_identical_provisions_and_binds_race_across_two_brokers(
    broker: BrokerProcess,
    second_broker: BrokerProcess,
    osb: OsbClient,
    pg_cluster: LocalCluster,
    admin_conn: psycopg.Connection,
) -> None:
    _provision_and_bind_race([broker.url, second_broker.url], osb, pg_cluster, admin_conn)


@pytest.mark.slow
def test_different_bindings_of_one_instance_at_once(
    broker: BrokerProcess,
    second_broker: BrokerProcess,
    osb: OsbClient,
    pg_cluster: LocalCluster,
) -> None:
    """Many new bindings (half read-only) of one instance with tables in it: all made, none lost."""
    instance = new_id()
    assert osb.provision(instance).status_code == 201
    maker = osb.bind(instance, new_id()).json()["credentials"]
    with connect_with(maker) as conn:
        for i in range(5):
            conn.execute(f"CREATE TABLE t{i} (id serial PRIMARY KEY)")
    ids = [new_id() for _ in range(RACERS)]
    counter = iter(range(RACERS))
    lock = threading.Lock()

    def send(client: OsbClient) -> requests.Response:
        with lock:
            i = next(counter)
        return client.bind(instance, ids[i], parameters={"read_only": i % 2 == 0})

    responses = race([broker.url, second_broker.url], RACERS, send)
    assert sorted(r.status_code for r in responses) == [201] * RACERS, [r.text for r in responses]
    for resp in responses:
        with connect_with(resp.json()["credentials"]) as conn:
            assert conn.execute("SELECT count(*) FROM t4").fetchone()[0] == 0
    assert all(binding_footprint(pg_cluster, b).record_state == "ready" for b in ids)
    assert osb.deprovision(instance).status_code == 200
    assert instance_footprint(pg_cluster, instance).absent
    assert all(binding_footprint(pg_cluster, b).absent for b in ids)


@pytest.mark.slow
def test_many_tenants_run_whole_lifecycles_at_once(
    broker: BrokerProcess,
    second_broker: BrokerProcess,
    pg_cluster: LocalCluster,
) -> None:
    tenants = 16
    instances = [new_id() for _ in range(tenants)]
    bindings = [new_id() for _ in range(tenants)]
    barrier = threading.Barrier(tenants)

    def lifecycle(i: int) -> list[str]:
        client = OsbClient((broker, second_broker)[i % 2].url, BROKER_USER, BROKER_PASSWORD)
        instance, binding = instances[i], bindings[i]
        errors: list[str] = []

        def expect(resp: requests.Response, status: int, step: str) -> requests.Response:
            if resp.status_code != status:
                errors.append(f"tenant {i} {step}: {resp.status_code} {resp.text}")
            return resp

        barrier.wait(timeout=30)
        expect(client.provision(instance), 201, "provision")
        creds = expect(client.bind(instance, binding), 201, "bind").json().get("credentials")
        if creds:
            with connect_with(creds) as conn:
                conn.execute("CREATE TABLE t (v int)")
                conn.execute("INSERT INTO t VALUES (%s)", (i,))
        expect(client.unbind(instance, binding), 200, "unbind")
        expect(client.deprovision(instance), 200, "deprovision")
        return errors

    with ThreadPoolExecutor(max_workers=tenants) as pool:
        errors = [e for result in pool.map(lifecycle, range(tenants)) for e in result]
    assert errors == []
    assert all(instance_footprint(pg_cluster, i).absent for i in instances)
    assert all(binding_footprint(pg_cluster, b).absent for b in bindings)


def test_more_keep_alive_clients_than_threads_are_all_served(
    tmp_path_factory: pytest.TempPathFactory, pg_cluster: LocalCluster
) -> None:
    # Each connection has a thread of its own and `listen.threads` bounds only
    # the requests in the app at once: clients beyond it wait their turn, and
    # none sees its kept-alive connection closed under it.
    threads, clients, calls = 4, 24, 15
    proc = BrokerProcess.write(
        tmp_path_factory.mktemp("few-threads"), pg_cluster, listen={"threads": threads}
    ).start()
    failures: list[str] = []
    barrier = threading.Barrier(clients)

    def client() -> int:
        session = requests.Session()
        session.auth = (BROKER_USER, BROKER_PASSWORD)
        barrier.wait()
        served = 0
        for _ in range(calls):
            try:
                resp = session.get(
                    f"{proc.url}/v2/catalog", headers={"X-Broker-API-Version": "2.17"}, timeout=30
                )
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
                continue
            served += resp.status_code == 200
        session.close()
        return served

    try:
        with ThreadPoolExecutor(clients) as pool:
            served = sum(pool.map(lambda _: client(), range(clients)))
    finally:
        proc.stop()
    assert failures == []
    assert served == clients * calls
