"""The test app as a real process, started by its manifest's command with $PORT and VCAP_SERVICES."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import requests

from postgres_service_broker.local_cluster import LocalCluster, free_port
from tests.sample_app.cf_stand_in import DEV_BIN, SAMPLE_APP_DIR, SAMPLE_APP_LOCAL, AppManifest, Space
from tests.sample_app.vcap_services import user_provided_entry, vcap_services
from tests.stage1.ups_cli import admin_env, run_ups

MYSQL = user_provided_entry("my-mysql", {"uri": "mysql://u:p@mysql:3306/d"}, ["mysql"])


@pytest.fixture
def ups_credentials(pg_cluster: LocalCluster) -> Iterator[dict]:
    """A real user-provided binding's credentials, made with `ups create --json`."""
    env = admin_env(pg_cluster)
    name = "app-" + uuid.uuid4().hex[:8]
    result = run_ups("create", name, "--json", env=env)
    assert result.returncode == 0, result.stderr
    yield json.loads(result.stdout)
    run_ups("delete", name, env=env)


def push(space: Space, manifest: AppManifest, services: str | None) -> str:
    app = space.push(manifest, SAMPLE_APP_DIR, bin_dir=DEV_BIN, services=services, extra_env=SAMPLE_APP_LOCAL)
    return app.url


@pytest.mark.parametrize(
    ("services", "problem"),
    [
        (None, "VCAP_SERVICES is not set"),
        ("{not json", "VCAP_SERVICES is not valid JSON (Expecting property name"),
        ('["postgres"]', "VCAP_SERVICES is malformed"),
        ("{}", "VCAP_SERVICES lists no services"),
        (vcap_services(MYSQL), "no PostgreSQL service among the bound services (my-mysql)"),
    ],
)
def test_without_a_usable_binding_it_starts_answers_503_and_logs_why(
    space: Space, sample_manifest: AppManifest, services: str | None, problem: str
) -> None:
    url = push(space, sample_manifest, services)
    for method, path in (("GET", "/health"), ("GET", "/rows"), ("POST", "/rows")):
        resp = requests.request(method, url + path, data=b"x" if method == "POST" else None, timeout=10)
        assert resp.status_code == 503
        body = resp.json()
        assert body["status"] == "unavailable"
        assert problem in body["reason"]
    (app,) = space.instances
    lines = [line for line in app.log().splitlines() if "no usable PostgreSQL binding" in line]
    assert len(lines) == 1
    assert problem in lines[0]


def test_stores_and_lists_rows_and_creates_its_table_on_first_use(
    space: Space, sample_manifest: AppManifest, ups_credentials: dict
) -> None:
    with psycopg.connect(ups_credentials["uri"], autocommit=True) as conn:
        tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'sample_rows'"
        assert conn.execute(tables).fetchone()[0] == 0
        url = push(space, sample_manifest, vcap_services(user_provided_entry("db", ups_credentials, [])))
        assert requests.get(url + "/health", timeout=10).json() == {"status": "ok"}
        assert requests.get(url + "/rows", timeout=10).json() == []
        assert conn.execute(tables).fetchone()[0] == 1

    resp = requests.post(url + "/rows", data=b"hello", timeout=10)
    assert resp.status_code == 201
    assert resp.json() == {"id": 1, "body": "hello"}
    requests.post(url + "/rows", data="grüße ✓".encode(), timeout=10)
    assert requests.get(url + "/rows", timeout=10).json() == [
        {"id": 1, "body": "hello"},
        {"id": 2, "body": "grüße ✓"},
    ]

    # A restarted (or second) instance sees the same rows: they live in the database.
    (app,) = space.instances
    app = space.restage(app, app.env["VCAP_SERVICES"])
    assert len(requests.get(app.url + "/rows", timeout=10).json()) == 2


def test_bad_requests(space: Space, sample_manifest: AppManifest, ups_credentials: dict) -> None:
    url = push(space, sample_manifest, vcap_services(user_provided_entry("db", ups_credentials, [])))
    assert requests.get(url + "/nope", timeout=10).status_code == 404
    resp = requests.delete(url + "/rows", timeout=10)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, POST"
    assert requests.post(url + "/health", timeout=10).status_code == 405
    assert requests.post(url + "/rows", data=b"\xff\xfe", timeout=10).status_code == 400
    assert requests.post(url + "/rows", data=b"a\x00b", timeout=10).status_code == 400
    assert requests.post(url + "/rows", data=b"x" * (64 * 1024 + 1), timeout=10).status_code == 413
    # None of those stored anything.
    assert requests.get(url + "/rows", timeout=10).json() == []


def test_an_unreachable_database_gives_503_with_the_reason(
    space: Space, sample_manifest: AppManifest
) -> None:
    dead = {"uri": f"postgres://u:p@127.0.0.1:{free_port()}/d"}
    url = push(space, sample_manifest, vcap_services(user_provided_entry("db", dead, ["postgresql"])))
    resp = requests.get(url + "/health", timeout=30)
    assert resp.status_code == 503
    assert "Connection refused" in resp.json()["reason"]
    assert requests.post(url + "/rows", data=b"x", timeout=30).status_code == 503
    (app,) = space.instances
    assert "using PostgreSQL service 'db' (label 'user-provided', found by tag 'postgresql')" in app.log()
