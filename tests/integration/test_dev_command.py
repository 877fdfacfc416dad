"""`make run` (postgres-service-broker dev): a throwaway cluster and a broker, gone on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from postgres_service_broker.local_cluster import free_port

EXE = Path(sys.executable).parent / "postgres-service-broker"


def start_dev(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [str(EXE), "dev"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}, **env},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C stops"):
            return proc, lines
    proc.kill()
    pytest.fail("dev did not become ready:\n" + "\n".join(lines))


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_dev_serves_the_catalog_and_cleans_up(stop_signal: signal.Signals) -> None:
    port = free_port()
    proc, lines = start_dev({"PORT": str(port), "BROKER_USERNAME": "tryme"})
    try:
        text = "\n".join(lines)
        data_dir = re.search(r"data in (\S+), removed on exit", text)
        assert data_dir, text
        creds = re.search(r"broker credentials \(generated\): (\S+) / (\S+)", text)
        assert creds, text
        assert creds.group(1) == "tryme"
        curl = next(line for line in lines if line.strip().startswith("curl "))
        assert f"http://127.0.0.1:{port}/v2/catalog" in curl

        resp = requests.get(
            f"http://127.0.0.1:{port}/v2/catalog",
            auth=(creds.group(1), creds.group(2)),
            headers={"X-Broker-API-Version": "2.17"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert resp.json()["services"][0]["name"] == "postgres"
        assert Path(data_dir.group(1)).is_dir()
    finally:
        proc.send_signal(stop_signal)
        proc.wait(timeout=30)
    assert not Path(data_dir.group(1)).exists(), "the throwaway cluster must be removed on exit"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_dev_uses_given_credentials_without_printing_them() -> None:
    port = free_port()
    proc, lines = start_dev({"PORT": str(port), "BROKER_USERNAME": "me", "BROKER_PASSWORD": "given-secret-1"})
    try:
        assert "given-secret-1" not in "\n".join(lines)
        resp = requests.get(
            f"http://127.0.0.1:{port}/v2/catalog",
            auth=("me", "given-secret-1"),
            headers={"X-Broker-API-Version": "2.17"},
            timeout=10,
        )
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
