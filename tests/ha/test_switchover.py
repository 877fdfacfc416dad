"""Planned switchover (`pg_autoctl perform switchover`, what the postgres job's drain will run).

The primary hands over while an app keeps writing: the write blackout is
measured, and no acknowledged commit may be lost.
"""

from __future__ import annotations

import time

import pytest

from tests.ha.conftest import HaApp
from tests.support.auto_failover import Formation, Server
from tests.support.ha_writes import (
    ContinuousWriter,
    acked_writes_lost,
    committed_seqs,
    servers_in_order,
    switchover_write_unavailability_s,
)

# A real formation: failovers, restarts and rejoins take tens of seconds.
pytestmark = pytest.mark.slow


def test_switchover_hands_over_without_losing_acknowledged_writes(
    formation: Formation, healthy: tuple[Server, Server], ha_app: HaApp, record_figure
) -> None:
    primary, standby = healthy
    writer = ContinuousWriter.for_uri(ha_app.uri).start()
    try:
        writer.wait_for_acks(30)
        started = time.monotonic()
        formation.switchover()
        formation.wait_states({standby.name: "primary", primary.name: "secondary"}, timeout_s=90)
        finished = time.monotonic()
        writer.wait_for_acks(30)
    finally:
        writer.stop()

    # One handover: the old primary's commits, then only the new one's.
    assert servers_in_order(writer.acks) == [primary.host, standby.host]

    lost = acked_writes_lost([a.seq for a in writer.acks], committed_seqs(ha_app.node_conninfo(standby)))
    assert lost == 0, f"{lost} acknowledged commits are missing after the switchover"

    unavailable = switchover_write_unavailability_s(writer.acks, started, finished)
    record_figure(
        "switchover_write_unavailability_s", unavailable, acked=len(writer.acks), acked_writes_lost=lost
    )
    record_figure("acked_writes_lost", lost, scenario="switchover")
