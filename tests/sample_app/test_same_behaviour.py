"""One app, two bindings: a user-provided service from `ups create` and a brokered one behave the same.

The app runs as the Python buildpack would run it: staged from its
requirements.txt into a fresh environment, started by the manifest's command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from packaging.utils import canonicalize_name

from postgres_service_broker import user_provided
from postgres_service_broker.local_cluster import LocalCluster
from tests.sample_app.cf_stand_in import (
    SAMPLE_APP_DIR,
    SAMPLE_APP_LOCAL,
    AppManifest,
    Space,
    StagedApp,
    installed_packages,
)
from tests.sample_app.vcap_services import brokered_entry, user_provided_entry, vcap_services
from tests.stage1.ups_cli import admin_env, run_ups
from tests.stage2.pins import read_pins
from tests.support.osb_client import OsbClient, new_id

pytestmark = pytest.mark.slow

# The same requests, in the same order, against each binding.
SEQUENCE: list[tuple[str, str, bytes | None]] = [
    ("GET", "/health", None),
    ("GET", "/rows", None),
    ("POST", "/rows", b"first row"),
    ("POST", "/rows", "zweite Zeile, ünïcödé ✓".encode()),
    ("POST", "/rows", b""),
    ("POST", "/rows", b'{"json": "is stored as text"}'),
    ("GET", "/rows", None),
    ("GET", "/health", None),
    ("DELETE", "/rows", None),
    ("GET", "/missing", None),
]


def run_sequence(url: str) -> list[tuple[int, Any]]:
    return [
        (resp.status_code, resp.json())
        for resp in (requests.request(m, url + path, data=body, timeout=30) for m, path, body in SEQUENCE)
    ]


@pytest.fixture
def ups_service(pg_cluster: LocalCluster) -> Iterator[dict[str, Any]]:
    """`ups create`, presented as CF presents the user-provided service it makes."""
    env = admin_env(pg_cluster)
    name = "same-" + new_id()[:8]
    result = run_ups("create", name, "--json", env=env)
    assert result.returncode == 0, result.stderr
    # The --json output, with the tags the printed cf command sets (-t postgresql,relational).
    yield user_provided_entry("my-db", json.loads(result.stdout), list(user_provided.TAGS))
    run_ups("delete", name, env=env)


@pytest.fixture
def brokered_service(osb: OsbClient) -> Iterator[dict[str, Any]]:
    """`cf create-service postgres small my-db` + `cf bind-service`, presented as CF presents it."""
    (offering,) = osb.catalog().json()["services"]
    instance, binding = new_id(), new_id()
    assert osb.provision(instance).status_code == 201
    resp = osb.bind(instance, binding)
    assert resp.status_code == 201, resp.text
    yield brokered_entry("my-db", offering, "small", resp.json()["credentials"])
    osb.unbind(instance, binding)
    osb.deprovision(instance)


def test_user_provided_and_brokered_bindings_behave_identically(
    space: Space,
    sample_manifest: AppManifest,
    staged_sample_app: StagedApp,
    ups_service: dict[str, Any],
    brokered_service: dict[str, Any],
) -> None:
    results = {}
    for kind, entry in (("user-provided", ups_service), ("brokered", brokered_service)):
        app = space.push(
            sample_manifest,
            staged_sample_app.app_dir,
            bin_dir=staged_sample_app.bin_dir,
            services=vcap_services(entry),
            extra_env=SAMPLE_APP_LOCAL,
        )
        results[kind] = run_sequence(app.url)
        assert "found by tag 'postgresql'" in app.log(), app.log()
        app.stop()

    assert results["user-provided"] == results["brokered"]
    # And what they did is what the app promises.
    statuses = [status for status, _ in results["brokered"]]
    assert statuses == [200, 200, 201, 201, 201, 201, 200, 200, 405, 404]
    assert [row["body"] for row in results["brokered"][6][1]] == [
        "first row",
        "zweite Zeile, ünïcödé ✓",
        "",
        '{"json": "is stored as text"}',
    ]


def test_staging_installs_exactly_the_pinned_requirements(staged_sample_app: StagedApp) -> None:
    installed = {canonicalize_name(k): v for k, v in installed_packages(staged_sample_app).items()}
    assert installed == read_pins(SAMPLE_APP_DIR / "requirements.txt")
