"""The cluster going away and coming back: a clear 503 meanwhile, and recovery without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from postgres_service_broker.local_cluster import LocalCluster
from tests.conftest import FAST_SETTINGS
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import OsbClient, new_id


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster.create(prefix="pgsvc-outage-", settings=FAST_SETTINGS)
    cluster.start()
    yield cluster
    cluster.destroy()


def test_outage_gives_503_and_the_broker_recovers(own_cluster: LocalCluster, tmp_path: Path) -> None:
    broker = BrokerProcess.write(tmp_path, own_cluster, lock_timeout_seconds=1).start()
    try:
        osb = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
        assert osb.provision(new_id()).status_code == 201

        own_cluster.stop()
        instance = new_id()
        resp = osb.provision(instance)
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"] == "ServiceUnavailable"
        assert "cannot be reached" in resp.json()["description"]
        assert own_cluster.password not in resp.text
        health = requests.get(broker.url + "/health", timeout=30)
        assert health.status_code == 503

        own_cluster.start()
        # The pool replaces its dead connections; no broker restart is needed.
        resp = osb.provision(instance)
        assert resp.status_code == 201, resp.text
        assert requests.get(broker.url + "/health", timeout=30).status_code == 200
        assert own_cluster.password not in broker.log()
    finally:
        broker.stop()
