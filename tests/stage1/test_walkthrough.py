"""The README's stage 1 walkthrough, step by step: ups create, cf cups, bind, restage, use, clean up."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import requests

from postgres_service_broker.local_cluster import LocalCluster
from tests.sample_app.cf_stand_in import DEV_BIN, SAMPLE_APP_DIR, SAMPLE_APP_LOCAL, Space, read_manifest
from tests.sample_app.vcap_services import parse_cups_command, user_provided_entry, vcap_services
from tests.stage1.ups_cli import admin_env, cluster_objects, run_ups, ups_objects


def test_stage1_walkthrough(space: Space, pg_cluster: LocalCluster, admin_conn: psycopg.Connection) -> None:
    # export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE  (the admin connection)
    env = admin_env(pg_cluster)
    before = cluster_objects(admin_conn)

    # postgres-service-broker ups create my-db
    created = run_ups("create", "my-db", env=env)
    assert created.returncode == 0, created.stderr
    assert "created my-db on" in created.stderr

    # cf create-user-provided-service my-db -p '{...}' -t postgresql,relational   (the printed line)
    cups = parse_cups_command(created.stdout.strip())
    assert cups.name == "my-db"
    service = user_provided_entry(cups.name, cups.credentials, cups.tags)

    # cd src/sample-app && cf push: it starts, but has no database yet
    manifest = read_manifest(SAMPLE_APP_DIR / "manifest.yml")
    app = space.push(manifest, SAMPLE_APP_DIR, bin_dir=DEV_BIN, extra_env=SAMPLE_APP_LOCAL)
    assert requests.get(app.url + "/health", timeout=10).status_code == 503

    # cf bind-service postgres-sample-app my-db && cf restage postgres-sample-app
    app = space.restage(app, vcap_services(service))
    assert requests.get(app.url + "/health", timeout=10).json() == {"status": "ok"}
    resp = requests.post(app.url + "/rows", data=b"hello", timeout=10)
    assert (resp.status_code, resp.json()) == (201, {"id": 1, "body": "hello"})
    assert requests.get(app.url + "/rows", timeout=10).json() == [{"id": 1, "body": "hello"}]

    # cf unbind-service postgres-sample-app my-db && cf delete-service my-db -f
    app = space.restage(app, vcap_services())
    assert requests.get(app.url + "/health", timeout=10).status_code == 503

    # postgres-service-broker ups delete my-db
    deleted = run_ups("delete", "my-db", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert ups_objects(admin_conn, "my-db") == set()
    assert cluster_objects(admin_conn) == before
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cups.credentials["uri"], connect_timeout=5)


def test_credentials_through_a_file_instead_of_the_command_line(
    pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    """The README's alternative: --json into a file, then cf cups -p FILE (keeps them out of `ps`)."""
    env = admin_env(pg_cluster)
    result = run_ups("create", "my-file-db", "--json", env=env)
    try:
        assert result.returncode == 0, result.stderr
        creds_file = tmp_path / "my-file-db.json"
        creds_file.write_text(result.stdout)
        cups = parse_cups_command(
            f"cf create-user-provided-service my-file-db -p {creds_file} -t postgresql,relational"
        )
        assert cups.credentials == json.loads(result.stdout)
        with psycopg.connect(cups.credentials["uri"], connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    finally:
        run_ups("delete", "my-file-db", env=env)
