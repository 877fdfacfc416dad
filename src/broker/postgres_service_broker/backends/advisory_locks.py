"""Advisory locks that settle races between brokers in PostgreSQL, not in memory.

Locks are session-level, held on the connection doing the work: if the broker
dies, PostgreSQL drops the session and the lock with it, so nothing stays
locked after a crash. Waiting is bounded by the connection's ``lock_timeout``; a request that
cannot get its lock in time is told to retry (OSB ``ConcurrencyError``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors

from postgres_service_broker.backends.base import Busy


def lock_key(kind: str, ident: str) -> int:
    digest = hashlib.sha256(f"{kind}\0{ident}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def advisory_lock(
    conn: psycopg.Connection,
    key: int,
    *,
    shared: bool = False,
    what: str,
) -> Iterator[None]:
    """Hold an advisory lock for the block; raise `Busy` when the wait passes ``lock_timeout``.

    The connection carries its ``lock_timeout`` from the start (a connection
    option), so taking the lock is one round trip, not three.
    """
    fn = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
    unlock = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
    try:
        conn.execute(f"SELECT {fn}(%s)", (key,))
    except errors.LockNotAvailable:
        raise Busy(f"another operation on {what} is in progress; retry in a moment") from None
    try:
        yield
    finally:
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.execute(f"SELECT {unlock}(%s)", (key,))


def is_locked_exclusively(conn: psycopg.Connection, key: int) -> bool:
    """True while some session holds `key` exclusively (e.g. an update in progress)."""
    row = conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (key,)).fetchone()
    if row and row[0]:
        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))
        return False
    return True
