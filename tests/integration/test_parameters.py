"""Instance and binding parameters, and what unbind, deprovision and rotation do to live sessions.

Extensions are checked in ``pg_extension`` of the instance's database, the
recorded parameters through the fetch endpoint, and sessions by using them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from postgres_service_broker.local_cluster import LocalCluster
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.cluster_state import binding_footprint, connect_with, instance_footprint
from tests.support.osb_client import OsbClient, new_id


def provision(osb: OsbClient, extensions: list[str] | None = None) -> str:
    instance = new_id()
    params = {"extensions": extensions} if extensions is not None else None
    resp = osb.provision(instance, parameters=params)
    assert resp.status_code == 201, resp.text
    return instance


def bind(osb: OsbClient, instance: str, binding: str | None = None, **params: Any) -> dict[str, Any]:
    resp = osb.bind(instance, binding or new_id(), parameters=params or None)
    assert resp.status_code == 201, resp.text
    return resp.json()["credentials"]


def recorded_extensions(osb: OsbClient, instance: str) -> list[str]:
    resp = osb.fetch_instance(instance)
    assert resp.status_code == 200, resp.text
    return resp.json()["parameters"]["extensions"]


def session_is_dead(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


# -- extensions ----------------------------------------------------------------------


def test_provision_creates_the_requested_extensions(osb: OsbClient, pg_cluster: LocalCluster) -> None:
    instance = provision(osb, ["citext", "pgcrypto"])
    assert instance_footprint(pg_cluster, instance).extensions == {"citext", "pgcrypto"}
    assert recorded_extensions(osb, instance) == ["citext", "pgcrypto"]
    assert osb.deprovision(instance).status_code == 200


def test_update_adds_and_removes_extensions(osb: OsbClient, pg_cluster: LocalCluster) -> None:
    instance = provision(osb, ["citext", "pgcrypto"])
    resp = osb.update(instance, parameters={"extensions": ["citext", "hstore"]})
    assert resp.status_code == 200, resp.text
    assert instance_footprint(pg_cluster, instance).extensions == {"citext", "hstore"}
    assert recorded_extensions(osb, instance) == ["citext", "hstore"]
    creds = bind(osb, instance)
    with connect_with(creds) as conn:  # a binding can use what was added
        assert conn.execute("SELECT 'a=>1'::hstore -> 'a'").fetchone()[0] == "1"
    assert osb.deprovision(instance).status_code == 200


def test_removing_an_extension_in_use_is_refused_and_changes_nothing(
    osb: OsbClient, pg_cluster: LocalCluster
) -> None:
    instance = provision(osb, ["citext", "hstore"])
    creds = bind(osb, instance)
    with connect_with(creds) as conn:
        conn.execute("CREATE TABLE users (email citext PRIMARY KEY)")
        conn.execute("INSERT INTO users VALUES ('Ada@Example.org')")

    # Drops citext (in use) and adds pg_trgm in one request: all or nothing.
    resp = osb.update(instance, parameters={"extensions": ["hstore", "pg_trgm"]})
    assert resp.status_code == 422, resp.text
    assert "citext" in resp.json()["description"]

    assert instance_footprint(pg_cluster, instance).extensions == {"citext", "hstore"}
    assert recorded_extensions(osb, instance) == ["citext", "hstore"]
    with connect_with(creds) as conn:
        row = conn.execute("SELECT email FROM users WHERE email = 'ada@example.org'").fetchone()
        assert row == ("Ada@Example.org",)
    assert osb.deprovision(instance).status_code == 200


@pytest.fixture(scope="module")
def broker_with_missing_extension(
    pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OsbClient]:
    """A broker whose operator allowed an extension this server does not have."""
    workdir: Path = tmp_path_factory.mktemp("broker-missing-ext")
    proc = BrokerProcess.write(workdir, pg_cluster, allowed_extensions=["citext", "no_such_ext"]).start()
    yield OsbClient(proc.url, BROKER_USER, BROKER_PASSWORD)
    proc.stop()


def test_provision_with_an_allowed_but_missing_extension_is_refused(
    broker_with_missing_extension: OsbClient, pg_cluster: LocalCluster
) -> None:
    osb = broker_with_missing_extension
    instance = new_id()
    resp = osb.provision(instance, parameters={"extensions": ["citext", "no_such_ext"]})
    assert resp.status_code == 400, resp.text
    assert "no_such_ext" in resp.json()["description"]
    footprint = instance_footprint(pg_cluster, instance)
    assert footprint.absent, footprint
    assert osb.fetch_instance(instance).status_code == 404


def test_update_with_an_allowed_but_missing_extension_is_refused(
    broker_with_missing_extension: OsbClient, pg_cluster: LocalCluster
) -> None:
    osb = broker_with_missing_extension
    instance = provision(osb, ["citext"])
    resp = osb.update(instance, parameters={"extensions": ["no_such_ext"]})
    assert resp.status_code == 400, resp.text
    assert "no_such_ext" in resp.json()["description"]
    assert instance_footprint(pg_cluster, instance).extensions == {"citext"}
    assert recorded_extensions(osb, instance) == ["citext"]
    assert osb.deprovision(instance).status_code == 200


# -- unbind and deprovision with live sessions ---------------------------------------------


def test_unbind_ends_the_bindings_sessions_and_keeps_what_it_made(
    osb: OsbClient, pg_cluster: LocalCluster
) -> None:
    instance, binding = provision(osb), new_id()
    creds = bind(osb, instance, binding)
    session = connect_with(creds)
    try:
        session.execute("CREATE TABLE as_owner (v int)")
        session.execute("INSERT INTO as_owner VALUES (1)")
        session.execute("SET ROLE NONE")  # now creating as the login role itself
        session.execute("CREATE TABLE as_login (v int)")
        session.execute("INSERT INTO as_login VALUES (2)")

        assert osb.unbind(instance, binding).status_code == 200
        assert session_is_dead(session)
    finally:
        session.close()
    assert binding_footprint(pg_cluster, binding).absent
    with pytest.raises(psycopg.OperationalError):
        connect_with(creds)

    other = bind(osb, instance)
    with connect_with(other) as conn:
        assert conn.execute("SELECT v FROM as_owner UNION ALL SELECT v FROM as_login").fetchall() == [
            (1,),
            (2,),
        ]
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE tablename IN ('as_owner', 'as_login')"
        ).fetchall()
        assert owners == [(creds["name"] + "_owner",)]
    assert osb.deprovision(instance).status_code == 200


def test_deprovision_with_open_sessions_and_remaining_bindings_drops_everything(
    osb: OsbClient, pg_cluster: LocalCluster
) -> None:
    instance, bindings = provision(osb, ["citext"]), [new_id(), new_id()]
    sessions = [connect_with(bind(osb, instance, b, **{"read_only": i == 1})) for i, b in enumerate(bindings)]
    try:
        sessions[0].execute("CREATE TABLE t (v int)")
        sessions[1].execute("BEGIN")  # one idle in a transaction, holding a snapshot
        sessions[1].execute("SELECT count(*) FROM t")
        resp = osb.deprovision(instance)
        assert resp.status_code == 200, resp.text
        assert all(session_is_dead(s) for s in sessions)
    finally:
        for session in sessions:
            session.close()
    assert instance_footprint(pg_cluster, instance).absent
    assert all(binding_footprint(pg_cluster, b).absent for b in bindings)


# -- binding rotation ------------------------------------------------------------------------


def rotate(osb: OsbClient, instance: str, predecessor: str) -> tuple[str, requests.Response]:
    """The rotation request as the spec gives it: only ``predecessor_binding_id`` in the body."""
    binding = new_id()
    resp = osb.request(
        "PUT",
        f"/v2/service_instances/{instance}/service_bindings/{binding}",
        json={"predecessor_binding_id": predecessor},
    )
    return binding, resp


def test_rotation_gives_new_credentials_and_both_work_until_the_old_is_unbound(
    osb: OsbClient,
) -> None:
    instance, old_id = provision(osb), new_id()
    old = bind(osb, instance, old_id)
    new_id_, resp = rotate(osb, instance, old_id)
    assert resp.status_code == 201, resp.text
    new = resp.json()["credentials"]
    assert new["username"] != old["username"]
    assert new["password"] != old["password"]
    assert new["name"] == old["name"]

    with connect_with(old) as conn:
        conn.execute("CREATE TABLE rotating (v int)")
        conn.execute("INSERT INTO rotating VALUES (1)")
    with connect_with(new) as conn:
        conn.execute("INSERT INTO rotating VALUES (2)")
    with connect_with(old) as conn:
        assert conn.execute("SELECT count(*) FROM rotating").fetchone()[0] == 2

    assert osb.unbind(instance, old_id).status_code == 200
    with pytest.raises(psycopg.OperationalError):
        connect_with(old)
    with connect_with(new) as conn:
        assert conn.execute("SELECT count(*) FROM rotating").fetchone()[0] == 2
    assert osb.fetch_binding(instance, new_id_).json()["credentials"] == new
    # The platform may repeat the rotation request after the predecessor is gone.
    repeat = osb.request(
        "PUT",
        f"/v2/service_instances/{instance}/service_bindings/{new_id_}",
        json={"predecessor_binding_id": old_id},
    )
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["credentials"] == new
    assert osb.deprovision(instance).status_code == 200


def test_a_rotated_read_only_binding_stays_read_only(osb: OsbClient) -> None:
    instance = provision(osb)
    writer = bind(osb, instance)
    with connect_with(writer) as conn:
        conn.execute("CREATE TABLE facts (v int)")
        conn.execute("INSERT INTO facts VALUES (42)")
    old_id = new_id()
    bind(osb, instance, old_id, read_only=True)
    new_id_, resp = rotate(osb, instance, old_id)
    assert resp.status_code == 201, resp.text
    assert osb.fetch_binding(instance, new_id_).json()["parameters"] == {"read_only": True}
    assert osb.unbind(instance, old_id).status_code == 200

    with connect_with(resp.json()["credentials"]) as conn:
        assert conn.execute("SELECT v FROM facts").fetchall() == [(42,)]
        conn.execute("SET default_transaction_read_only = off")
        for statement in ("INSERT INTO facts VALUES (1)", "CREATE TABLE mine (v int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert osb.deprovision(instance).status_code == 200
