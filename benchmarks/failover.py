"""Write unavailability of the HA variant: a crashed primary, and a planned switchover.

A real pg_auto_failover formation (a monitor and two nodes, with the
timeouts of ``ha_settings``) is built by the same harness the HA tests use,
and an app keeps committing numbered rows through its multi-host URI
(``target_session_attrs=read-write``), one connection per commit, recording
every acknowledged one. Each event is timed from that record, and afterwards
every acknowledged row is looked for on the new primary.

The baselines, measured or derived in the same run:
  - a crash is compared with the floor the settings put under any failover
    (`ha_settings.earliest_promotion_s`: the primary's silence plus the
    demote timeout, the price of fencing before promoting) and with the
    planned switchover measured next to it;
  - a switchover is compared with the longest gap between two commits in
    the steady state just before it, the writer's own noise.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass

import psycopg

from postgres_service_broker import ha_settings
from tests.support.auto_failover import Formation, find_pg_autoctl
from tests.support.ha_writes import (
    WRITES_TABLE,
    Ack,
    AppDatabase,
    ContinuousWriter,
    acked_writes_lost,
    committed_seqs,
    create_app_database,
    failover_write_unavailability_s,
    switchover_write_unavailability_s,
)

FAILOVER_GOAL_S = 10.0
APP_DB = "bench_app"
APP_USER = "bench_app"
# Commits before an event (the steady state) and after it (proof that writes resumed).
STEADY_ACKS = 30
# Counting what a node holds right after an event: give it a little longer than a probe.
COUNT_CONNECT_TIMEOUT_S = 3


@dataclass(frozen=True)
class Event:
    """One failover or switchover: the app's write outage and the acknowledged rows it lost."""

    unavailable_s: float
    lost: int
    acked: int
    steady_gap_s: float


@dataclass(frozen=True)
class FailoverResult:
    failovers: list[Event]
    switchovers: list[Event]

    def lines(self) -> list[str]:
        crash = [e.unavailable_s for e in self.failovers]
        planned = [e.unavailable_s for e in self.switchovers]
        floor = ha_settings.earliest_promotion_s()
        switchover_median = statistics.median(planned)
        lost = sum(e.lost for e in self.failovers + self.switchovers)
        acked = sum(e.acked for e in self.failovers + self.switchovers)
        return [
            f"failover_write_unavailability_s: {statistics.median(crash):.2f} (median of {len(crash)} "
            f"kill -9 of keeper and PostgreSQL, max {max(crash):.2f}; floor set by the timeouts "
            f"{floor:.1f} s, ratio {statistics.median(crash) / floor:.2f}; planned switchover in the "
            f"same run {switchover_median:.2f} s; goal <= {FAILOVER_GOAL_S:.0f} s)",
            f"switchover_write_unavailability_s: {switchover_median:.2f} (median of {len(planned)} "
            f"pg_autoctl perform switchover, max {max(planned):.2f}; longest gap between commits "
            f"before it {statistics.median(e.steady_gap_s for e in self.switchovers):.2f} s)",
            f"acked_writes_lost: {lost} (of {acked} acknowledged commits, counted after each of "
            f"{len(crash)} failovers and {len(planned)} switchovers: "
            f"{[e.lost for e in self.failovers]} / {[e.lost for e in self.switchovers]}; must be 0)",
        ]


def pg_autoctl_missing() -> str | None:
    """Why the HA figures cannot be measured here, or None when they can."""
    if find_pg_autoctl() is None:
        return "pg_autoctl (pg_auto_failover) is not installed; run: make system-packages"
    return None


def create_app(formation: Formation) -> AppDatabase:
    """The writer's database and its table, reached through every node's address."""
    app = create_app_database(formation, APP_DB, APP_USER)
    with psycopg.connect(app.uri, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE TABLE {WRITES_TABLE} (seq bigint PRIMARY KEY)")
    return app


def _longest_gap(acks: list[Ack]) -> float:
    times = sorted(a.acked for a in acks)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def _fresh_table(app: AppDatabase) -> None:
    with psycopg.connect(app.uri, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"TRUNCATE {WRITES_TABLE}")


def measure_failover(formation: Formation, app: AppDatabase) -> Event:
    """Kill -9 the primary's keeper and PostgreSQL together; time the first commit after it."""
    primary, _ = formation.heal()
    _fresh_table(app)
    writer = ContinuousWriter.for_uri(app.uri).start()
    try:
        writer.wait_for_acks(STEADY_ACKS)
        steady_gap = _longest_gap(list(writer.acks))
        killed_at = primary.kill()
        writer.wait_for_ack_after(killed_at, timeout_s=60)
        writer.wait_for_acks(STEADY_ACKS)
    finally:
        writer.stop()
    acks = list(writer.acks)
    # Count on whichever node took the last commit: the promoted one.
    new_primary = next(n for n in formation.nodes if n.host == acks[-1].server)
    counted = committed_seqs(app.node_conninfo(new_primary, connect_timeout=COUNT_CONNECT_TIMEOUT_S))
    lost = acked_writes_lost([a.seq for a in acks], counted)
    return Event(failover_write_unavailability_s(killed_at, acks), lost, len(acks), steady_gap)


def measure_switchover(formation: Formation, app: AppDatabase) -> Event:
    """`pg_autoctl perform switchover` under the same writer; the longest commit gap around it."""
    primary, standbys = formation.heal()
    _fresh_table(app)
    writer = ContinuousWriter.for_uri(app.uri).start()
    try:
        writer.wait_for_acks(STEADY_ACKS)
        steady_gap = _longest_gap(list(writer.acks))
        started = time.monotonic()
        formation.switchover()
        formation.wait_states({standbys[0].name: "primary", primary.name: "secondary"}, timeout_s=90)
        finished = time.monotonic()
        writer.wait_for_acks(STEADY_ACKS)
    finally:
        writer.stop()
    acks = list(writer.acks)
    counted = committed_seqs(app.node_conninfo(standbys[0], connect_timeout=COUNT_CONNECT_TIMEOUT_S))
    lost = acked_writes_lost([a.seq for a in acks], counted)
    return Event(switchover_write_unavailability_s(acks, started, finished), lost, len(acks), steady_gap)


def measure_ha(rounds: int) -> FailoverResult:
    """`rounds` crash failovers and `rounds` switchovers, alternating, on one formation."""
    formation = Formation.create()
    try:
        app = create_app(formation)
        failovers: list[Event] = []
        switchovers: list[Event] = []
        for _ in range(rounds):
            failovers.append(measure_failover(formation, app))
            switchovers.append(measure_switchover(formation, app))
        return FailoverResult(failovers=failovers, switchovers=switchovers)
    finally:
        formation.destroy()
