"""Run `postgres-service-broker ups` as a user would: the console script, admin settings in PG* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from postgres_service_broker.local_cluster import LocalCluster

CLI = Path(sys.executable).parent / "postgres-service-broker"


def admin_env(cluster: LocalCluster, **overrides: str | None) -> dict[str, str]:
    """The test's environment without any PG* of its own, plus the libpq settings for `cluster`.

    An override of None removes that variable.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGHOST="127.0.0.1",
        PGPORT=str(cluster.port),
        PGUSER=cluster.superuser,
        PGPASSWORD=cluster.password,
        PGDATABASE="postgres",
        PGSSLMODE="disable",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_ups(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "ups", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def cluster_objects(conn: psycopg.Connection) -> set[str]:
    """Every database and role on the cluster: compared before and after to prove nothing changed."""
    dbs = {f"database {r[0]}" for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    roles = {f"role {r[0]}" for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    return dbs | roles


def ups_objects(conn: psycopg.Connection, name: str) -> set[str]:
    """The databases and roles `ups create NAME` makes, as far as they exist."""
    base = "ups_" + name.replace("-", "_")
    return {
        obj
        for obj in cluster_objects(conn)
        if obj in {f"database {base}", *(f"role {base}_{suffix}" for suffix in ("owner", "reader", "login"))}
    }
