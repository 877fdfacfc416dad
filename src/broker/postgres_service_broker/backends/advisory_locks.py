"""Advisory locks that settle races between brokers in PostgreSQL, not in memory.

Locks are session-level, held on the connection doing the work: if the broker
dies, PostgreSQL drops the session and the lock with it, so nothing stays
locked after a crash. Waiting is bounded by the connection's ``lock_timeout``; a request that
cannot get its lock in time is told to retry (OSB ``ConcurrencyError``).

An operation's first statements can travel with its locks (``first=``), so taking
the locks costs no round trip of its own. See `advisory_locks` for why that is
as safe as sending them once the locks are granted.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import errors

from postgres_service_broker.backends.base import Busy
from postgres_service_broker.backends.statements import Statement

IDLE = psycopg.pq.TransactionStatus.IDLE


def lock_key(kind: str, ident: str) -> int:
    digest = hashlib.sha256(f"{kind}\0{ident}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class AdvisoryLock:
    key: int
    shared: bool = False


def _calls(locks: Sequence[AdvisoryLock], verb: str) -> str:
    # PostgreSQL evaluates a select list left to right, so the locks are taken
    # (and given back) in exactly the order listed: every caller takes an
    # instance's lock before a binding's, which keeps brokers from deadlocking.
    return ", ".join(f"pg_advisory_{verb}{'_shared' if lock.shared else ''}(%s)" for lock in locks)


def _release(conn: psycopg.Connection, locks: Sequence[AdvisoryLock]) -> None:
    if locks:
        conn.execute(f"SELECT {_calls(locks, 'unlock')}", [lock.key for lock in locks])


class HeldLocks:
    """The locks of an `advisory_locks` block; `releasing` lets its last write give them back."""

    def __init__(
        self, conn: psycopg.Connection, locks: Sequence[AdvisoryLock], first: Sequence[psycopg.Cursor] = ()
    ) -> None:
        self._conn = conn
        self._locks = list(locks)
        self.released = False
        # The results of the statements passed as `first=`, in order, run once the locks were granted.
        self.first = tuple(first)

    def releasing(self, write: Statement) -> Statement:
        """One data-modifying statement that also gives the locks back when its transaction commits.

        Each session lock is handed over to the statement's own transaction
        (``pg_advisory_xact_lock`` on a key this session holds is granted at
        once) and then released; the transaction's hold ends only with its
        commit. So nobody can take a lock before the write is visible, exactly
        as with "commit, then unlock", one round trip sooner. A data-modifying
        WITH runs to completion whether or not the outer query reads it.

        Call `mark_released` once the statement has run; until then (if it
        failed, say) the block still gives the locks back on its way out.
        """
        locks = list(reversed(self._locks))
        handover = ", ".join(
            f"pg_advisory_xact_lock{'_shared' if lock.shared else ''}(%s), "
            f"pg_advisory_unlock{'_shared' if lock.shared else ''}(%s)"
            for lock in locks
        )
        keys = [key for lock in locks for key in (lock.key, lock.key)]
        return Statement(f"WITH written AS ({write.sql}) SELECT {handover}", [*write.params, *keys])

    def mark_released(self) -> None:
        self.released = True


@contextmanager
def advisory_locks(
    conn: psycopg.Connection,
    locks: Sequence[AdvisoryLock],
    *,
    what: str,
    first: Sequence[Statement] = (),
) -> Iterator[HeldLocks]:
    """Hold `locks` for the block, taken in the order given; raise `Busy` when a wait passes ``lock_timeout``.

    One statement takes them all and one gives them back (or the block's last
    write does, see `HeldLocks.releasing`), so an operation pays at most
    two round trips for its locks however many it needs. The connection
    carries its ``lock_timeout`` from the start (a connection option).

    `first`, the operation's first statements, are pipelined behind the
    locks: all are sent at once, in one implicit transaction (no Sync between
    them). The server runs them in order, so each starts only once every lock
    is granted and, at READ COMMITTED (which the broker's connections set),
    takes its snapshot then: it sees everything committed by whoever held the
    locks before, exactly as if it had been sent after them. If a lock is
    refused, or one of them fails, the transaction is aborted and none takes
    effect. Their results are `HeldLocks.first`, in order.
    """
    keys = [lock.key for lock in locks]
    taking: psycopg.Cursor | None = None
    results: list[psycopg.Cursor] = []
    try:
        if not first:
            taking = conn.execute(f"SELECT {_calls(locks, 'lock')}", keys)
        else:
            with conn.pipeline():
                taking = conn.execute(f"SELECT {_calls(locks, 'lock')}", keys)
                results = [conn.execute(statement.sql, statement.params) for statement in first]
    except psycopg.Error as exc:
        # Session locks outlive the failed statement (and, pipelined, its
        # aborted transaction); give back those taken before the connection
        # returns to the pool. If the locks were all granted (only `first`
        # failed), that is every one; if taking them failed, those before the
        # refused one, the last (releasing one that was never taken only draws
        # a warning). A failed statement's cursor holds no result.
        granted = taking is not None and taking.pgresult is not None
        if not conn.closed and conn.info.transaction_status == IDLE:
            with contextlib.suppress(psycopg.Error):
                _release(conn, list(reversed(locks if granted else locks[:-1])))
        if isinstance(exc, errors.LockNotAvailable):
            raise Busy(f"another operation on {what} is in progress; retry in a moment") from None
        raise
    held = HeldLocks(conn, locks, results)
    try:
        yield held
    finally:
        # Also after a failed `releasing` statement: releasing a lock it did
        # give back only draws a warning.
        if not held.released and not conn.closed and conn.info.transaction_status == IDLE:
            _release(conn, list(reversed(locks)))


def advisory_lock(
    conn: psycopg.Connection,
    key: int,
    *,
    shared: bool = False,
    what: str,
    first: Sequence[Statement] = (),
) -> contextlib.AbstractContextManager[HeldLocks]:
    """Hold one advisory lock for the block; see `advisory_locks`."""
    return advisory_locks(conn, [AdvisoryLock(key, shared)], what=what, first=first)


def is_locked_exclusively(conn: psycopg.Connection, key: int) -> bool:
    """True while some session holds `key` exclusively (e.g. an update in progress)."""
    row = conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (key,)).fetchone()
    if row and row[0]:
        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))
        return False
    return True
