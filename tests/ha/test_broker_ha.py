"""Two brokers against the formation: one dies mid-provision, the primary fails over, the other finishes.

Both brokers list every node in `database.host`, as the HA job configures
them. Broker A crashes between two steps of a provision (the
fault-injection point kills it like a power loss). Then the primary is
killed, the standby promoted, and the old primary rejoins as a standby, so
the first host in the brokers' list is now read-only. Broker B, started
before all of this, must drop its broken pooled connections, find the new
primary, finish A's provision and serve the rest of the lifecycle.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import requests

from postgres_service_broker.backends.fault_injection import CRASH_AT_ENV, CRASH_EXIT_CODE
from postgres_service_broker.backends.shared_names import InstanceNames
from tests.ha.ha_broker import ha_broker
from tests.support.auto_failover import Formation, Server
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER
from tests.support.osb_client import OsbClient, new_id

# A real formation: failovers, restarts and rejoins take tens of seconds.
pytestmark = pytest.mark.slow


def test_second_broker_finishes_the_work_across_a_failover(
    formation: Formation, healthy: tuple[Server, Server], tmp_path: Path
) -> None:
    primary, standby = healthy
    hosts = [primary, standby]
    crashing = ha_broker(
        tmp_path / "a", formation, hosts, env={CRASH_AT_ENV: "provision.after_create_database"}
    )
    survivor = ha_broker(tmp_path / "b", formation, hosts)
    crashing.start()
    survivor.start()
    try:
        osb_a = OsbClient(crashing.url, BROKER_USER, BROKER_PASSWORD)
        osb_b = OsbClient(survivor.url, BROKER_USER, BROKER_PASSWORD)
        instance, binding = new_id(), new_id()
        database = InstanceNames.for_instance(instance).database

        # The broker dies mid-request, so the HTTP connection drops.
        with pytest.raises(requests.ConnectionError):
            osb_a.provision(instance)
        assert crashing.process is not None
        assert crashing.process.wait(timeout=10) == CRASH_EXIT_CODE

        primary.kill()
        formation.wait_states({standby.name: "wait_primary"}, timeout_s=60)
        formation.restart(primary)
        formation.wait_states({standby.name: "primary", primary.name: "secondary"}, timeout_s=120)

        resp = osb_b.provision(instance)
        assert resp.status_code in (200, 201), resp.text
        resp = osb_b.bind(instance, binding)
        assert resp.status_code == 201, resp.text
        creds = resp.json()["credentials"]
        assert creds["hosts"] == [primary.host, standby.host]
        with psycopg.connect(creds["uri"], autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE TABLE notes (body text)")
            conn.execute("INSERT INTO notes VALUES ('after the failover')")
            assert conn.execute("SELECT inet_server_addr()::text").fetchone()[0].startswith(standby.host)

        assert osb_b.unbind(instance, binding).status_code == 200
        assert osb_b.deprovision(instance).status_code == 200
        with standby.connect() as conn:
            assert (
                conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None
            )
    finally:
        crashing.stop()
        survivor.stop()
