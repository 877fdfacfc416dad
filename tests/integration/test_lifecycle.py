"""The whole life of an instance through the broker over HTTP, checked against the real cluster."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.osb_client import LARGE_PLAN, OsbClient, new_id


def connect(creds: dict) -> psycopg.Connection:
    return psycopg.connect(creds["uri"], autocommit=True, connect_timeout=5)


def test_provision_bind_use_unbind_deprovision(osb: OsbClient, admin_conn: psycopg.Connection) -> None:
    instance, binding = new_id(), new_id()
    assert osb.provision(instance, parameters={"extensions": ["citext"]}).status_code == 201
    resp = osb.bind(instance, binding)
    assert resp.status_code == 201, resp.text
    creds = resp.json()["credentials"]
    assert set(creds) >= {"uri", "jdbcUrl", "hostname", "hosts", "port", "name", "username", "password"}

    with connect(creds) as conn:
        conn.execute("CREATE TABLE notes (body citext)")
        conn.execute("INSERT INTO notes VALUES ('Hello')")
        assert conn.execute("SELECT count(*) FROM notes WHERE body = 'hello'").fetchone()[0] == 1
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'").fetchone()[0]
    assert owner == creds["name"] + "_owner"

    assert osb.unbind(instance, binding).status_code == 200
    with pytest.raises(psycopg.OperationalError):
        connect(creds)

    # The table outlives the binding that made it, and the next binding can use it.
    second = osb.bind(instance, new_id()).json()["credentials"]
    with connect(second) as conn:
        assert conn.execute("SELECT body FROM notes").fetchone()[0] == "Hello"
        conn.execute("INSERT INTO notes VALUES ('again')")

    assert osb.deprovision(instance).status_code == 200
    row = admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (creds["name"],)).fetchone()
    assert row is None
    roles = admin_conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE %s OR rolname = ANY(%s)",
        (creds["name"] + "%", [creds["username"], second["username"]]),
    ).fetchall()
    assert roles == []


def test_update_plan_changes_connection_limit(osb: OsbClient, admin_conn: psycopg.Connection) -> None:
    instance = new_id()
    assert osb.provision(instance).status_code == 201
    creds = osb.bind(instance, new_id()).json()["credentials"]
    limit = "SELECT datconnlimit FROM pg_database WHERE datname = %s"
    assert admin_conn.execute(limit, (creds["name"],)).fetchone()[0] == 10
    resp = osb.update(instance, plan_id=LARGE_PLAN)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}
    assert admin_conn.execute(limit, (creds["name"],)).fetchone()[0] == 100
    assert osb.fetch_instance(instance).json()["plan_id"] == LARGE_PLAN
