"""The smoke-tests errand against the real broker (and a real PostgreSQL), passing and failing."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from postgres_service_broker.local_cluster import LocalCluster, free_port
from tests.errands.errand_runner import run_errand, write_config
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess

STEPS = [
    "catalog",
    "provision",
    "bind",
    "connect",
    "write-and-read",
    "unbind",
    "credentials-revoked",
    "deprovision",
]


def smoke_config(broker: BrokerProcess, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "broker": {"url": broker.url, "username": BROKER_USER, "password": BROKER_PASSWORD},
        "plan": "small",
        "request_timeout_seconds": 30,
        "poll_interval_seconds": 0.1,
        "database_connect_timeout_seconds": 3,
    }
    doc.update(overrides)
    return doc


def run_smoke_test(tmp_path: Path, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return run_errand("smoke_test", "--config", str(write_config(tmp_path, doc, "smoke-tests.yml")))


def cluster_contents(cluster: LocalCluster) -> dict[str, set[str]]:
    """Databases, roles and the broker's records: what a smoke test must leave as it found it."""
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        contents = {
            "databases": {r[0] for r in conn.execute("SELECT datname FROM pg_database")},
            "roles": {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")},
        }
    with psycopg.connect(**cluster.conninfo("service_broker"), autocommit=True) as conn:
        contents["instances"] = {
            r[0] for r in conn.execute("SELECT instance_id FROM broker.service_instances")
        }
        contents["bindings"] = {r[0] for r in conn.execute("SELECT binding_id FROM broker.service_bindings")}
    return contents


def instance_id(stdout: str) -> str:
    match = re.search(r"instance ([0-9a-f-]{36}), binding", stdout)
    assert match, stdout
    return match.group(1)


def test_smoke_test_passes_against_the_broker(
    broker: BrokerProcess, pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    before = cluster_contents(pg_cluster)
    result = run_smoke_test(tmp_path, smoke_config(broker))

    assert result.returncode == 0, result.stdout + result.stderr
    for number, step in enumerate(STEPS, start=1):
        assert f"[{number}/{len(STEPS)}] {step}: ok" in result.stdout
    assert "the old credentials are refused" in result.stdout
    assert result.stdout.rstrip().endswith("smoke-tests: PASSED")
    assert cluster_contents(pg_cluster) == before
    assert BROKER_PASSWORD not in result.stdout + result.stderr
    assert "postgres://" not in result.stdout + result.stderr  # credentials are never printed


def test_wrong_broker_credentials_fail_at_the_catalog(
    broker: BrokerProcess, pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    before = cluster_contents(pg_cluster)
    doc = smoke_config(broker)
    doc["broker"]["password"] = "not-the-password-Kp4"
    result = run_smoke_test(tmp_path, doc)

    assert result.returncode == 1
    assert "smoke-tests: FAILED at step 'catalog'" in result.stderr
    assert "GET /v2/catalog answered HTTP 401" in result.stdout
    assert "check broker.username and broker.password" in result.stdout
    assert "[2/8] provision" not in result.stdout
    assert cluster_contents(pg_cluster) == before
    assert "not-the-password-Kp4" not in result.stdout + result.stderr


def test_an_unknown_plan_fails_at_the_catalog_naming_the_plans(broker: BrokerProcess, tmp_path: Path) -> None:
    result = run_smoke_test(tmp_path, smoke_config(broker, plan="gigantic"))

    assert result.returncode == 1
    assert "smoke-tests: FAILED at step 'catalog'" in result.stderr
    assert "plan 'gigantic' is not in service 'postgres'; its plans: small, large" in result.stdout


@pytest.fixture
def broker_with_unreachable_credentials(
    pg_cluster: LocalCluster, broker_workdir: Path
) -> Iterator[BrokerProcess]:
    """A broker that hands apps a port nothing listens on: provisioning works, connecting cannot."""
    proc = BrokerProcess.write(
        broker_workdir / "unreachable", pg_cluster, database={"public_port": free_port()}
    ).start()
    yield proc
    proc.stop()


def test_a_failure_after_provisioning_cleans_up_and_names_the_step(
    broker_with_unreachable_credentials: BrokerProcess, pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    before = cluster_contents(pg_cluster)
    result = run_smoke_test(tmp_path, smoke_config(broker_with_unreachable_credentials))

    assert result.returncode == 1
    assert "smoke-tests: FAILED at step 'connect'" in result.stderr
    assert "[4/8] connect: FAILED" in result.stdout
    ident = instance_id(result.stdout)
    assert "cleanup: removed binding" in result.stdout
    assert f"cleanup: removed instance {ident}" in result.stdout
    assert "left behind" not in result.stdout
    assert cluster_contents(pg_cluster) == before


@pytest.mark.slow
def test_a_stopped_database_fails_at_provision_and_leaves_nothing(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    cluster = LocalCluster.create(prefix="pgsvc-smoke-", settings={"fsync": "off"})
    try:
        cluster.start()
        # A short lock timeout bounds the broker's wait for a connection, so each call fails in seconds.
        workdir = tmp_path_factory.mktemp("stopped-db-broker")
        proc = BrokerProcess.write(workdir, cluster, lock_timeout_seconds=1).start()
        try:
            before = cluster_contents(cluster)
            cluster.stop()
            result = run_smoke_test(tmp_path, smoke_config(proc, request_timeout_seconds=20))
        finally:
            proc.stop()
        assert result.returncode == 1
        assert "smoke-tests: FAILED at step 'provision'" in result.stderr
        assert "[2/8] provision: FAILED" in result.stdout
        ident = instance_id(result.stdout)
        # The errand tried to clean up, and says what it could not remove.
        assert f"cleanup: could not remove instance {ident}" in result.stdout
        assert "cleanup: left behind on the broker" in result.stdout
        cluster.start()
        assert cluster_contents(cluster) == before
    finally:
        cluster.destroy()
