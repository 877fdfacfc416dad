"""What really exists on a cluster for OSB ids: databases, roles, the broker's record rows.

Tests ask PostgreSQL itself (as superuser), never the broker, so a broker that
reports success without doing the work is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.local_cluster import LocalCluster

STATE_DATABASE = "service_broker"


def connect_with(creds: dict[str, Any], **overrides: Any) -> psycopg.Connection:
    """Connect as an app would, from the binding's credentials; `overrides` change libpq keywords."""
    kwargs: dict[str, Any] = {
        "host": creds["hostname"],
        "port": creds["port"],
        "dbname": creds["name"],
        "user": creds["username"],
        "password": creds["password"],
        "connect_timeout": 5,
        **overrides,
    }
    return psycopg.connect(**kwargs, autocommit=True)


def _state_conn(cluster: LocalCluster) -> psycopg.Connection:
    return psycopg.connect(**cluster.conninfo(STATE_DATABASE), autocommit=True)


def _admin_conn(cluster: LocalCluster, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(**cluster.conninfo(dbname), autocommit=True)


@dataclass(frozen=True)
class InstanceFootprint:
    """Everything of one instance that exists on the cluster right now."""

    database: bool
    owner_role: bool
    reader_role: bool
    record_state: str | None
    extensions: frozenset[str]

    @property
    def absent(self) -> bool:
        return not (self.database or self.owner_role or self.reader_role or self.record_state)

    @property
    def complete(self) -> bool:
        return self.database and self.owner_role and self.reader_role and self.record_state == "ready"


def instance_footprint(cluster: LocalCluster, instance_id: str) -> InstanceFootprint:
    names = InstanceNames.for_instance(instance_id)
    with _admin_conn(cluster) as conn:
        database = (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (names.database,)).fetchone()
            is not None
        )
        roles = {
            r[0]
            for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                ([names.owner_role, names.reader_role],),
            ).fetchall()
        }
    extensions: frozenset[str] = frozenset()
    if database:
        with _admin_conn(cluster, names.database) as conn:
            rows = conn.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'").fetchall()
            extensions = frozenset(r[0] for r in rows)
    with _state_conn(cluster) as conn:
        row = conn.execute(
            "SELECT state FROM broker.service_instances WHERE instance_id = %s", (instance_id,)
        ).fetchone()
    return InstanceFootprint(
        database=database,
        owner_role=names.owner_role in roles,
        reader_role=names.reader_role in roles,
        record_state=row[0] if row else None,
        extensions=extensions,
    )


@dataclass(frozen=True)
class BindingFootprint:
    role: bool
    can_login: bool
    member_of: frozenset[str]
    record_state: str | None

    @property
    def absent(self) -> bool:
        return not self.role and self.record_state is None


def binding_footprint(cluster: LocalCluster, binding_id: str) -> BindingFootprint:
    role = binding_role(binding_id)
    with _admin_conn(cluster) as conn:
        row = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        groups = conn.execute(
            "SELECT g.rolname FROM pg_auth_members am JOIN pg_roles g ON g.oid = am.roleid "
            "JOIN pg_roles m ON m.oid = am.member WHERE m.rolname = %s",
            (role,),
        ).fetchall()
    with _state_conn(cluster) as conn:
        rec = conn.execute(
            "SELECT state FROM broker.service_bindings WHERE binding_id = %s", (binding_id,)
        ).fetchone()
    return BindingFootprint(
        role=row is not None,
        can_login=bool(row and row[0]),
        member_of=frozenset(g[0] for g in groups),
        record_state=rec[0] if rec else None,
    )


def orphans(cluster: LocalCluster) -> list[str]:
    """Every disagreement between the objects on the cluster and the broker's record; [] when converged.

    Only meaningful on a cluster that no other test's broker uses, since it
    looks at every ``cf_`` object there.
    """
    with _admin_conn(cluster) as conn:
        databases = {
            r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'cf\\_%'")
        }
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'cf\\_%'")}
    with _state_conn(cluster) as conn:
        instance_rows = conn.execute(
            "SELECT instance_id, database_name, state FROM broker.service_instances"
        ).fetchall()
        binding_rows = conn.execute(
            "SELECT binding_id, role_name, state FROM broker.service_bindings"
        ).fetchall()

    problems: list[str] = []
    expected_dbs: set[str] = set()
    expected_roles: set[str] = set()
    for instance_id, database, state in instance_rows:
        if state != "ready":
            problems.append(f"instance {instance_id} left in state {state}")
        names = InstanceNames.for_instance(instance_id)
        expected_dbs.add(database)
        expected_roles |= {names.owner_role, names.reader_role}
    for binding_id, role, state in binding_rows:
        if state != "ready":
            problems.append(f"binding {binding_id} left in state {state}")
        expected_roles.add(role)
    problems += [f"database {d} has no instance record" for d in sorted(databases - expected_dbs)]
    problems += [f"instance record without database {d}" for d in sorted(expected_dbs - databases)]
    problems += [f"role {r} has no record" for r in sorted(roles - expected_roles)]
    problems += [f"record without role {r}" for r in sorted(expected_roles - roles)]
    return problems
