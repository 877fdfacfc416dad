"""Several advisory locks in one statement, and the pool's check of a lent connection, on a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from postgres_service_broker.backends.advisory_locks import AdvisoryLock, advisory_locks, lock_key
from postgres_service_broker.backends.base import Busy
from postgres_service_broker.backends.shared_backend import check_pooled_connection
from postgres_service_broker.backends.statements import Statement, execute_with
from postgres_service_broker.local_cluster import LocalCluster


@pytest.fixture
def sessions(pg_cluster: LocalCluster) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """Two sessions, as two brokers; waits for a lock give up after 200 ms."""
    kwargs = {**pg_cluster.conninfo(), "autocommit": True, "options": "-c lock_timeout=200"}
    with psycopg.connect(**kwargs) as a, psycopg.connect(**kwargs) as b:
        yield a, b


def _free(conn: psycopg.Connection, key: int) -> bool:
    """Whether `key` can be taken exclusively right now (taken and given back at once)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if row and row[0]:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return True
    return False


def _held_by_me(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT objid::text, mode FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
        "ORDER BY 1"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_locks_are_held_together_for_the_block_and_all_given_back(
    sessions: tuple[psycopg.Connection, psycopg.Connection],
) -> None:
    mine, other = sessions
    instance, binding = lock_key("instance", "i-1"), lock_key("binding", "b-1")
    locks = [AdvisoryLock(instance, shared=True), AdvisoryLock(binding)]
    with advisory_locks(mine, locks, what="this test's objects"):
        assert sorted(mode for _, mode in _held_by_me(mine)) == ["ExclusiveLock", "ShareLock"]
        assert not _free(other, instance)
        assert not _free(other, binding)
        # A shared lock still admits other sharers.
        assert other.execute("SELECT pg_try_advisory_lock_shared(%s)", (instance,)).fetchone() == (True,)
        other.execute("SELECT pg_advisory_unlock_shared(%s)", (instance,))
    assert _held_by_me(mine) == []
    assert _free(other, instance)
    assert _free(other, binding)


@pytest.mark.parametrize("with_first", [False, True], ids=["alone", "with-first-statement"])
def test_a_busy_second_lock_is_busy_and_leaves_the_first_one_free(
    sessions: tuple[psycopg.Connection, psycopg.Connection], with_first: bool
) -> None:
    mine, other = sessions
    mine.execute("DROP TABLE IF EXISTS first_refused")
    mine.execute("CREATE TABLE first_refused (x int)")
    # A statement pipelined behind refused locks must not run at all.
    first = [Statement("INSERT INTO first_refused VALUES (%s)", (1,))] if with_first else []
    notices: list[str] = []
    mine.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    instance, binding = lock_key("instance", "i-2"), lock_key("binding", "b-2")
    other.execute("SELECT pg_advisory_lock(%s)", (binding,))
    try:
        with (
            pytest.raises(Busy, match="this test's objects"),
            advisory_locks(
                mine,
                [AdvisoryLock(instance, shared=True), AdvisoryLock(binding)],
                what="this test's objects",
                first=first,
            ),
        ):
            pytest.fail("the block ran without its locks")
    finally:
        other.execute("SELECT pg_advisory_unlock(%s)", (binding,))
    rows = mine.execute("SELECT count(*) FROM first_refused").fetchone()
    mine.execute("DROP TABLE first_refused")
    assert rows == (0,)
    # The shared instance lock taken before the busy one was given back: nothing is left
    # on a connection that goes back to a pool.
    assert _held_by_me(mine) == []
    assert _free(other, instance)
    # And only what was taken was given back: releasing the refused lock draws a warning.
    # PostgreSQL's warning for that: "you don't own a lock of type ExclusiveLock".
    assert not [n for n in notices if "own a lock" in n], notices


def test_the_pool_check_passes_a_live_idle_connection_and_rejects_a_terminated_one(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection
) -> None:
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT 1")
        check_pooled_connection(conn)
        assert conn.execute("SELECT 2").fetchone() == (2,)

        admin_conn.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        # The server's goodbye reaches the idle socket; no query has been sent since.
        deadline = time.monotonic() + 5
        while True:
            try:
                check_pooled_connection(conn)
            except psycopg.OperationalError:
                break
            assert time.monotonic() < deadline, "the check kept passing a terminated connection"
            time.sleep(0.05)


def test_locks_given_back_by_the_last_write_stay_taken_until_it_commits(
    sessions: tuple[psycopg.Connection, psycopg.Connection],
) -> None:
    mine, other = sessions
    mine.execute("DROP TABLE IF EXISTS lock_handover")
    mine.execute("CREATE TABLE lock_handover (x int)")
    mine.execute("INSERT INTO lock_handover VALUES (0)")
    instance, binding = lock_key("instance", "i-3"), lock_key("binding", "b-3")
    locks = [AdvisoryLock(instance, shared=True), AdvisoryLock(binding)]
    outcome: list[BaseException | None] = []

    def last_write() -> None:
        try:
            with advisory_locks(mine, locks, what="this test's objects") as held:
                # Slow on purpose: the locks are handed over while this runs.
                slow_write = Statement("UPDATE lock_handover SET x = 1 WHERE pg_sleep(0.5) IS NOT NULL", ())
                # As an operation's last DDL statement carries it (statements.execute_with).
                execute_with(mine, "SELECT 1", after=held.releasing(slow_write))
                held.mark_released()
                assert held.released
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    writer = threading.Thread(target=last_write)
    writer.start()
    deadline = time.monotonic() + 10
    while _free(other, binding):  # until the writer has taken it
        assert not outcome, f"the writer finished before it was seen holding the lock: {outcome}"
        assert time.monotonic() < deadline, "the writer never held the binding's lock"
        time.sleep(0.005)
    refused = 0
    while not _free(other, binding):
        refused += 1
        assert time.monotonic() < deadline, "the binding's lock was never given back"
        time.sleep(0.02)
    # The moment another session could take the lock, the write was committed and visible to it.
    seen = other.execute("SELECT x FROM lock_handover").fetchone()
    writer.join(timeout=10)
    mine.execute("DROP TABLE lock_handover")
    assert outcome == [None]
    assert seen == (1,)
    # The write sleeps 0.5 s with the locks handed over: they stayed taken meanwhile.
    assert refused > 5
    assert _held_by_me(mine) == []
    assert _free(other, instance)


# -- the first statement pipelined behind the locks ------------------------------


def _waiting_for_a_lock(observer: psycopg.Connection, pid: int) -> bool:
    row = observer.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND NOT granted", (pid,)
    ).fetchone()
    return bool(row and row[0])


def test_the_first_statement_runs_once_the_locks_are_granted_and_sees_what_their_holder_committed(
    sessions: tuple[psycopg.Connection, psycopg.Connection], pg_cluster: LocalCluster
) -> None:
    mine, other = sessions
    mine.execute("DROP TABLE IF EXISTS first_after_lock")
    mine.execute("CREATE TABLE first_after_lock (x int)")
    mine.execute("INSERT INTO first_after_lock VALUES (0)")
    key = lock_key("instance", "i-4")
    # Long enough to wait for the holder below; mine's other tests use 200 ms.
    mine.execute("SET lock_timeout = '10s'")
    other.execute("SELECT pg_advisory_lock(%s)", (key,))
    seen: list[object] = []

    def locked_read() -> None:
        try:
            first = [Statement("SELECT x FROM first_after_lock", ())]
            with advisory_locks(mine, [AdvisoryLock(key)], what="this test's objects", first=first) as held:
                seen.append(held.first[0].fetchone())
        except BaseException as exc:
            seen.append(exc)

    reader = threading.Thread(target=locked_read)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as observer:
            while not _waiting_for_a_lock(observer, mine.info.backend_pid):
                assert time.monotonic() < deadline, "the pipelined lock never waited"
                time.sleep(0.01)
        # The statement was sent long ago; what the holder commits now must still be seen.
        other.execute("UPDATE first_after_lock SET x = 1")
    finally:
        other.execute("SELECT pg_advisory_unlock(%s)", (key,))
        reader.join(timeout=20)
    mine.execute("RESET lock_timeout")
    mine.execute("DROP TABLE first_after_lock")
    assert seen == [(1,)]
    assert _held_by_me(mine) == []


def test_a_failing_first_statement_gives_every_lock_back(
    sessions: tuple[psycopg.Connection, psycopg.Connection],
) -> None:
    mine, other = sessions
    mine.execute("DROP TABLE IF EXISTS first_undone")
    mine.execute("CREATE TABLE first_undone (x int)")
    instance, binding = lock_key("instance", "i-6"), lock_key("binding", "b-6")
    with (
        pytest.raises(psycopg.errors.DivisionByZero),
        advisory_locks(
            mine,
            [AdvisoryLock(instance, shared=True), AdvisoryLock(binding)],
            what="this test's objects",
            # The write before the failing statement is undone with it.
            first=[Statement("INSERT INTO first_undone VALUES (%s)", (1,)), Statement("SELECT 1 / %s", (0,))],
        ),
    ):
        pytest.fail("the block ran although its first statements failed")
    rows = mine.execute("SELECT count(*) FROM first_undone").fetchone()
    mine.execute("DROP TABLE first_undone")
    assert rows == (0,)
    assert _held_by_me(mine) == []
    assert _free(other, instance)
    assert _free(other, binding)
