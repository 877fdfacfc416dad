"""The chosen pg_auto_failover timeouts fence before they promote, and the formation really runs with them."""

from __future__ import annotations

import json

import pytest
from psycopg.conninfo import make_conninfo

from postgres_service_broker import ha_settings
from tests.support.auto_failover import MONITOR_DB, Formation, Server
from tests.support.ha_writes import Unacknowledged, run_statement


def test_an_isolated_primary_is_fenced_before_the_standby_can_be_promoted() -> None:
    # At least a second between the two, so clock rounding and a slow fast-shutdown cannot close the gap.
    assert ha_settings.split_brain_margin_s() >= 1.0
    assert ha_settings.self_fence_deadline_s() < ha_settings.earliest_promotion_s()


def test_health_checks_cannot_declare_a_live_node_dead_faster_than_its_keeper_reports() -> None:
    # A node is unhealthy only when both its keeper is silent and its health check is bad;
    # the keeper reports every second, so the silence must cover more than one report.
    assert ha_settings.NODE_CONSIDERED_UNHEALTHY_TIMEOUT_MS > 1000 * ha_settings.KEEPER_LOOP_S
    assert ha_settings.HEALTH_CHECK_MAX_RETRIES >= 1


@pytest.mark.slow
def test_the_running_formation_uses_the_chosen_settings(
    formation: Formation, healthy: tuple[Server, Server]
) -> None:
    primary, standby = healthy
    with formation.monitor.connect(MONITOR_DB) as conn:
        for name, value in ha_settings.monitor_settings().items():
            row = conn.execute("SELECT setting FROM pg_settings WHERE name = %s", (name,)).fetchone()
            assert row == (value,), name
    for node in (primary, standby):
        for key, value in ha_settings.keeper_settings().items():
            got = node.run(["config", "get", "--pgdata", str(node.pgdata), key]).stdout.strip()
            assert got == value, (node.name, key, got)
        with node.connect() as conn:
            for name, value in ha_settings.node_postgres_settings().items():
                shown = conn.execute(
                    "SELECT setting, unit FROM pg_settings WHERE name = %s", (name,)
                ).fetchone()
                assert f"{shown[0]}{shown[1] or ''}" == value, (node.name, name, shown)


@pytest.mark.slow
def test_a_commit_is_acknowledged_only_once_the_standby_has_it(
    formation: Formation, healthy: tuple[Server, Server]
) -> None:
    primary, standby = healthy
    settings = json.loads(
        formation.monitor.run(["show", "settings", "--json", "--monitor", formation.monitor_uri]).stdout
    )
    assert [f["value"] for f in settings["formation"] if f["setting"] == "number_sync_standbys"] == [
        str(ha_settings.NUMBER_SYNC_STANDBYS)
    ]
    with primary.connect() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        names = conn.execute("SHOW synchronous_standby_names").fetchone()[0]
        assert names.startswith("ANY 1 (pgautofailover_standby_"), names
        rows = conn.execute("SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'").fetchall()
        assert rows == [("quorum",)], rows
        conn.execute("CREATE TABLE IF NOT EXISTS sync_check (x int)")

    conninfo = make_conninfo(**primary.conninfo())
    run_statement(conninfo, b"INSERT INTO sync_check VALUES (1)")
    # With the standby frozen (and long before the monitor could declare it
    # unhealthy and let the primary go on alone), a commit is not acknowledged.
    with formation.frozen(standby), pytest.raises(Unacknowledged, match="deadline"):
        run_statement(conninfo, b"INSERT INTO sync_check VALUES (2)", timeout_s=1.5)
    formation.wait_healthy()
