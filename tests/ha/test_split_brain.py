"""A frozen primary (keeper and PostgreSQL stopped with SIGSTOP) must never leave two writable nodes.

Freezing is the nastiest failure: the old primary is not dead, it keeps its
sockets and its idea of being primary, and wakes up later as if nothing had
happened. Throughout, every node is probed directly with a real write; a
node "accepts writes" when such a write is acknowledged. The old primary's
acknowledged writes must all come before the new primary's first, and after
the thaw the old primary must step down and rejoin as a standby.
"""

from __future__ import annotations

import time

import pytest

from postgres_service_broker import ha_settings
from tests.ha.conftest import HaApp
from tests.support.auto_failover import Formation, Server
from tests.support.ha_writes import (
    ContinuousWriter,
    WritabilityProbe,
    acked_writes_lost,
    committed_seqs,
    servers_in_order,
)

# A real formation: failovers, restarts and rejoins take tens of seconds.
pytestmark = pytest.mark.slow


def test_frozen_primary_never_leaves_two_writable_nodes(
    formation: Formation, healthy: tuple[Server, Server], ha_app: HaApp, record_figure
) -> None:
    primary, standby = healthy
    probe = WritabilityProbe({n.host: ha_app.node_conninfo(n) for n in (primary, standby)}).start()
    writer = ContinuousWriter.for_uri(ha_app.uri).start()
    try:
        writer.wait_for_acks(20)
        with formation.frozen(primary) as frozen_at:
            first = writer.wait_for_ack_after(frozen_at, timeout_s=90)
            # The worst moment: the old PostgreSQL wakes up still primary while
            # its keeper (which would demote it) stays frozen, and the new
            # primary is taking writes.
            woke_at = primary.thaw_postgres_only()
            time.sleep(3)
        formation.wait_states({standby.name: "primary", primary.name: "secondary"}, timeout_s=120)
        writer.wait_for_acks(20)
    finally:
        writer.stop()
        probe.stop()

    spans = probe.writable_spans()
    assert set(spans) == {primary.host, standby.host}, spans
    old_last = spans[primary.host][1]
    new_first = spans[standby.host][0]
    assert old_last < new_first, (
        f"both nodes acknowledged writes in overlapping periods: old primary until {old_last:.2f}, "
        f"new primary from {new_first:.2f}\n{formation.describe()}"
    )
    # Awake but not yet demoted, the old primary answers as a primary; only
    # synchronous replication keeps its commits unacknowledged.
    woke = [s for s in probe.samples if s.node == primary.host and s.started > woke_at]
    assert [s for s in woke if s.in_recovery is False], "the old primary was never probed awake as primary"
    assert not [s for s in woke if s.write_acked]

    # The app's own commits, through the multi-host URI, switched node exactly once.
    assert servers_in_order(writer.acks) == [primary.host, standby.host]
    assert first.server == standby.host

    lost = acked_writes_lost([a.seq for a in writer.acks], committed_seqs(ha_app.node_conninfo(standby)))
    assert lost == 0

    promoted_after = first.acked - frozen_at
    # The monitor gave the frozen primary its primary_demote_timeout to fence itself.
    assert promoted_after >= ha_settings.PRIMARY_DEMOTE_TIMEOUT_MS / 1000
    record_figure(
        "freeze_write_unavailability_s",
        promoted_after,
        both_out_of_recovery_moments=len(probe.both_out_of_recovery()),
        old_primary_awake_as_primary_samples=len([s for s in woke if s.in_recovery is False]),
        acked_writes_lost=lost,
    )
