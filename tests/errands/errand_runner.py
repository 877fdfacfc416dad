"""Running an errand as its BOSH job does, `python -m <module> ... --config FILE`, and its config files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.fake_cloud_controller import StandInCloudFoundry

CLIENT_ID = "postgres-service-registrar"
CLIENT_SECRET = "client-secret-Zx81-never-printed"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password-Qw55-never-printed"
BROKER_NAME = "postgres-service"


def registrar_config(cf: StandInCloudFoundry, broker: BrokerProcess, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cloud_controller": {"url": cf.api_url},
        "uaa": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        "broker": {
            "name": BROKER_NAME,
            "url": broker.url,
            "username": BROKER_USER,
            "password": BROKER_PASSWORD,
        },
        "poll_interval_seconds": 0.05,
        "job_timeout_seconds": 30,
        "request_timeout_seconds": 15,
    }
    doc.update(overrides)
    return doc


def write_config(directory: Path, doc: dict[str, Any], name: str = "errand.yml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def run_errand(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The errand in its own process; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", f"postgres_service_broker.{module}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_registrar(tmp_path: Path, command: str, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return run_errand("registrar", command, "--config", str(write_config(tmp_path, doc, "registrar.yml")))


def assert_no_secrets(output: str, *more: str) -> None:
    for secret in (CLIENT_SECRET, ADMIN_PASSWORD, BROKER_PASSWORD, *more):
        assert secret not in output, "a secret was printed"
