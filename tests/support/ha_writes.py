"""Writers that record every acknowledged commit, probes of each node's writability, and the HA figures.

"Acknowledged" is what a client can rely on: the server answered the
commit with success. A commit whose answer never came is not acknowledged,
and the client must give it up *without* cancelling it: PostgreSQL treats a
cancelled wait for synchronous replication as a local commit and reports
success with a warning, which would turn a write the standby never saw into
an "acknowledged" one. So every statement here runs on libpq's asynchronous
interface, waits with a deadline, and on timeout simply closes the
connection.

The figures (`failover_write_unavailability_s`, `switchover_write_unavailability_s`,
`acked_writes_lost`) are plain functions of these records, so the HA tests
and the benchmarks compute them the same way; both write to an app made by
`create_app_database`.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import select
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo

from postgres_service_broker.credentials import build_credentials
from tests.support.auto_failover import Formation, Server, set_password_quietly

WRITES_TABLE = "ha_writes"
INSERT_ROW = f"INSERT INTO {WRITES_TABLE} (seq) VALUES ($1) RETURNING inet_server_addr()::text".encode()
PROBE_TABLE = "ha_probe"


@dataclass(frozen=True)
class AppDatabase:
    """An app's database on the formation, with the credentials a binding gives under HA."""

    credentials: dict[str, Any] = field(repr=False)  # holds the password

    @property
    def uri(self) -> str:
        """Every node's address; libpq picks the primary."""
        return self.credentials["uri"]

    def node_conninfo(self, node: Server, connect_timeout: int = 1) -> str:
        """The same user straight to one node (no routing), to probe it or count what it holds."""
        return make_conninfo(
            host=node.host,
            port=node.port,
            dbname=self.credentials["name"],
            user=self.credentials["username"],
            password=self.credentials["password"],
            connect_timeout=connect_timeout,
        )


def create_app_database(formation: Formation, database: str, username: str) -> AppDatabase:
    """A login role owning a new database on the formation, for the writers.

    The caller creates the tables it writes to.
    """
    primary, _ = formation.wait_healthy()
    password = secrets.token_urlsafe(24)
    with primary.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(username)))
        set_password_quietly(conn, username, password)
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(username))
        )
    return AppDatabase(
        build_credentials(
            hosts=[n.host for n in formation.nodes],
            port=formation.node_port,
            database=database,
            username=username,
            password=password,
        )
    )


class Unacknowledged(Exception):
    """The server did not confirm the statement (error, lost connection, or no answer in time)."""


def _wait_result(conn: pq.PGconn, deadline: float) -> pq.PGresult:
    result: pq.PGresult | None = None
    while True:
        conn.consume_input()
        while not conn.is_busy():
            res = conn.get_result()
            if res is None:
                if result is None:
                    raise Unacknowledged("no result")
                return result
            result = res
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Unacknowledged("no answer before the deadline")
        readable, _, _ = select.select([conn.socket], [], [], remaining)
        if not readable:
            raise Unacknowledged("no answer before the deadline")


def run_statement(
    conninfo: str, query: bytes, params: Sequence[bytes | None] = (), timeout_s: float = 2.0
) -> list[tuple[str | None, ...]]:
    """Connect, run one autocommit statement, return its rows; `Unacknowledged` unless it surely succeeded.

    Never cancels: on timeout the connection is closed, so a commit stuck
    waiting for a synchronous standby stays unacknowledged.
    """
    try:
        return _run_statement(conninfo, query, params, timeout_s)
    except psycopg.Error as exc:  # libpq reporting a broken connection
        raise Unacknowledged(
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        ) from None


def _run_statement(
    conninfo: str, query: bytes, params: Sequence[bytes | None], timeout_s: float
) -> list[tuple[str | None, ...]]:
    # Connecting has its own bound (connect_timeout, per host); the deadline is for the statement.
    conn = pq.PGconn.connect(conninfo.encode())
    deadline = time.monotonic() + timeout_s
    try:
        if conn.status != pq.ConnStatus.OK:
            raise Unacknowledged(conn.get_error_message().strip() or "connection failed")
        conn.nonblocking = 1
        conn.send_query_params(query, params)
        while conn.flush() != 0:
            if time.monotonic() > deadline:
                raise Unacknowledged("could not send before the deadline")
            select.select([], [conn.socket], [], max(0.0, deadline - time.monotonic()))
        result = _wait_result(conn, deadline)
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            message = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"error"
            raise Unacknowledged(message.decode(errors="replace"))
        return [
            tuple(
                None if (v := result.get_value(r, c)) is None else v.decode() for c in range(result.nfields)
            )
            for r in range(result.ntuples)
        ]
    finally:
        conn.finish()


@dataclass(frozen=True)
class Ack:
    """One acknowledged commit: its sequence number, when it was sent and confirmed, and by which node."""

    seq: int
    sent: float
    acked: float
    server: str


@dataclass
class ContinuousWriter:
    """Commits numbered rows through one connection string, as an app does, recording every ack.

    Each row is its own connection and transaction, so a failover costs the
    writer nothing but the rows in flight, like an app that reconnects.
    """

    conninfo: str = field(repr=False)  # holds the password
    commit_timeout_s: float = 2.0
    pause_s: float = 0.02
    acks: list[Ack] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _next_seq: int = 1

    @classmethod
    def for_uri(cls, uri: str, connect_timeout_s: int = 2, **kwargs: float) -> ContinuousWriter:
        # connect_timeout applies per host: a frozen node in the list costs
        # that long before libpq tries the next one.
        return cls(conninfo=make_conninfo(uri, connect_timeout=connect_timeout_s), **kwargs)

    def start(self) -> ContinuousWriter:
        self._thread = threading.Thread(target=self._run, name="ha-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.commit_timeout_s + 10)

    def _run(self) -> None:
        while not self._stop.is_set():
            seq = self._next_seq
            self._next_seq += 1
            sent = time.monotonic()
            try:
                rows = run_statement(
                    self.conninfo,
                    INSERT_ROW,
                    [str(seq).encode()],
                    timeout_s=self.commit_timeout_s,
                )
            except Unacknowledged as exc:
                self.failures.append((sent, str(exc)))
                time.sleep(0.05)
                continue
            self.acks.append(
                Ack(seq=seq, sent=sent, acked=time.monotonic(), server=(rows[0][0] or "").split("/")[0])
            )
            time.sleep(self.pause_s)

    def sent_after(self, moment: float) -> list[Ack]:
        """Acknowledged commits that were sent after `moment`.

        A commit sent before a fault may still be acknowledged just after it
        (the answer was already on the wire), so "after the fault" is judged
        by when the commit was sent.
        """
        return [a for a in list(self.acks) if a.sent > moment]

    def wait_for_ack_after(self, moment: float, timeout_s: float) -> Ack:
        """The first acknowledged commit sent after `moment`; raises TimeoutError if none comes in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            later = self.sent_after(moment)
            if later:
                return later[0]
            time.sleep(0.05)
        raise TimeoutError(
            f"no commit acknowledged within {timeout_s:.0f}s; last failures: {self.failures[-3:]}"
        )

    def wait_for_acks(self, count: int, timeout_s: float = 30) -> None:
        target = len(self.acks) + count
        deadline = time.monotonic() + timeout_s
        while len(self.acks) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} commits in {timeout_s:.0f}s: {self.failures[-3:]}")
            time.sleep(0.05)


@dataclass(frozen=True)
class ProbeSample:
    """One look at one node: was it out of recovery, and was a write on it acknowledged."""

    node: str
    started: float
    finished: float
    in_recovery: bool | None  # None: the node did not answer
    write_acked: bool


@dataclass
class WritabilityProbe:
    """Polls every node directly (no multi-host routing) for pg_is_in_recovery() and a real write.

    One thread per node, so a frozen node delays only its own samples.
    """

    conninfos: dict[str, str] = field(repr=False)  # hold the password
    timeout_s: float = 1.0
    pause_s: float = 0.05
    samples: list[ProbeSample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> WritabilityProbe:
        for name, conninfo in self.conninfos.items():
            thread = threading.Thread(
                target=self._run, args=(name, conninfo), name=f"probe-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s * 3 + 10)

    def _run(self, name: str, conninfo: str) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            in_recovery: bool | None = None
            acked = False
            try:
                rows = run_statement(conninfo, b"SELECT pg_is_in_recovery()", timeout_s=self.timeout_s)
                in_recovery = rows[0][0] == "t"
                if not in_recovery:
                    # Attempt the write even so: "not in recovery" alone does not mean commits are confirmed.
                    with contextlib.suppress(Unacknowledged):
                        run_statement(
                            conninfo,
                            f"INSERT INTO {PROBE_TABLE} (node) VALUES ($1)".encode(),
                            [name.encode()],
                            timeout_s=self.timeout_s,
                        )
                        acked = True
            except Unacknowledged:
                pass
            self.samples.append(ProbeSample(name, started, time.monotonic(), in_recovery, acked))
            time.sleep(self.pause_s)

    def writable_spans(self) -> dict[str, tuple[float, float]]:
        """Per node, from the start of its first acknowledged probe write to the end of its last."""
        spans: dict[str, tuple[float, float]] = {}
        for s in self.samples:
            if s.write_acked:
                lo, hi = spans.get(s.node, (s.started, s.finished))
                spans[s.node] = (min(lo, s.started), max(hi, s.finished))
        return spans

    def both_out_of_recovery(self) -> list[tuple[ProbeSample, ProbeSample]]:
        """Pairs of samples of different nodes, overlapping in time, that both said "not in recovery"."""
        out = [s for s in self.samples if s.in_recovery is False]
        pairs = []
        for i, a in enumerate(out):
            for b in out[i + 1 :]:
                if a.node != b.node and a.started < b.finished and b.started < a.finished:
                    pairs.append((a, b))
        return pairs


def committed_seqs(conninfo: str) -> set[int]:
    """Every sequence number the writer's table holds on the node `conninfo` reaches."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return {row[0] for row in conn.execute(f"SELECT seq FROM {WRITES_TABLE}")}


# -- the figures ------------------------------------------------------------------------


def failover_write_unavailability_s(fault_at: float, acks: Iterable[Ack]) -> float:
    """Seconds from the fault (the primary killed) to the first successful commit after it.

    Only commits sent after the fault count: one the dying primary answered
    just before it died says nothing about the new primary.
    """
    later = [a.acked for a in acks if a.sent > fault_at]
    if not later:
        raise ValueError("no commit was acknowledged after the fault")
    return min(later) - fault_at


def switchover_write_unavailability_s(acks: Iterable[Ack], started: float, finished: float) -> float:
    """The longest stretch without an acknowledged commit that overlaps the switchover window.

    A planned switchover has no single fault moment: the old primary keeps
    committing until it is drained. What an app feels is the longest gap
    between two consecutive acknowledged commits around the handover.
    """
    times = sorted(a.acked for a in acks)
    before = [t for t in times if t <= started]
    after = [t for t in times if t > started]
    if not after:
        raise ValueError("no commit was acknowledged after the switchover began")
    edges = ([before[-1]] if before else [started]) + after
    gaps = [b - a for a, b in itertools.pairwise(edges) if b > started and a < finished]
    return max(gaps, default=0.0)


def servers_in_order(acks: Iterable[Ack]) -> list[str]:
    """The nodes that acknowledged commits, in order, each run counted once: one handover is [old, new]."""
    return [server for server, _ in itertools.groupby(a.server for a in sorted(acks, key=lambda a: a.sent))]


def acked_writes_lost(acked: Iterable[int], present: Iterable[int]) -> int:
    """How many acknowledged commits (by sequence number) are missing from the database."""
    return len(set(acked) - set(present))
