"""A caller's statement sent with another in one round trip and one transaction, on a real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql

from postgres_service_broker.backends import shared_sql
from postgres_service_broker.backends.shared_names import InstanceNames
from postgres_service_broker.backends.statements import Statement, execute_with
from postgres_service_broker.local_cluster import LocalCluster


@pytest.fixture
def notes(admin_conn: psycopg.Connection) -> Iterator[str]:
    table = f"notes_{uuid.uuid4().hex[:12]}"
    admin_conn.execute(sql.SQL("CREATE TABLE {} (note text)").format(sql.Identifier(table)))
    yield table
    admin_conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def _note(table: str, text: str) -> Statement:
    return Statement(f'INSERT INTO "{table}" VALUES (%s)', (text,))


def _notes(conn: psycopg.Connection, table: str) -> list[str]:
    return [
        r[0] for r in conn.execute(sql.SQL("SELECT note FROM {} ORDER BY 1").format(sql.Identifier(table)))
    ]


def test_both_run_and_the_query_result_is_returned(admin_conn: psycopg.Connection, notes: str) -> None:
    cur = execute_with(admin_conn, "SELECT 41 + 1", after=_note(notes, "after"))
    assert cur.fetchone() == (42,)
    assert _notes(admin_conn, notes) == ["after"]


def test_a_failing_query_leaves_the_after_statement_undone(
    admin_conn: psycopg.Connection, notes: str
) -> None:
    with pytest.raises(errors.DivisionByZero):
        execute_with(admin_conn, "SELECT 1 / 0", after=_note(notes, "after"))
    assert _notes(admin_conn, notes) == []
    # The connection is usable again at once.
    assert admin_conn.execute("SELECT 1").fetchone() == (1,)


def test_a_failing_after_statement_undoes_the_query(admin_conn: psycopg.Connection, notes: str) -> None:
    with pytest.raises(errors.UndefinedTable):
        execute_with(
            admin_conn, sql.SQL("DROP TABLE {}").format(sql.Identifier(notes)), after=_note("nowhere", "x")
        )
    assert _notes(admin_conn, notes) == []  # the table is still there


@pytest.fixture
def names(admin_conn: psycopg.Connection) -> Iterator[InstanceNames]:
    names = InstanceNames.for_instance(str(uuid.uuid4()))
    shared_sql.create_group_roles(admin_conn, names)
    yield names
    shared_sql.drop_instance_roles(admin_conn, names, [])


def test_dropping_a_login_role_carries_the_after_statement(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection, names: InstanceNames, notes: str
) -> None:
    role = f"login_{uuid.uuid4().hex[:12]}"
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    shared_sql.drop_login_role(admin_conn, _connect(pg_cluster), role, names, after=_note(notes, "dropped"))
    assert not shared_sql.role_exists(admin_conn, role)
    assert _notes(admin_conn, notes) == ["dropped"]
    # Already gone: the after statement still runs, on its own.
    shared_sql.drop_login_role(admin_conn, _connect(pg_cluster), role, names, after=_note(notes, "again"))
    assert _notes(admin_conn, notes) == ["again", "dropped"]


def test_a_role_that_cannot_be_dropped_leaves_the_after_statement_undone(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection, names: InstanceNames, notes: str
) -> None:
    role = f"owner_{uuid.uuid4().hex[:12]}"
    elsewhere = f"elsewhere_{uuid.uuid4().hex[:12]}"
    admin_conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    # A database the role owns outright: neither DROP OWNED in the instance's database nor here removes it.
    admin_conn.execute(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(elsewhere), sql.Identifier(role))
    )
    try:
        with pytest.raises(errors.DependentObjectsStillExist):
            shared_sql.drop_login_role(
                admin_conn, _connect(pg_cluster), role, names, after=_note(notes, "dropped")
            )
        assert _notes(admin_conn, notes) == []
    finally:
        admin_conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(elsewhere)))
        admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_dropping_an_instances_roles_carries_the_after_statement(
    admin_conn: psycopg.Connection, notes: str
) -> None:
    names = InstanceNames.for_instance(str(uuid.uuid4()))
    shared_sql.create_group_roles(admin_conn, names)
    shared_sql.drop_instance_roles(admin_conn, names, [], after=_note(notes, "dropped"))
    assert not shared_sql.role_exists(admin_conn, names.owner_role)
    assert not shared_sql.role_exists(admin_conn, names.reader_role)
    assert _notes(admin_conn, notes) == ["dropped"]
    shared_sql.drop_instance_roles(admin_conn, names, [], after=_note(notes, "again"))
    assert _notes(admin_conn, notes) == ["again", "dropped"]


def _connect(pg_cluster: LocalCluster):
    def connect(dbname: str) -> psycopg.Connection:
        return psycopg.connect(**{**pg_cluster.conninfo(), "dbname": dbname}, autocommit=True)

    return connect


@pytest.mark.parametrize("read_only", [False, True])
def test_granting_a_login_role_carries_the_after_statement(
    admin_conn: psycopg.Connection, names: InstanceNames, notes: str, read_only: bool
) -> None:
    role = f"login_{uuid.uuid4().hex[:12]}"
    shared_sql.create_login_role(admin_conn, role, "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5")
    try:
        shared_sql.grant_login_role(
            admin_conn, role, names, read_only=read_only, after=_note(notes, "granted")
        )
        group = names.reader_role if read_only else names.owner_role
        row = admin_conn.execute(
            "SELECT pg_has_role(%s, %s, 'MEMBER'), "
            "(SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = %s AND s.setdatabase = 0)",
            (role, group, role),
        ).fetchone()
        assert row is not None
        assert row[0], f"{role} is not a member of {group}"
        assert f"role={group}" in row[1]
        assert ("default_transaction_read_only=on" in row[1]) is read_only
        assert _notes(admin_conn, notes) == ["granted"]
    finally:
        admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_failed_grant_leaves_the_after_statement_undone(
    admin_conn: psycopg.Connection, names: InstanceNames, notes: str
) -> None:
    with pytest.raises(errors.UndefinedObject):
        shared_sql.grant_login_role(
            admin_conn, "no_such_role", names, read_only=False, after=_note(notes, "granted")
        )
    with pytest.raises(errors.InvalidCatalogName):
        shared_sql.grant_database_access(admin_conn, names, after=_note(notes, "granted"))
    assert _notes(admin_conn, notes) == []
