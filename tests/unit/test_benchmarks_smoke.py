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
from benchmarks.target import Target
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
