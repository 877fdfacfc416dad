"""Instance-database connections opened ahead of need, against a real server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from postgres_service_broker.backends.early_connection import early_connection
from postgres_service_broker.local_cluster import LocalCluster


@pytest.fixture
def opener() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _connector(pg_cluster: LocalCluster, app_name: str) -> Callable[[str], psycopg.Connection]:
    def connect(dbname: str) -> psycopg.Connection:
        kwargs = {**pg_cluster.conninfo(), "dbname": dbname, "application_name": app_name}
        return psycopg.connect(**kwargs, autocommit=True)

    return connect


def _sessions(admin_conn: psycopg.Connection, app_name: str) -> int:
    row = admin_conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app_name,)
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_taken_connection_is_open_and_belongs_to_the_caller(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection, opener: ThreadPoolExecutor
) -> None:
    app_name = f"early-{uuid.uuid4().hex[:8]}"
    with early_connection(opener, _connector(pg_cluster, app_name), "postgres") as early:
        with early.connect("postgres") as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
        assert conn.closed
        with pytest.raises(RuntimeError, match="once"):
            early.connect("postgres")
    assert _sessions(admin_conn, app_name) == 0


def test_an_unused_connection_is_closed_once_it_is_open(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection, opener: ThreadPoolExecutor
) -> None:
    app_name = f"early-{uuid.uuid4().hex[:8]}"
    with early_connection(opener, _connector(pg_cluster, app_name), "postgres"):
        pass  # the operation found it had nothing to do there
    deadline = time.monotonic() + 10
    while _sessions(admin_conn, app_name):
        assert time.monotonic() < deadline, "the unused early connection was left open"
        time.sleep(0.02)


def test_a_connection_that_cannot_open_fails_only_where_it_is_taken(
    pg_cluster: LocalCluster, opener: ThreadPoolExecutor
) -> None:
    connect = _connector(pg_cluster, "early-missing")
    # Not taken: the failure stays in the background.
    with early_connection(opener, connect, "no_such_database"):
        pass
    with early_connection(opener, connect, "no_such_database") as early:
        with pytest.raises(psycopg.OperationalError, match="no_such_database"):
            early.connect("no_such_database")
        with pytest.raises(ValueError, match="not 'postgres'"):
            early.connect("postgres")
