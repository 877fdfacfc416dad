"""The monitor is down: the nodes keep serving writes (and the broker keeps provisioning); back, it heals.

The monitor only decides failovers. While it is gone the primary still has
its standby, so it must not fence itself, and synchronous replication goes
on; when the monitor returns, the keepers report in and the formation is
back to primary + secondary with the same primary (no needless failover).
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from postgres_service_broker import ha_settings
from tests.ha.conftest import HaApp
from tests.ha.ha_broker import ha_broker
from tests.support.auto_failover import Formation, Server
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER
from tests.support.ha_writes import ContinuousWriter, acked_writes_lost, committed_seqs
from tests.support.osb_client import OsbClient, new_id

# A real formation: failovers, restarts and rejoins take tens of seconds.
pytestmark = pytest.mark.slow


def test_writes_and_provisioning_continue_without_the_monitor_and_it_heals(
    formation: Formation, healthy: tuple[Server, Server], ha_app: HaApp, tmp_path: Path
) -> None:
    primary, standby = healthy
    # This test is about the monitor, not about finding the primary (the
    # failover tests are): list the primary first.
    broker = ha_broker(tmp_path, formation, [primary, standby]).start()
    osb = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    writer = ContinuousWriter.for_uri(ha_app.uri).start()
    try:
        writer.wait_for_acks(20)
        down_at = formation.monitor.kill()
        # Longer than an isolated primary would take to fence itself: it must not, it still has its standby.
        time.sleep(ha_settings.self_fence_deadline_s() + 2)
        instance = new_id()
        resp = osb.provision(instance)
        assert resp.status_code == 201, resp.text
        binding = osb.bind(instance, new_id())
        assert binding.status_code == 201, binding.text
        writer.wait_for_acks(20, timeout_s=10)
        outage = [a for a in writer.acks if a.sent > down_at]

        formation.restart(formation.monitor)
        formation.wait_states({primary.name: "primary", standby.name: "secondary"}, timeout_s=60)
        writer.wait_for_acks(20)
    finally:
        writer.stop()
        broker.stop()

    assert outage, "no commit was acknowledged while the monitor was down"
    assert {a.server for a in writer.acks} == {primary.host}, (
        "the primary changed although only the monitor failed"
    )
    # Commits still flowed after the moment an isolated primary would have fenced itself.
    fence_by = down_at + ha_settings.self_fence_deadline_s()
    assert [a for a in outage if a.sent > fence_by], "the primary stopped taking writes without its monitor"
    with primary.connect() as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    creds = binding.json()["credentials"]
    with psycopg.connect(creds["uri"], autocommit=True, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    assert acked_writes_lost([a.seq for a in writer.acks], committed_seqs(ha_app.node_conninfo(primary))) == 0
