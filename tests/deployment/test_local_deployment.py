"""The shared variant deployed from the compiled release on this machine, smoke-tested, drained and restarted.

What a `bosh deploy` then `bosh run-errand smoke-tests` does on the VMs, with
the real packages and rendered jobs: the errand must pass against the running
broker, and a service instance made before a drain and restart (a stemcell
update's stop and start) must still be there, its binding still connecting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.deployment.conftest import COMPILE_TIMEOUT_SECONDS
from tests.deployment.local_deployment import LocalDeployment
from tests.support.bosh_compile import CompiledPackage
from tests.support.osb_client import OsbClient, new_id

pytestmark = [pytest.mark.slow, pytest.mark.timeout(COMPILE_TIMEOUT_SECONDS)]


@pytest.fixture
def deployment(needs_ruby: None, compiled_packages: dict[str, CompiledPackage]) -> Iterator[LocalDeployment]:
    deployed = LocalDeployment({name: p.install_dir for name, p in compiled_packages.items()})
    try:
        deployed.install()
        yield deployed
    finally:
        deployed.destroy()


def broker_client(deployment: LocalDeployment) -> OsbClient:
    broker = deployment.properties("broker")["broker"]
    return OsbClient(deployment.broker_url, broker.get("username", "broker"), broker["password"])


def first_plan(client: OsbClient) -> tuple[str, str]:
    catalog = client.catalog()
    assert catalog.status_code == 200, catalog.text
    service = catalog.json()["services"][0]
    return service["id"], service["plans"][0]["id"]


def connect(credentials: dict[str, Any]) -> psycopg.Connection:
    return psycopg.connect(credentials["uri"], connect_timeout=10, autocommit=True)


def test_deploy_smoke_test_drain_and_restart_keeps_the_data(deployment: LocalDeployment) -> None:
    try:
        deployment.start()
        errand = deployment.run_errand("smoke-tests")
        assert errand.returncode == 0, errand.stdout + errand.stderr

        client = broker_client(deployment)
        service_id, plan_id = first_plan(client)
        instance, binding = new_id(), new_id()
        provisioned = client.provision(instance, plan_id=plan_id, service_id=service_id)
        assert provisioned.status_code in (200, 201, 202), provisioned.text
        bound = client.bind(instance, binding, plan_id=plan_id, service_id=service_id)
        assert bound.status_code in (200, 201), bound.text
        credentials = bound.json()["credentials"]
        with connect(credentials) as conn:
            conn.execute("CREATE TABLE notes (body text)")
            conn.execute("INSERT INTO notes VALUES ('written before the drain')")

        deployment.stop()
        assert not deployment.tree.processes, "bpm stop left processes behind"
        with pytest.raises(psycopg.OperationalError):
            connect(credentials).close()

        deployment.start()
        assert any("using the existing PostgreSQL 15" in entry for entry in deployment.transcript)
        fetched = client.fetch_instance(instance)
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["plan_id"] == plan_id
        with connect(credentials) as conn:
            rows = conn.execute("SELECT body FROM notes").fetchall()
        assert rows == [("written before the drain",)]

        # The errand passes again after the restart, and cleans up after itself.
        again = deployment.run_errand("smoke-tests")
        assert again.returncode == 0, again.stdout + again.stderr
    except BaseException:
        print("\n".join(deployment.transcript))
        for job, process in (("postgres", "postgres"), ("broker", "broker")):
            print(f"--- {job}/{process} stderr\n{deployment.tree.log(job, process)[-4000:]}")
        raise


def test_processes_run_unprivileged_and_secrets_stay_out_of_argv(deployment: LocalDeployment) -> None:
    deployment.start()
    secrets = [
        deployment.properties("postgres")["postgres"]["admin_password"],
        deployment.properties("broker")["broker"]["password"],
        deployment.properties("broker")["broker"]["encryption_key"],
    ]
    for name, proc in deployment.tree.processes.items():
        proc_dir = Path(f"/proc/{proc.pid}")
        status = (proc_dir / "status").read_text()
        uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
        assert uid != "0", f"{name} runs as root"
        shown = (proc_dir / "cmdline").read_bytes() + (proc_dir / "environ").read_bytes()
        for secret in secrets:
            assert secret.encode() not in shown, f"a secret is in {name}'s argv or environment"
