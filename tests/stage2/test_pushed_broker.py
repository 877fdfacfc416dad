"""The README's stage 2 walkthrough: the broker pushed as an app, registered, used by an app, removed.

The broker runs as the Python buildpack runs it: staged from src/broker's
requirements.txt into a fresh environment, started by the manifest's command
with $PORT and the manifest's env (vars from a vars file) and no config file.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import requests
import yaml
from packaging.utils import canonicalize_name

from postgres_service_broker.local_cluster import LocalCluster
from tests.sample_app.cf_stand_in import (
    BROKER_DIR,
    BROKER_LOCAL,
    DEV_BIN,
    SAMPLE_APP_DIR,
    SAMPLE_APP_LOCAL,
    AppInstance,
    Space,
    StagedApp,
    installed_packages,
    read_manifest,
)
from tests.sample_app.vcap_services import brokered_entry, vcap_services
from tests.stage2.pins import read_pins
from tests.support.osb_client import OsbClient, new_id

pytestmark = pytest.mark.slow

BROKER_USERNAME = "cloud-controller"
BROKER_PASSWORD = "broker-password-for-the-test-0123"
ENCRYPTION_KEY = "encryption-key-for-the-test-0123456789"


def write_vars_file(path: Path, cluster: LocalCluster, **overrides: str) -> Path:
    """The README's vars file for `cf push --vars-file`."""
    doc = {
        "database_url": f"postgres://{cluster.superuser}:{quote(cluster.password, safe='')}"
        f"@127.0.0.1:{cluster.port}/postgres?sslmode=disable",
        "broker_username": BROKER_USERNAME,
        "broker_password": BROKER_PASSWORD,
        "broker_encryption_key": ENCRYPTION_KEY,
        **overrides,
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def test_stage2_walkthrough(
    space: Space,
    staged_broker: StagedApp,
    pg_cluster: LocalCluster,
    admin_conn: psycopg.Connection,
    tmp_path: Path,
) -> None:
    # cf push --vars-file ~/postgres-broker-vars.yml   (from src/broker)
    vars_file = write_vars_file(tmp_path / "postgres-broker-vars.yml", pg_cluster)
    manifest = read_manifest(BROKER_DIR / "manifest.yml", vars_file)
    broker = space.push(
        manifest, staged_broker.app_dir, bin_dir=staged_broker.bin_dir, extra_env=BROKER_LOCAL
    )
    assert "BROKER_CONFIG" not in broker.env
    # Configured by environment only: no config file pushed beside the manifest.
    assert sorted(p.name for p in staged_broker.app_dir.glob("*.y*ml")) == ["manifest.yml"]

    # cf create-service-broker postgres-broker cloud-controller URL --space-scoped
    # (the Cloud Controller fetches the catalog with the broker's credentials)
    cc = OsbClient(broker.url, BROKER_USERNAME, BROKER_PASSWORD)
    assert requests.get(broker.url + "/v2/catalog", timeout=10).status_code == 401
    catalog = cc.catalog()
    assert catalog.status_code == 200

    # cf marketplace: the offering and its plans
    (offering,) = catalog.json()["services"]
    assert offering["name"] == "postgres"
    assert [plan["name"] for plan in offering["plans"]] == ["small", "large"]
    small = next(plan for plan in offering["plans"] if plan["name"] == "small")

    # cf create-service postgres small my-db
    instance = new_id()
    assert cc.provision(instance, plan_id=small["id"]).status_code == 201

    # cf bind-service postgres-sample-app my-db
    binding = new_id()
    bound = cc.bind(instance, binding, plan_id=small["id"])
    assert bound.status_code == 201, bound.text
    credentials = bound.json()["credentials"]
    with psycopg.connect(credentials["uri"], autocommit=True, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == credentials["name"]

    # cf restage postgres-sample-app: the app now finds its database
    sample = read_manifest(SAMPLE_APP_DIR / "manifest.yml")
    service = brokered_entry("my-db", offering, "small", credentials)
    app = space.push(
        sample, SAMPLE_APP_DIR, bin_dir=DEV_BIN, services=vcap_services(service), extra_env=SAMPLE_APP_LOCAL
    )
    assert requests.get(app.url + "/health", timeout=10).json() == {"status": "ok"}
    assert requests.post(app.url + "/rows", data=b"hello", timeout=10).status_code == 201
    assert requests.get(app.url + "/rows", timeout=10).json() == [{"id": 1, "body": "hello"}]

    # Clean-up, in order. cf unbind-service postgres-sample-app my-db
    app = space.restage(app, vcap_services())
    assert cc.unbind(instance, binding, plan_id=small["id"]).status_code == 200
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(credentials["uri"], connect_timeout=5)

    # cf delete-service my-db -f
    assert cc.deprovision(instance, plan_id=small["id"]).status_code == 200
    exists = "SELECT 1 FROM pg_database WHERE datname = %s"
    assert admin_conn.execute(exists, (credentials["name"],)).fetchone() is None

    # cf delete-service-broker postgres-broker -f  (the Cloud Controller forgets it; nothing to call)
    # cf delete postgres-service-broker -r -f: the app is stopped with SIGTERM and exits cleanly
    assert broker.process is not None
    process = broker.process
    broker.stop()
    assert process.returncode == 0, broker.log()

    # No secret in what the broker logged.
    log = broker.log()
    for secret in (BROKER_PASSWORD, ENCRYPTION_KEY, pg_cluster.password, credentials["password"]):
        assert secret not in log


def test_staging_installs_exactly_the_pinned_requirements(staged_broker: StagedApp) -> None:
    installed = {canonicalize_name(k): v for k, v in installed_packages(staged_broker).items()}
    assert installed == read_pins(BROKER_DIR / "requirements.txt")
    assert (staged_broker.bin_dir / "postgres-service-broker").is_file()


def test_a_bad_setting_stops_the_pushed_broker_with_the_variable_named(
    staged_broker: StagedApp, pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    vars_file = write_vars_file(tmp_path / "vars.yml", pg_cluster, broker_encryption_key="too-short")
    manifest = read_manifest(BROKER_DIR / "manifest.yml", vars_file)
    broker = AppInstance.create(
        manifest,
        staged_broker.app_dir,
        bin_dir=staged_broker.bin_dir,
        log_dir=tmp_path,
        extra_env=BROKER_LOCAL,
    ).launch()
    try:
        assert broker.exit_code() == 2
    finally:
        broker.stop()
    log = broker.log()
    assert "encryption_key" in log
    assert "BROKER_ENCRYPTION_KEY" in log
    assert pg_cluster.password not in log
