"""Run the real broker as a separate process (its console script), as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from postgres_service_broker.local_cluster import LocalCluster, free_port

BROKER_USER = "platform"
BROKER_PASSWORD = "platform-password-1"
SECOND_USER = "rotated"
SECOND_PASSWORD = "rotated-password-2"
ENCRYPTION_KEY = "test-encryption-key-0123456789abcdef"


def broker_config(cluster: LocalCluster, port: int, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "auth": [
            {"username": BROKER_USER, "password": BROKER_PASSWORD},
            {"username": SECOND_USER, "password": SECOND_PASSWORD},
        ],
        "encryption_key": ENCRYPTION_KEY,
        "listen": {"host": "127.0.0.1", "port": port},
        "database": {
            "host": "127.0.0.1",
            "port": cluster.port,
            "user": cluster.superuser,
            "password": cluster.password,
            "sslmode": "disable",
        },
        "log_level": "INFO",
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


@dataclass
class BrokerProcess:
    config_path: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def write(cls, workdir: Path, cluster: LocalCluster, **overrides: Any) -> BrokerProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config_path = workdir / f"broker-{port}.yml"
        config_path.write_text(yaml.safe_dump(broker_config(cluster, port, **overrides)))
        return cls(config_path=config_path, port=port, log_path=workdir / f"broker-{port}.log")

    def start(self, timeout_s: float = 30) -> BrokerProcess:
        exe = Path(sys.executable).parent / "postgres-service-broker"
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [str(exe), "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited at start:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"broker did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout_s: float = 10) -> str:
        """The log once it contains `text`: a request's audit line follows its answer."""
        deadline = time.monotonic() + timeout_s
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not reach the broker log in {timeout_s:.0f} s")
            time.sleep(0.02)
        return log

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
