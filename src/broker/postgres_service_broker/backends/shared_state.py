"""The broker's record of instances and bindings, kept in a small database on the cluster itself.

This is what makes the broker stateless: any broker process can answer any
request, and the record lives and fails over with the data it describes. A row
is written (state ``creating``) *before* the objects it names are made and
removed only once they are gone (in the same transaction as the last of them),
so after a crash at any point the row says what to finish or clean up. The
writes that end an operation (``ready``, or the removal) are statements the
caller sends along with its last DDL statement, in one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from postgres_service_broker.backends.statements import Statement

SCHEMA = "broker"

_MIGRATIONS = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.service_instances (
        instance_id text PRIMARY KEY,
        service_id text NOT NULL,
        plan_id text NOT NULL,
        database_name text NOT NULL UNIQUE,
        organization_guid text NOT NULL,
        space_guid text NOT NULL,
        parameters jsonb NOT NULL DEFAULT '{{}}',
        context jsonb NOT NULL DEFAULT '{{}}',
        maintenance_version text,
        state text NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.service_bindings (
        binding_id text PRIMARY KEY,
        instance_id text NOT NULL REFERENCES {SCHEMA}.service_instances ON DELETE CASCADE,
        role_name text NOT NULL UNIQUE,
        service_id text,
        plan_id text,
        app_guid text,
        predecessor_binding_id text,
        parameters jsonb NOT NULL DEFAULT '{{}}',
        context jsonb NOT NULL DEFAULT '{{}}',
        password_sealed bytea NOT NULL,
        state text NOT NULL CHECK (state IN ('creating', 'ready', 'deleting')),
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    f"CREATE INDEX IF NOT EXISTS service_bindings_instance ON {SCHEMA}.service_bindings (instance_id)",
]


@dataclass(frozen=True)
class InstanceRecord:
    instance_id: str
    service_id: str
    plan_id: str
    database_name: str
    organization_guid: str
    space_guid: str
    parameters: dict[str, Any]
    context: dict[str, Any]
    maintenance_version: str | None
    state: str


@dataclass(frozen=True)
class BindingRecord:
    binding_id: str
    instance_id: str
    role_name: str
    service_id: str | None
    plan_id: str | None
    app_guid: str | None
    predecessor_binding_id: str | None
    parameters: dict[str, Any]
    context: dict[str, Any]
    password_sealed: bytes
    state: str


def migrate(conn: psycopg.Connection) -> None:
    """Create the schema; safe to run from several brokers at once."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('postgres-service-broker:migrate'))")
        for stmt in _MIGRATIONS:
            conn.execute(stmt)
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(SCHEMA)))


_INSTANCE_COLUMNS = (
    "instance_id, service_id, plan_id, database_name, organization_guid, space_guid, "
    "parameters, context, maintenance_version, state"
)
_BINDING_COLUMNS = (
    "binding_id, instance_id, role_name, service_id, plan_id, app_guid, "
    "predecessor_binding_id, parameters, context, password_sealed, state"
)


def get_instance(conn: psycopg.Connection, instance_id: str) -> InstanceRecord | None:
    with conn.cursor(row_factory=class_row(InstanceRecord)) as cur:
        cur.execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM {SCHEMA}.service_instances WHERE instance_id = %s",
            (instance_id,),
        )
        return cur.fetchone()


def _instance_values(rec: InstanceRecord) -> tuple[Any, ...]:
    return (
        rec.instance_id,
        rec.service_id,
        rec.plan_id,
        rec.database_name,
        rec.organization_guid,
        rec.space_guid,
        Jsonb(rec.parameters),
        Jsonb(rec.context),
        rec.maintenance_version,
        rec.state,
    )


_INSERT_INSTANCE = (
    f"INSERT INTO {SCHEMA}.service_instances ({_INSTANCE_COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def insert_instance(conn: psycopg.Connection, rec: InstanceRecord) -> None:
    conn.execute(_INSERT_INSTANCE, _instance_values(rec))


def insert_instance_if_absent_statement(rec: InstanceRecord) -> Statement:
    """Insert the record unless one with its id exists; `was_inserted` reads its result."""
    return Statement(_INSERT_INSTANCE + " ON CONFLICT (instance_id) DO NOTHING", _instance_values(rec))


def was_inserted(cur: psycopg.Cursor) -> bool:
    return cur.rowcount == 1


def set_instance_state_statement(instance_id: str, state: str) -> Statement:
    return Statement(
        f"UPDATE {SCHEMA}.service_instances SET state = %s, updated_at = now() WHERE instance_id = %s",
        (state, instance_id),
    )


def update_instance(
    conn: psycopg.Connection,
    instance_id: str,
    *,
    plan_id: str,
    parameters: dict[str, Any],
    context: dict[str, Any],
    maintenance_version: str | None,
) -> None:
    conn.execute(
        f"UPDATE {SCHEMA}.service_instances SET plan_id = %s, parameters = %s, context = %s, "
        "maintenance_version = %s, updated_at = now() WHERE instance_id = %s",
        (plan_id, Jsonb(parameters), Jsonb(context), maintenance_version, instance_id),
    )


def mark_instance_deleting_statement(instance_id: str) -> Statement:
    """Set the instance to ``deleting``; `roles_to_drop` reads the result.

    One statement, committed before anything is dropped, so a crash after it
    leaves a record that says what to finish.
    """
    return Statement(
        f"WITH marked AS (UPDATE {SCHEMA}.service_instances SET state = 'deleting', updated_at = now() "
        "WHERE instance_id = %s RETURNING instance_id) "
        f"SELECT b.role_name FROM marked LEFT JOIN {SCHEMA}.service_bindings b USING (instance_id)",
        (instance_id,),
    )


def roles_to_drop(cur: psycopg.Cursor) -> list[str] | None:
    """The login roles of the marked instance's bindings, or None if there was no such instance."""
    rows = cur.fetchall()
    if not rows:
        return None
    return [role for (role,) in rows if role is not None]


def delete_instance_statement(instance_id: str) -> Statement:
    """Remove the instance's record (its bindings' rows go with it)."""
    return Statement(f"DELETE FROM {SCHEMA}.service_instances WHERE instance_id = %s", (instance_id,))


def get_binding(conn: psycopg.Connection, binding_id: str) -> BindingRecord | None:
    with conn.cursor(row_factory=class_row(BindingRecord)) as cur:
        cur.execute(
            f"SELECT {_BINDING_COLUMNS} FROM {SCHEMA}.service_bindings WHERE binding_id = %s",
            (binding_id,),
        )
        return cur.fetchone()


def instance_and_binding_statement(instance_id: str, binding_id: str) -> Statement:
    """Both records a bind starts from, in one statement (so also from one snapshot).

    `instance_and_binding` reads its result.
    """
    instance_columns = ", ".join(f"i.{c.strip()}" for c in _INSTANCE_COLUMNS.split(","))
    binding_columns = ", ".join(f"b.{c.strip()}" for c in _BINDING_COLUMNS.split(","))
    return Statement(
        f"SELECT {instance_columns}, {binding_columns} FROM (SELECT 1) AS one "
        f"LEFT JOIN {SCHEMA}.service_instances i ON i.instance_id = %s "
        f"LEFT JOIN {SCHEMA}.service_bindings b ON b.binding_id = %s",
        (instance_id, binding_id),
    )


def instance_and_binding(cur: psycopg.Cursor) -> tuple[InstanceRecord | None, BindingRecord | None]:
    row = cur.fetchone()
    assert row is not None  # the outer side is a single row
    split = len(fields(InstanceRecord))
    inst, binding = row[:split], row[split:]
    return (
        InstanceRecord(*inst) if inst[0] is not None else None,
        BindingRecord(*binding) if binding[0] is not None else None,
    )


_INSERT_BINDING = (
    f"INSERT INTO {SCHEMA}.service_bindings ({_BINDING_COLUMNS}) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _binding_values(rec: BindingRecord) -> tuple[Any, ...]:
    return (
        rec.binding_id,
        rec.instance_id,
        rec.role_name,
        rec.service_id,
        rec.plan_id,
        rec.app_guid,
        rec.predecessor_binding_id,
        Jsonb(rec.parameters),
        Jsonb(rec.context),
        rec.password_sealed,
        rec.state,
    )


def insert_binding(conn: psycopg.Connection, rec: BindingRecord) -> None:
    conn.execute(_INSERT_BINDING, _binding_values(rec))


def insert_binding_if_new_statement(rec: BindingRecord) -> Statement:
    """Insert the record only if its instance is ready and no binding has its id or role.

    Sent behind `instance_and_binding_statement`, which reads the state this
    one starts from: a bind that finds a ready instance and no binding has
    thereby written its record. `was_inserted` reads the result.
    """
    columns = ", ".join(f"%s AS {c.strip()}" for c in _BINDING_COLUMNS.split(","))
    return Statement(
        f"INSERT INTO {SCHEMA}.service_bindings ({_BINDING_COLUMNS}) "
        f"SELECT {_BINDING_COLUMNS} FROM (SELECT {columns}) AS new "
        f"WHERE EXISTS (SELECT FROM {SCHEMA}.service_instances i "
        "WHERE i.instance_id = new.instance_id AND i.state = 'ready') "
        "ON CONFLICT DO NOTHING",
        _binding_values(rec),
    )


def set_binding_state_statement(binding_id: str, state: str) -> Statement:
    return Statement(
        f"UPDATE {SCHEMA}.service_bindings SET state = %s WHERE binding_id = %s", (state, binding_id)
    )


def mark_binding_deleting_statement(binding_id: str, instance_id: str) -> Statement:
    """Set a binding of this instance to ``deleting``; `role_to_drop` reads the result."""
    return Statement(
        f"UPDATE {SCHEMA}.service_bindings SET state = 'deleting' "
        "WHERE binding_id = %s AND instance_id = %s RETURNING role_name",
        (binding_id, instance_id),
    )


def role_to_drop(cur: psycopg.Cursor) -> str | None:
    """The marked binding's login role, or None if there was no such binding."""
    row = cur.fetchone()
    return row[0] if row else None


def delete_binding_statement(binding_id: str) -> Statement:
    return Statement(f"DELETE FROM {SCHEMA}.service_bindings WHERE binding_id = %s", (binding_id,))
