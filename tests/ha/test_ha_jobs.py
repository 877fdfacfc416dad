"""The HA variant's jobs, really run: the rendered pg-monitor job and two postgres jobs in HA mode.

This is the local-deployment proof of the HA release: each "VM" is a
/var/vcap-like tree (tests/ha/ha_jobs_tree.py) with its own loopback address,
the packages are the release's own compiled packages (each "VM" in a mount
namespace of its own) or, with HA_JOBS_PACKAGES=debian, Debian's PostgreSQL 15
and pg_auto_failover, and every step
is the job's own script or bpm process, in the order a deploy runs them:
the monitor's pre-start, bpm process and post-start; then each node's. The
keepers' timeouts are checked in their configuration (set before the keepers
ran), writes go through the broker's multi-host credentials, and drain of the
primary hands over to the standby without losing a committed row.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from postgres_service_broker import ha_settings
from tests.ha.ha_jobs_tree import (
    ADMIN_PASSWORD,
    MONITOR_PASSWORD,
    REPLICATION_PASSWORD,
    Deployment,
)
from tests.support.auto_failover import MONITOR_HOST, NODE_HOSTS

pytestmark = pytest.mark.slow

ROTATED_PASSWORD = "ha-rotated'Secret-0c5b"
SECRETS = (ADMIN_PASSWORD, REPLICATION_PASSWORD, MONITOR_PASSWORD, ROTATED_PASSWORD)


def scalar(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    """The one value `query` returns."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row[0]


def test_both_nodes_join_with_one_primary_and_synchronous_replication(deployment: Deployment) -> None:
    deployment.wait_states({deployment.node_name(0): "primary", deployment.node_name(1): "secondary"})
    with deployment.connect_app() as conn:
        host = scalar(conn, "SELECT host(inet_server_addr())")
        sync = scalar(conn, "SHOW synchronous_standby_names")
        wal_sender_timeout = scalar(conn, "SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout'")
    assert host == NODE_HOSTS[0]
    # pg_auto_failover's quorum form, naming the standby: every commit waits for it.
    assert sync.startswith("ANY 1 (")
    assert wal_sender_timeout == str(ha_settings.WAL_SENDER_TIMEOUT_MS)


def test_keeper_timeouts_are_the_ha_settings(deployment: Deployment) -> None:
    for tree in deployment.nodes:
        cfg = next(
            tree.path("/var/vcap/store/postgres/pg_autoctl/config").rglob("pg_autoctl.cfg")
        ).read_text()
        expected = ha_settings.keeper_settings()["timeout.network_partition_timeout"]
        assert f"network_partition_timeout = {expected}" in cfg


def test_monitor_runs_with_the_ha_settings(deployment: Deployment) -> None:
    with psycopg.connect(
        host=MONITOR_HOST,
        port=deployment.monitor_port,
        dbname="pg_auto_failover",
        user="autoctl_node",
        password=MONITOR_PASSWORD,
    ) as conn:
        for name, value in ha_settings.monitor_settings().items():
            assert scalar(conn, "SELECT setting FROM pg_settings WHERE name = %s", (name,)) == value, name


def test_no_secret_in_process_lists_or_logs(deployment: Deployment) -> None:
    ps = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True, check=True).stdout
    environ = ""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                environ += (proc / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
    logs = "".join(
        p.read_text(errors="replace")
        for tree in (deployment.monitor, *deployment.nodes)
        for p in tree.path("/var/vcap/sys/log").rglob("*.log")
    )
    printed = "".join(deployment.transcript)
    assert "pre-start: done" in printed
    for secret in SECRETS:
        assert secret not in printed
        assert secret not in ps
        assert secret not in environ
        assert secret not in logs


def test_drain_of_the_primary_switches_over_without_losing_commits(deployment: Deployment) -> None:
    deployment.wait_states({deployment.node_name(0): "primary", deployment.node_name(1): "secondary"})
    with deployment.connect_app() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS drained (id int PRIMARY KEY)")
        conn.execute("INSERT INTO drained SELECT generate_series(1, 100)")

    started = time.monotonic()
    drain = deployment.run(deployment.nodes[0], "postgres", "drain", timeout=300)
    took = time.monotonic() - started
    # BOSH's drain contract: one integer alone on stdout.
    assert drain.stdout == "0\n", drain.stdout
    assert "switching over" in drain.stderr, drain.stderr

    deployment.wait_states({deployment.node_name(1): "primary"}, timeout_s=60)
    with deployment.connect_app() as conn:
        host = scalar(conn, "SELECT host(inet_server_addr())")
        count = scalar(conn, "SELECT count(*) FROM drained")
        conn.execute("INSERT INTO drained VALUES (101)")
    assert host == NODE_HOSTS[1]
    assert count == 100
    assert took < 120

    # The drained node comes back as the standby of the new primary.
    deployment.nodes[0].start_process("postgres", "postgres")
    deployment.run(deployment.nodes[0], "postgres", "post-start", timeout=300)
    deployment.wait_states({deployment.node_name(0): "secondary", deployment.node_name(1): "primary"})


def test_a_rotated_admin_password_is_set_from_a_standby(deployment: Deployment) -> None:
    """A redeploy with a new admin password updates the standby first: its post-start logs in to
    the primary with the password it last saw accepted and sets the new one there."""
    with deployment.connect_app() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS rotated (note text)")
        conn.execute("INSERT INTO rotated VALUES ('before the rotation')")
    deadline = time.monotonic() + 60
    while (standby := deployment.standby_index()) is None:
        assert time.monotonic() < deadline, f"no settled standby: {deployment.states()}"
        time.sleep(0.5)
    drain = deployment.run(deployment.nodes[standby], "postgres", "drain", timeout=120)
    assert drain.stdout == "0\n"
    assert "switching over" not in drain.stderr
    deployment.deploy_node(standby, admin_password=ROTATED_PASSWORD)
    with deployment.connect_app(ROTATED_PASSWORD) as conn:
        assert scalar(conn, "SELECT note FROM rotated") == "before the rotation"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        deployment.connect_app(ADMIN_PASSWORD).close()
