"""Unplanned failover: the primary's keeper and PostgreSQL die together (SIGKILL), as when its VM is lost.

An app keeps committing through its multi-host credentials while it
happens. The failover runs once per module (it is the slow part); one test
checks what the app saw, the next brings the dead node back and checks that
it rejoins as a standby of the promoted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest

from postgres_service_broker import ha_settings
from tests.ha.conftest import HaApp, reset
from tests.support.auto_failover import Formation, Server, wait_until
from tests.support.ha_writes import (
    ContinuousWriter,
    acked_writes_lost,
    committed_seqs,
    failover_write_unavailability_s,
)

# A real formation: failovers, restarts and rejoins take tens of seconds.
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Failover:
    old_primary: Server
    new_primary: Server
    killed_at: float
    writer: ContinuousWriter


@pytest.fixture(scope="module")
def failover(formation: Formation, ha_app: HaApp) -> Failover:
    """Kill -9 the primary's whole process tree under a steady stream of commits; stop once writes resumed."""
    primary, standby = reset(formation, ha_app)
    writer = ContinuousWriter.for_uri(ha_app.uri).start()
    try:
        writer.wait_for_acks(30)
        killed_at = primary.kill()
        writer.wait_for_ack_after(killed_at, timeout_s=60)
        formation.wait_states({standby.name: "wait_primary"}, timeout_s=30)
        # Writes keep landing on the new primary while the old one is away.
        writer.wait_for_acks(30)
    finally:
        writer.stop()
    return Failover(old_primary=primary, new_primary=standby, killed_at=killed_at, writer=writer)


def test_killed_primary_is_replaced_and_no_acknowledged_write_is_lost(
    failover: Failover, formation: Formation, ha_app: HaApp, record_figure
) -> None:
    acks, killed_at = failover.writer.acks, failover.killed_at
    # Before the kill the old primary took every write, afterwards the promoted standby.
    assert {a.server for a in acks if a.sent < killed_at} == {failover.old_primary.host}
    assert {a.server for a in failover.writer.sent_after(killed_at)} == {failover.new_primary.host}

    present = committed_seqs(ha_app.node_conninfo(failover.new_primary))
    lost = acked_writes_lost([a.seq for a in acks], present)
    assert lost == 0, f"{lost} acknowledged commits are missing after the failover"

    unavailable = failover_write_unavailability_s(killed_at, acks)
    # The monitor waited out primary_demote_timeout, the old primary's chance
    # to fence itself, after the kill: if this were faster, the settings were
    # not in effect.
    assert unavailable >= ha_settings.PRIMARY_DEMOTE_TIMEOUT_MS / 1000, unavailable
    record_figure("failover_write_unavailability_s", unavailable, acked=len(acks), acked_writes_lost=lost)
    record_figure("acked_writes_lost", lost, scenario="failover")


def test_killed_primary_comes_back_as_a_standby_of_the_new_primary(
    failover: Failover, formation: Formation, ha_app: HaApp
) -> None:
    old, new = failover.old_primary, failover.new_primary
    formation.restart(old)
    formation.wait_states({new.name: "primary", old.name: "secondary"}, timeout_s=120)

    # The rejoined node replays everything, including what was written while it was away.
    acked = {a.seq for a in failover.writer.acks}
    wait_until(
        lambda: acked <= committed_seqs(ha_app.node_conninfo(old)),
        timeout_s=30,
        what="the rejoined node to hold every acknowledged commit",
    )
    with old.connect() as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    # And synchronous replication is back: the new primary waits for it again.
    with new.connect() as conn:
        assert_synchronous_standby(conn)


def assert_synchronous_standby(primary_conn: psycopg.Connection) -> None:
    """The primary names its standby in synchronous_standby_names and it streams as a quorum member."""
    names = primary_conn.execute("SHOW synchronous_standby_names").fetchone()[0]
    assert names.startswith("ANY 1 ("), names
    rows = wait_until(
        lambda: primary_conn.execute(
            "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'"
        ).fetchall(),
        timeout_s=30,
        what="the standby to stream from the primary",
    )
    assert [r[0] for r in rows] == ["quorum"], rows
