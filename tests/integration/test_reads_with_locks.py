"""What an operation reads and writes in the same round trip as its locks, on a real server.

The broker looks up the roles an operation's SQL starts from, and writes a new
binding's record, pipelined behind its advisory locks. These tests hold those
statements to the answers the separate queries they replace would give.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from postgres_service_broker.backends import shared_sql, shared_state
from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.backends.shared_state import BindingRecord, InstanceRecord
from postgres_service_broker.local_cluster import LocalCluster

VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5"


def test_role_existence_says_which_roles_exist(admin_conn: psycopg.Connection) -> None:
    present = f"present_{uuid.uuid4().hex[:12]}"
    absent = f"absent_{uuid.uuid4().hex[:12]}"
    hostile = 'x"; DROP ROLE postgres; --'
    admin_conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(present)))
    try:
        statement = shared_sql.role_existence_statement([present, absent, hostile])
        known = shared_sql.role_existence(admin_conn.execute(statement.sql, statement.params))
    finally:
        admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(present)))
    assert known == {present: True, absent: False, hostile: False}


def test_role_exists_takes_a_known_answer_and_asks_for_the_rest(admin_conn: psycopg.Connection) -> None:
    present = f"present_{uuid.uuid4().hex[:12]}"
    admin_conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(present)))
    try:
        # A known answer is taken as it is (here a stale one, to tell it from the server's)...
        assert not shared_sql.role_exists(admin_conn, present, {present: False})
        # ...and a role it does not name is looked up.
        assert shared_sql.role_exists(admin_conn, present, {"someone_else": False})
        assert not shared_sql.role_exists(admin_conn, f"absent_{uuid.uuid4().hex[:12]}", {})
    finally:
        admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(present)))


def _known(conn: psycopg.Connection, roles: list[str]) -> dict[str, bool]:
    statement = shared_sql.role_existence_statement(roles)
    return shared_sql.role_existence(conn.execute(statement.sql, statement.params))


def test_an_instance_and_a_binding_made_and_removed_with_known_roles(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection
) -> None:
    names = InstanceNames.for_instance(str(uuid.uuid4()))
    role = binding_role(str(uuid.uuid4()))

    def connect(dbname: str) -> psycopg.Connection:
        return psycopg.connect(**{**pg_cluster.conninfo(), "dbname": dbname}, autocommit=True)

    known = _known(admin_conn, [names.owner_role, names.reader_role])
    assert known == {names.owner_role: False, names.reader_role: False}
    shared_sql.create_group_roles(admin_conn, names, known_roles=known)
    shared_sql.create_database(admin_conn, names, 5)
    shared_sql.restrict_database(admin_conn, names)
    shared_sql.create_login_role(admin_conn, role, VERIFIER, known_roles=_known(admin_conn, [role]))
    assert _known(admin_conn, [names.owner_role, names.reader_role, role]) == {
        names.owner_role: True,
        names.reader_role: True,
        role: True,
    }
    # Again, as a retry would: the role is there now and is altered, not created twice.
    shared_sql.create_login_role(admin_conn, role, VERIFIER, known_roles=_known(admin_conn, [role]))
    shared_sql.drop_login_role(admin_conn, connect, role, names, known_roles=_known(admin_conn, [role]))
    assert not shared_sql.role_exists(admin_conn, role)
    shared_sql.drop_database(admin_conn, names, known_roles=_known(admin_conn, [names.owner_role]))
    assert not shared_sql.database_exists(admin_conn, names.database)
    shared_sql.drop_instance_roles(admin_conn, names, [])
    assert _known(admin_conn, [names.owner_role, names.reader_role]) == {
        names.owner_role: False,
        names.reader_role: False,
    }


# -- a new binding's record, written with the locks ------------------------------------


@pytest.fixture
def state_conn(pg_cluster: LocalCluster, admin_conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A throwaway database with the broker's state schema."""
    dbname = f"state_{uuid.uuid4().hex[:12]}"
    admin_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        with psycopg.connect(**{**pg_cluster.conninfo(), "dbname": dbname}, autocommit=True) as conn:
            shared_state.migrate(conn)
            yield conn
    finally:
        admin_conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))


def _instance(conn: psycopg.Connection, state: str) -> str:
    instance_id = str(uuid.uuid4())
    shared_state.insert_instance(
        conn,
        InstanceRecord(
            instance_id=instance_id,
            service_id="s",
            plan_id="p",
            database_name=f"db_{instance_id}",
            organization_guid="o",
            space_guid="sp",
            parameters={},
            context={},
            maintenance_version=None,
            state=state,
        ),
    )
    return instance_id


def _binding(instance_id: str, binding_id: str | None = None) -> BindingRecord:
    binding_id = binding_id or str(uuid.uuid4())
    return BindingRecord(
        binding_id=binding_id,
        instance_id=instance_id,
        role_name=binding_role(binding_id),
        service_id="s",
        plan_id="p",
        app_guid=None,
        predecessor_binding_id=None,
        parameters={"read_only": True},
        context={"platform": "cloudfoundry"},
        password_sealed=b"\x00sealed",
        state="creating",
    )


def _insert(conn: psycopg.Connection, rec: BindingRecord) -> bool:
    statement = shared_state.insert_binding_if_new_statement(rec)
    return shared_state.was_inserted(conn.execute(statement.sql, statement.params))


def test_a_new_binding_of_a_ready_instance_is_written_whole(state_conn: psycopg.Connection) -> None:
    rec = _binding(_instance(state_conn, "ready"))
    assert _insert(state_conn, rec)
    assert shared_state.get_binding(state_conn, rec.binding_id) == rec


@pytest.mark.parametrize("state", ["creating", "deleting", "missing"])
def test_no_binding_is_written_for_an_instance_that_is_not_ready(
    state_conn: psycopg.Connection, state: str
) -> None:
    instance_id = str(uuid.uuid4()) if state == "missing" else _instance(state_conn, state)
    rec = _binding(instance_id)
    assert not _insert(state_conn, rec)
    assert shared_state.get_binding(state_conn, rec.binding_id) is None


def test_an_existing_binding_is_left_as_it_was(state_conn: psycopg.Connection) -> None:
    instance_id = _instance(state_conn, "ready")
    first = _binding(instance_id)
    assert _insert(state_conn, first)
    # The same id again, from another instance or with other attributes: nothing changes.
    again = _binding(_instance(state_conn, "ready"), first.binding_id)
    assert not _insert(state_conn, again)
    assert shared_state.get_binding(state_conn, first.binding_id) == first
