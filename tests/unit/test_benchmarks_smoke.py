"""The benchmark code paths, each run once with tiny counts, so `make bench` cannot rot unnoticed.

Nothing here is timed: the figures only have to be real numbers (positive),
the runs error-free, and everything the benchmarks make removed again. The
figures themselves come from `make bench`.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from benchmarks import measurements
from benchmarks.broker_client import BrokerClient
from benchmarks.direct_sql import DirectSql
from benchmarks.environment import BenchEnvironment
from benchmarks.failover import Event, FailoverResult
from benchmarks.target import Target
from postgres_service_broker import ha_settings
from postgres_service_broker.local_cluster import LocalCluster
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess


@pytest.fixture
def target(pg_cluster: LocalCluster, broker: BrokerProcess) -> Target:
    return Target.discover(broker.url, BROKER_USER, BROKER_PASSWORD, pg_cluster.conninfo())


def _broker_objects(conninfo: dict[str, object]) -> tuple[int, int]:
    """Databases and roles named the way the broker names them."""
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        dbs = conn.execute(r"SELECT count(*) FROM pg_database WHERE datname LIKE 'cf\_%'").fetchone()
        roles = conn.execute(r"SELECT count(*) FROM pg_roles WHERE rolname LIKE 'cf\_%'").fetchone()
    assert dbs is not None
    assert roles is not None
    return int(dbs[0]), int(roles[0])


@pytest.fixture
def leaves_nothing(target: Target) -> Iterator[None]:
    before = _broker_objects(target.conninfo)
    yield
    assert _broker_objects(target.conninfo) == before


def test_target_reads_plan_from_the_catalog(target: Target) -> None:
    assert target.service_id
    assert target.plan_id
    assert target.connection_limit > 0
    assert target.password not in repr(target)


@pytest.mark.usefixtures("leaves_nothing")
def test_both_lifecycles_run_to_the_end(target: Target) -> None:
    client, direct = BrokerClient(target), DirectSql(target)
    try:
        assert client.lifecycle() > 0
        assert direct.lifecycle() > 0
    finally:
        client.close()
        direct.close()


@pytest.mark.usefixtures("leaves_nothing")
def test_overhead_measures_both_sides(target: Target) -> None:
    result = measurements.measure_overhead(target, runs=2, warmup=0)
    assert result.broker_ms > 0
    assert result.direct_ms > 0
    assert result.ratio > 0
    assert result.line().startswith("broker_overhead_ratio: ")
    assert len(result.broker_step_ms) == len(result.direct_step_ms) == 4
    assert all(ms > 0 for ms in result.broker_step_ms + result.direct_step_ms)
    note = result.steps_note()
    assert all(step in note for step in ("provision", "bind", "unbind", "deprovision"))


@pytest.mark.usefixtures("leaves_nothing")
def test_concurrency_counts_lifecycles_and_errors(target: Target) -> None:
    result = measurements.measure_concurrency(target, clients=2, per_client=1, single_runs=1)
    assert result.errors == 0
    assert result.lifecycles == 2
    assert result.per_s > 0
    assert result.single_per_s > 0
    assert [line.split(":")[0] for line in result.lines()] == [
        "concurrent_lifecycles_per_s",
        "concurrent_errors",
    ]


@pytest.mark.usefixtures("leaves_nothing")
def test_provision_scaling_fills_samples_and_cleans_up(target: Target) -> None:
    existing = measurements.count_instances(target)
    result = measurements.measure_provision_scaling(
        target, small=existing + 1, large=existing + 3, samples=1, fill_deadline_s=120
    )
    assert result.small.existing == existing + 1
    assert result.large.existing == existing + 3
    assert result.small.p50_ms > 0
    assert result.large.p50_ms > 0
    assert result.small.direct_p50_ms > 0
    assert result.large.direct_p50_ms > 0
    assert result.ratio > 0
    assert result.direct_ratio > 0
    assert result.lines()[1].startswith(f"provision_ms_p50_at_{existing + 3}: ")


@pytest.mark.slow
def test_environment_starts_and_removes_cluster_and_broker() -> None:
    with BenchEnvironment() as env:
        assert env.cluster is not None
        base_dir = env.cluster.base_dir
        broker = env.broker
        target = env.target()
        assert target.connection_limit > 0
        direct = DirectSql(target)
        assert direct.lifecycle() > 0
        direct.close()
    assert not base_dir.exists()
    assert broker is not None
    assert broker.poll() is not None


def test_failover_figures_are_medians_beside_their_baselines() -> None:
    crash = [Event(9.5, 0, 100, 0.05), Event(9.1, 0, 90, 0.04), Event(9.9, 0, 80, 0.06)]
    planned = [Event(1.5, 0, 70, 0.05), Event(1.2, 0, 60, 0.07), Event(1.8, 1, 50, 0.03)]
    lines = FailoverResult(failovers=crash, switchovers=planned).lines()
    assert [line.split(":")[0] for line in lines] == [
        "failover_write_unavailability_s",
        "switchover_write_unavailability_s",
        "acked_writes_lost",
    ]
    floor = ha_settings.earliest_promotion_s()
    assert lines[0].startswith("failover_write_unavailability_s: 9.50 (median of 3 ")
    assert f"max 9.90; floor set by the timeouts {floor:.1f} s, ratio {9.5 / floor:.2f}" in lines[0]
    assert "planned switchover in the same run 1.50 s" in lines[0]
    assert lines[1].startswith("switchover_write_unavailability_s: 1.50 (median of 3 ")
    assert "longest gap between commits before it 0.05 s" in lines[1]
    # Every event's losses count, and each is shown.
    assert lines[2].startswith("acked_writes_lost: 1 (of 450 acknowledged commits")
    assert "[0, 0, 0] / [0, 0, 1]" in lines[2]
