"""A broker whose admin is not a superuser, only CREATEDB + CREATEROLE, as managed PostgreSQL offers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from postgres_service_broker.local_cluster import LocalCluster
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import OsbClient, new_id


@pytest.fixture
def limited_admin(admin_conn: psycopg.Connection) -> Iterator[tuple[str, str]]:
    role, password = "limited_" + uuid.uuid4().hex[:8], "limited-admin-password"
    admin_conn.execute(f"CREATE ROLE {role} LOGIN CREATEDB CREATEROLE PASSWORD '{password}'")
    yield role, password
    for (db,) in admin_conn.execute(
        "SELECT datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = %s", (role,)
    ).fetchall():
        admin_conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
    admin_conn.execute(f"DROP OWNED BY {role}")
    admin_conn.execute(f"DROP ROLE {role}")


def test_full_lifecycle_with_a_createdb_createrole_admin(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection, limited_admin: tuple[str, str], tmp_path: Path
) -> None:
    role, password = limited_admin
    broker = BrokerProcess.write(
        tmp_path,
        pg_cluster,
        database={"user": role, "password": password, "state_database": f"{role}_state"},
    ).start()
    try:
        osb = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
        instance, writer_id, reader_id = new_id(), new_id(), new_id()
        resp = osb.provision(instance, parameters={"extensions": ["citext"]})
        assert resp.status_code == 201, resp.text + broker.log()[-2000:]
        writer = osb.bind(instance, writer_id).json()["credentials"]
        reader = osb.bind(instance, reader_id, parameters={"read_only": True}).json()["credentials"]
        with psycopg.connect(writer["uri"], autocommit=True) as conn:
            conn.execute("CREATE TABLE t (v citext)")
            conn.execute("INSERT INTO t VALUES ('x')")
        with psycopg.connect(reader["uri"], autocommit=True) as conn:
            assert conn.execute("SELECT v FROM t").fetchone()[0] == "x"
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO t VALUES ('y')")
        assert osb.update(instance, parameters={"extensions": ["citext", "pgcrypto"]}).status_code == 200
        assert osb.unbind(instance, writer_id).status_code == 200
        assert osb.unbind(instance, reader_id).status_code == 200
        assert osb.deprovision(instance).status_code == 200

        left = admin_conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) OR rolname LIKE %s",
            ([writer["username"], reader["username"]], writer["name"] + "%"),
        ).fetchall()
        assert left == []
        gone = admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (writer["name"],))
        assert gone.fetchone() is None
        # The admin is still there and still not a superuser.
        row = admin_conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        assert row == (False,)
    finally:
        broker.stop()
