"""Shared fixtures: one real PostgreSQL cluster and one real broker process per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from postgres_service_broker.local_cluster import LocalCluster
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import OsbClient

# Settings for test clusters: durability is not what these tests measure.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster.create(prefix="pgsvc-test-", settings=FAST_SETTINGS)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def broker_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("broker")


@pytest.fixture(scope="session")
def broker(pg_cluster: LocalCluster, broker_workdir: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess.write(broker_workdir, pg_cluster).start()
    yield proc
    proc.stop()


@pytest.fixture
def osb(broker: BrokerProcess) -> OsbClient:
    return OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)


@pytest.fixture
def admin_conn(pg_cluster: LocalCluster) -> Iterator[psycopg.Connection]:
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        yield conn
