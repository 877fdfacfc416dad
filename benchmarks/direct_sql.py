"""The broker's baseline: the same SQL a lifecycle costs, issued directly with psycopg.

Each step calls the functions of ``backends/shared_sql.py`` in the order
``SharedBackend`` calls them (provision, bind, unbind, deprovision), on one
long-lived admin connection as the broker's pool gives it, plus a connection
to the instance's database where the backend opens one. What is left out is
exactly the broker's own work: HTTP, request checks, advisory locks, its
state records and the sealing of passwords. Keep this in step with
``shared_backend.py``; the smoke test runs it against a real cluster.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from benchmarks.broker_client import timed_steps
from benchmarks.target import Target
from postgres_service_broker.backends import shared_sql
from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.credentials import generate_password
from postgres_service_broker.scram import scram_sha256_verifier


class DirectSql:
    def __init__(self, target: Target) -> None:
        self._target = target
        self._conn = self.connect(str(target.conninfo.get("dbname", "postgres")))

    def connect(self, dbname: str) -> psycopg.Connection:
        kwargs: dict[str, Any] = {**self._target.conninfo, "dbname": dbname}
        return psycopg.connect(**kwargs, autocommit=True)

    def close(self) -> None:
        self._conn.close()

    def provision(self, names: InstanceNames) -> None:
        shared_sql.create_group_roles(self._conn, names)
        shared_sql.create_database(self._conn, names, self._target.connection_limit)
        shared_sql.restrict_database(self._conn, names)
        with self.connect(names.database) as db_conn:
            shared_sql.prepare_database(db_conn, names)
        shared_sql.grant_database_access(self._conn, names)

    def bind(self, names: InstanceNames, role: str) -> None:
        verifier = scram_sha256_verifier(generate_password())
        shared_sql.create_login_role(self._conn, role, verifier)
        with self.connect(names.database) as db_conn:
            shared_sql.share_login_role_objects(db_conn, role, names)
        shared_sql.grant_login_role(self._conn, role, names, read_only=False)

    def unbind(self, names: InstanceNames, role: str) -> None:
        shared_sql.drop_login_role(self._conn, self.connect, role, names)

    def deprovision(self, names: InstanceNames) -> None:
        # No binding is left by now: the backend's list of recorded roles is empty too.
        shared_sql.drop_database(self._conn, names)
        shared_sql.drop_instance_roles(self._conn, names, [])

    def lifecycle(self) -> float:
        """The same four steps as `BrokerClient.lifecycle`, on new names; the seconds it took."""
        return sum(self.lifecycle_steps())

    def lifecycle_steps(self) -> tuple[float, ...]:
        """The same lifecycle; the seconds each of its steps (`broker_client.STEPS`) took."""
        names = InstanceNames.for_instance(str(uuid.uuid4()))
        role = binding_role(str(uuid.uuid4()))
        return timed_steps(
            lambda: self.provision(names),
            lambda: self.bind(names, role),
            lambda: self.unbind(names, role),
            lambda: self.deprovision(names),
        )
