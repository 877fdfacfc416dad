"""deregister-broker against the stand-in Cloud Controller + UAA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.errands.errand_runner import (
    BROKER_NAME,
    CLIENT_ID,
    CLIENT_SECRET,
    assert_no_secrets,
    registrar_config,
    run_registrar,
)
from tests.support.broker_process import BrokerProcess
from tests.support.fake_cloud_controller import StandInCloudFoundry


def deregister_config(cf: StandInCloudFoundry, **overrides: Any) -> dict[str, Any]:
    # Deregistering needs only the broker's name, not its URL or credentials.
    doc: dict[str, Any] = {
        "cloud_controller": {"url": cf.api_url},
        "uaa": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        "broker": {"name": BROKER_NAME},
        "poll_interval_seconds": 0.05,
        "job_timeout_seconds": 30,
    }
    doc.update(overrides)
    return doc


def register_with_instances(
    cf: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path, count: int
) -> None:
    registered = run_registrar(tmp_path, "register", registrar_config(cf, broker))
    assert registered.returncode == 0, registered.stderr
    small = next(p for p in cf.plans_of(BROKER_NAME) if p["name"] == "small")
    for n in range(count):
        cf.add_service_instance(small["guid"], f"orders-db-{n}")


def test_an_absent_broker_is_already_deregistered(stand_in: StandInCloudFoundry, tmp_path: Path) -> None:
    result = run_registrar(tmp_path, "deregister", deregister_config(stand_in))

    assert result.returncode == 0, result.stderr
    assert f"service broker '{BROKER_NAME}' is not registered; nothing to do" in result.stdout
    assert [r for r in stand_in.requests if r.method == "DELETE"] == []


def test_deregister_disables_access_then_deletes_the_broker(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    register_with_instances(stand_in, broker, tmp_path, count=0)
    guid = stand_in.broker_named(BROKER_NAME)["guid"]  # type: ignore[index]
    before = len(stand_in.requests)

    result = run_registrar(tmp_path, "deregister", deregister_config(stand_in))

    assert result.returncode == 0, result.stderr
    assert stand_in.broker_named(BROKER_NAME) is None
    assert stand_in.plans == {}
    assert stand_in.offerings == {}
    calls = [
        (r.method, r.path, r.body)
        for r in stand_in.requests[before:]
        if r.server == "cc" and r.method != "GET"
    ]
    # Both plans go admin-only first, then the broker is deleted (and its job polled to the end).
    assert [c[0] for c in calls] == ["PATCH", "PATCH", "DELETE"]
    assert all(body == {"type": "admin"} for _, _, body in calls[:2])
    assert calls[2][1] == f"/v3/service_brokers/{guid}"
    assert list(stand_in.jobs.values())[-1].state == "COMPLETE"
    assert f"service broker '{BROKER_NAME}' is deregistered" in result.stdout


def test_deregister_refuses_while_service_instances_exist(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    register_with_instances(stand_in, broker, tmp_path, count=7)
    before = len(stand_in.requests)

    result = run_registrar(tmp_path, "deregister", deregister_config(stand_in))

    assert result.returncode == 1
    assert f"refusing to deregister service broker '{BROKER_NAME}': 7 service instance(s)" in result.stderr
    assert "orders-db-0" in result.stderr
    assert "and 2 more" in result.stderr
    assert "purge: true" in result.stderr
    # Nothing changed: the broker, its instances and the plans' visibility are as they were.
    assert stand_in.broker_named(BROKER_NAME) is not None
    assert len(stand_in.instances) == 7
    assert {p["visibility_type"] for p in stand_in.plans_of(BROKER_NAME)} == {"public"}
    assert [r for r in stand_in.requests[before:] if r.server == "cc" and r.method != "GET"] == []


def test_deregister_with_purge_removes_offerings_and_instances_first(
    stand_in: StandInCloudFoundry, broker: BrokerProcess, tmp_path: Path
) -> None:
    register_with_instances(stand_in, broker, tmp_path, count=2)
    offering_guids = set(stand_in.offerings)

    result = run_registrar(tmp_path, "deregister", deregister_config(stand_in, purge=True))

    assert result.returncode == 0, result.stderr
    purges = stand_in.calls("DELETE", r"/v3/service_offerings/.+")
    assert {r.path.rsplit("/", 1)[1] for r in purges} == offering_guids
    assert all(r.query == {"purge": ["true"]} for r in purges)
    broker_deletes = stand_in.calls("DELETE", r"/v3/service_brokers/.+")
    assert len(broker_deletes) == 1
    assert stand_in.requests.index(purges[-1]) < stand_in.requests.index(broker_deletes[0])
    assert stand_in.broker_named(BROKER_NAME) is None
    assert stand_in.instances == {}
    assert "2 service instance(s) were purged; their databases are still on the cluster" in result.stdout
    assert_no_secrets(result.stdout + result.stderr, *stand_in.issued_tokens)


def test_purge_must_be_a_real_boolean(stand_in: StandInCloudFoundry, tmp_path: Path) -> None:
    result = run_registrar(tmp_path, "deregister", deregister_config(stand_in, purge="yes please"))

    assert result.returncode == 2
    assert "purge: Input should be a valid boolean" in result.stderr
    assert stand_in.requests == []
