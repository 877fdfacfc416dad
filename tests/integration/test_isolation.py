"""What a binding's credentials can and cannot do on the shared cluster, tried with real connections.

Every instance is a database on one cluster, so the walls between tenants are
PostgreSQL privileges alone. Each test attempts what a curious or hostile app
would, and checks PostgreSQL refuses it (or, for the things a binding is meant
to do, that it works).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import errors

from postgres_service_broker.local_cluster import LocalCluster
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.cluster_state import STATE_DATABASE, connect_with
from tests.support.osb_client import OsbClient, new_id


@dataclass
class Tenant:
    instance_id: str
    creds: dict[str, Any]

    @property
    def database(self) -> str:
        return self.creds["name"]


def _bind(client: OsbClient, instance_id: str, **params: Any) -> dict[str, Any]:
    resp = client.bind(instance_id, new_id(), parameters=params or None)
    assert resp.status_code == 201, resp.text
    return resp.json()["credentials"]


@pytest.fixture(scope="module")
def client(broker: BrokerProcess) -> OsbClient:
    return OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)


@pytest.fixture(scope="module")
def tenants(client: OsbClient) -> Iterator[tuple[Tenant, Tenant]]:
    """Two instances, A and B, each with one normal binding."""
    made: list[Tenant] = []
    for _ in range(2):
        instance = new_id()
        assert client.provision(instance).status_code == 201
        made.append(Tenant(instance, _bind(client, instance)))
    yield made[0], made[1]
    for tenant in made:
        client.deprovision(tenant.instance_id)


@pytest.fixture
def a(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[0]


@pytest.fixture
def b(tenants: tuple[Tenant, Tenant]) -> Tenant:
    return tenants[1]


# -- between instances ---------------------------------------------------------


def test_binding_cannot_connect_to_another_instances_database(a: Tenant, b: Tenant) -> None:
    with connect_with(a.creds) as conn:  # the credentials themselves are good...
        assert conn.execute("SELECT current_database()").fetchone()[0] == a.database
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect_with(a.creds, dbname=b.database)  # ...but only for their own database


def test_binding_cannot_see_another_instances_tables(a: Tenant, b: Tenant, pg_cluster: LocalCluster) -> None:
    with psycopg.connect(**pg_cluster.conninfo(b.database), autocommit=True) as su:
        su.execute("CREATE TABLE b_secrets (secret text)")
        su.execute("INSERT INTO b_secrets VALUES ('only for B')")
    with connect_with(a.creds) as conn:
        assert conn.execute("SELECT to_regclass('b_secrets')").fetchone()[0] is None
        found = conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'b_secrets'").fetchone()[0]
        assert found == 0
        with pytest.raises(errors.FeatureNotSupported):  # cross-database references
            conn.execute(f'SELECT secret FROM "{b.database}".public.b_secrets')
    with psycopg.connect(**pg_cluster.conninfo(b.database)) as su:  # it is really there
        assert su.execute("SELECT secret FROM b_secrets").fetchone()[0] == "only for B"


def test_binding_cannot_assume_another_instances_roles(a: Tenant, b: Tenant) -> None:
    with connect_with(a.creds) as conn:
        for role in (b.database + "_owner", b.database + "_reader", b.creds["username"]):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(f'SET ROLE "{role}"')


# -- cluster-wide privileges ------------------------------------------------------


# `RESET ROLE` and `RESET ALL` return to the role's default (the owner role);
# `SET ROLE NONE` returns to the login role itself, which must be as powerless.
ROLE_ESCAPES = {"as-owner": None, "set-role-none": "SET ROLE NONE"}


@pytest.mark.parametrize("escape", list(ROLE_ESCAPES.values()), ids=list(ROLE_ESCAPES))
def test_binding_cannot_create_roles_or_databases(a: Tenant, escape: str | None) -> None:
    with connect_with(a.creds) as conn:
        if escape:
            conn.execute(escape)
        for statement in (
            "CREATE ROLE intruder LOGIN PASSWORD 'x'",
            "CREATE DATABASE intruder",
            f'ALTER ROLE "{a.creds["username"]}" CREATEDB',
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)


@pytest.mark.parametrize("escape", list(ROLE_ESCAPES.values()), ids=list(ROLE_ESCAPES))
def test_binding_cannot_read_password_hashes(a: Tenant, escape: str | None) -> None:
    with connect_with(a.creds) as conn:
        if escape:
            conn.execute(escape)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT rolname, rolpassword FROM pg_authid")
        # pg_roles is readable by design, but it masks the password column.
        masked = conn.execute("SELECT DISTINCT rolpassword FROM pg_roles").fetchall()
        assert masked == [("********",)]


def test_binding_cannot_connect_to_the_broker_state_database(a: Tenant) -> None:
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect_with(a.creds, dbname=STATE_DATABASE)


# -- read-only bindings -------------------------------------------------------------

READ_ONLY_WRITES = {
    "insert": "INSERT INTO ro_before VALUES (99, 'x')",
    "update": "UPDATE ro_before SET body = 'changed'",
    "delete": "DELETE FROM ro_before",
    "truncate": "TRUNCATE ro_before",
    "create-table": "CREATE TABLE ro_new (id int)",
    "create-schema": "CREATE SCHEMA ro_schema",
    "nextval": "SELECT nextval('ro_before_id_seq')",
    "drop-table": "DROP TABLE ro_after",
}


@pytest.fixture(scope="module")
def read_only_setup(client: OsbClient) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """An instance whose normal binding made a table before, and one after, a read-only binding."""
    instance = new_id()
    assert client.provision(instance).status_code == 201
    writer = _bind(client, instance)
    with connect_with(writer) as conn:
        conn.execute("CREATE TABLE ro_before (id serial PRIMARY KEY, body text)")
        conn.execute("INSERT INTO ro_before (body) VALUES ('before')")
    reader = _bind(client, instance, read_only=True)
    with connect_with(writer) as conn:
        conn.execute("CREATE TABLE ro_after (body text)")
        conn.execute("INSERT INTO ro_after VALUES ('after')")
        conn.execute("CREATE SCHEMA later")
        conn.execute("CREATE TABLE later.nested (body text)")
        conn.execute("INSERT INTO later.nested VALUES ('nested')")
    yield writer, reader
    client.deprovision(instance)


def test_read_only_binding_reads_tables_made_before_and_after_it(
    read_only_setup: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, reader = read_only_setup
    with connect_with(reader) as conn:
        assert conn.execute("SELECT body FROM ro_before").fetchall() == [("before",)]
        assert conn.execute("SELECT body FROM ro_after").fetchall() == [("after",)]
        assert conn.execute("SELECT body FROM later.nested").fetchall() == [("nested",)]


READ_ONLY_OFF = "SET default_transaction_read_only = off"
# Ways a read-only session may try to shed its limits, and who it is afterwards.
READ_ONLY_ESCAPES = {
    "plain": ((), "reader"),
    "read-only-off": ((READ_ONLY_OFF,), "reader"),
    "reset-role": ((READ_ONLY_OFF, "RESET ROLE"), "reader"),
    "set-role-none": ((READ_ONLY_OFF, "SET ROLE NONE"), "login"),
    "reset-all": (("RESET ALL", READ_ONLY_OFF), "reader"),
}


@pytest.mark.parametrize(("escape", "becomes"), list(READ_ONLY_ESCAPES.values()), ids=list(READ_ONLY_ESCAPES))
@pytest.mark.parametrize("statement", list(READ_ONLY_WRITES.values()), ids=list(READ_ONLY_WRITES))
def test_read_only_binding_cannot_write(
    read_only_setup: tuple[dict[str, Any], dict[str, Any]],
    statement: str,
    escape: tuple[str, ...],
    becomes: str,
) -> None:
    writer, reader = read_only_setup
    with connect_with(reader) as conn:
        for step in escape:
            conn.execute(step)
        expected_user = reader["username"] if becomes == "login" else reader["name"] + "_reader"
        assert conn.execute("SELECT current_user").fetchone()[0] == expected_user
        # Without an escape the read-only default may answer first; with one,
        # only the missing privileges stand in the way, and they must.
        expected = (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction)
        with pytest.raises(errors.InsufficientPrivilege if escape else expected):
            conn.execute(statement)
    with connect_with(writer) as conn:
        assert conn.execute("SELECT id, body FROM ro_before").fetchall() == [(1, "before")]
        assert conn.execute("SELECT count(*) FROM ro_after").fetchone()[0] == 1
        assert conn.execute("SELECT to_regclass('ro_new'), to_regnamespace('ro_schema')").fetchone() == (
            None,
            None,
        )


def test_tables_a_binding_makes_as_its_login_role_are_shared_too(client: OsbClient) -> None:
    """After `SET ROLE NONE` a session creates as its login role; that must stay shared all the same."""
    instance, maker_id = new_id(), new_id()
    assert client.provision(instance).status_code == 201
    try:
        maker = client.bind(instance, maker_id).json()["credentials"]
        reader = _bind(client, instance, read_only=True)
        other = _bind(client, instance)
        with connect_with(maker) as conn:
            conn.execute("SET ROLE NONE")
            assert conn.execute("SELECT current_user").fetchone()[0] == maker["username"]
            conn.execute("CREATE SCHEMA own")
            conn.execute("CREATE TABLE own.items (id serial PRIMARY KEY, body text)")
            conn.execute("INSERT INTO own.items (body) VALUES ('made as login role')")
        with connect_with(other) as conn:
            conn.execute("INSERT INTO own.items (body) VALUES ('by another binding')")
        with connect_with(reader) as conn:
            assert conn.execute("SELECT count(*) FROM own.items").fetchone()[0] == 2
        assert client.unbind(instance, maker_id).status_code == 200
        with connect_with(reader) as conn:
            assert conn.execute("SELECT count(*) FROM own.items").fetchone()[0] == 2
        with connect_with(other) as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'items'").fetchone()[0]
            assert owner == other["name"] + "_owner"
            conn.execute("DROP SCHEMA own CASCADE")
    finally:
        client.deprovision(instance)


def test_normal_binding_uses_tables_of_another_binding_even_after_it_is_unbound(
    client: OsbClient,
) -> None:
    instance, first_id = new_id(), new_id()
    assert client.provision(instance).status_code == 201
    try:
        first = client.bind(instance, first_id).json()["credentials"]
        second = _bind(client, instance)
        with connect_with(first) as conn:
            conn.execute("CREATE TABLE shared_notes (id serial PRIMARY KEY, body text)")
            conn.execute("INSERT INTO shared_notes (body) VALUES ('from first')")
        with connect_with(second) as conn:
            conn.execute("INSERT INTO shared_notes (body) VALUES ('from second')")
            conn.execute("UPDATE shared_notes SET body = body || '!' WHERE id = 1")
            conn.execute("ALTER TABLE shared_notes ADD COLUMN extra int")

        assert client.unbind(instance, first_id).status_code == 200
        with connect_with(second) as conn:
            rows = conn.execute("SELECT body FROM shared_notes ORDER BY id").fetchall()
            assert rows == [("from first!",), ("from second",)]
            conn.execute("DELETE FROM shared_notes WHERE id = 1")
            conn.execute("DROP TABLE shared_notes")
    finally:
        client.deprovision(instance)
