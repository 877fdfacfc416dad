"""The broker's pool lends the connection returned last, on a real cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postgres_service_broker.backends.lifo_pool import LifoConnectionPool
from postgres_service_broker.local_cluster import LocalCluster


@pytest.fixture
def pool(pg_cluster: LocalCluster) -> Iterator[LifoConnectionPool]:
    kwargs = {**pg_cluster.conninfo(), "autocommit": True}
    p = LifoConnectionPool(conninfo="", kwargs=kwargs, min_size=3, max_size=5, open=False)
    p.open(wait=True, timeout=30)
    yield p
    p.close()


def test_the_connection_returned_last_is_lent_next(pool: LifoConnectionPool) -> None:
    held = [pool.getconn() for _ in range(3)]
    pids = [conn.info.backend_pid for conn in held]
    assert len(set(pids)) == 3
    for conn in held:  # returned oldest first: the last one back is held[2]
        pool.putconn(conn)
    with pool.connection() as conn:
        assert conn.info.backend_pid == pids[2]


def test_requests_one_after_another_stay_on_one_backend(pool: LifoConnectionPool) -> None:
    seen = set()
    for _ in range(10):
        with pool.connection() as conn:
            seen.add(conn.execute("SELECT pg_backend_pid()").fetchone())
    # Lending in turn would have gone round all three idle connections.
    assert len(seen) == 1


def test_requests_at_once_still_get_connections_of_their_own(pool: LifoConnectionPool) -> None:
    held = [pool.getconn() for _ in range(5)]
    try:
        assert len({conn.info.backend_pid for conn in held}) == 5
    finally:
        for conn in held:
            pool.putconn(conn)
