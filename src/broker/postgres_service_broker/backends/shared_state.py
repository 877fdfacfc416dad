"""The broker's record of instances and bindings, kept in a small database on the cluster itself.

This is what makes the broker stateless: any broker process can answer any
request, and the record lives and fails over with the data it describes. A row
is written (state ``creating``) *before* the objects it names are made and
removed only *after* they are gone, so after a crash at any point the row says
what to finish or clean up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

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


def insert_instance(conn: psycopg.Connection, rec: InstanceRecord) -> None:
    conn.execute(
        f"INSERT INTO {SCHEMA}.service_instances ({_INSTANCE_COLUMNS}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
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
        ),
    )


def set_instance_state(conn: psycopg.Connection, instance_id: str, state: str) -> None:
    conn.execute(
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


def delete_instance(conn: psycopg.Connection, instance_id: str) -> None:
    conn.execute(f"DELETE FROM {SCHEMA}.service_instances WHERE instance_id = %s", (instance_id,))


def get_binding(conn: psycopg.Connection, binding_id: str) -> BindingRecord | None:
    with conn.cursor(row_factory=class_row(BindingRecord)) as cur:
        cur.execute(
            f"SELECT {_BINDING_COLUMNS} FROM {SCHEMA}.service_bindings WHERE binding_id = %s",
            (binding_id,),
        )
        return cur.fetchone()


def bindings_of(conn: psycopg.Connection, instance_id: str) -> list[BindingRecord]:
    with conn.cursor(row_factory=class_row(BindingRecord)) as cur:
        cur.execute(
            f"SELECT {_BINDING_COLUMNS} FROM {SCHEMA}.service_bindings WHERE instance_id = %s",
            (instance_id,),
        )
        return cur.fetchall()


def insert_binding(conn: psycopg.Connection, rec: BindingRecord) -> None:
    conn.execute(
        f"INSERT INTO {SCHEMA}.service_bindings ({_BINDING_COLUMNS}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
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
        ),
    )


def set_binding_state(conn: psycopg.Connection, binding_id: str, state: str) -> None:
    conn.execute(
        f"UPDATE {SCHEMA}.service_bindings SET state = %s WHERE binding_id = %s",
        (state, binding_id),
    )


def delete_binding(conn: psycopg.Connection, binding_id: str) -> None:
    conn.execute(f"DELETE FROM {SCHEMA}.service_bindings WHERE binding_id = %s", (binding_id,))
