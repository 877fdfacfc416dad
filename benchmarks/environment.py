"""A throwaway PostgreSQL cluster and the real broker process in front of it, for one benchmark run.

Used as a context manager: whatever happens inside (an error, Ctrl-C, SIGTERM
turned into KeyboardInterrupt by the runner), the broker is stopped and the
cluster with all its data is destroyed on the way out.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import yaml

from benchmarks.target import Target
from postgres_service_broker.local_cluster import LocalCluster, free_port

# The cluster's settings, and why:
#  - fsync, full_page_writes off: the benchmark measures the broker's work, not
#    this VM's shared disk; both sides of every ratio pay the same for the SQL.
#  - synchronous_commit off: follows from fsync off (nothing to wait for).
#  - max_connections 400: 16 clients, the broker's pool (40) and the per-step
#    connections to instance databases fit with room to spare.
#  - max_wal_size 4GB: CREATE DATABASE copies the template through the WAL;
#    with the default 1GB, thousands of them spend their time in checkpoints.
CLUSTER_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "400",
    "max_wal_size": "4GB",
}


class BrokerStartError(RuntimeError):
    pass


class BenchEnvironment:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = dict(CLUSTER_SETTINGS if settings is None else settings)
        self.cluster: LocalCluster | None = None
        self.workdir: Path | None = None
        self.broker: subprocess.Popen[bytes] | None = None
        self._username = "bench"
        self._password = secrets.token_urlsafe(24)
        self._url = ""

    # -- life cycle -----------------------------------------------------------

    def __enter__(self) -> BenchEnvironment:
        try:
            self.cluster = LocalCluster.create(prefix="pgsvc-bench-", settings=self.settings)
            self.cluster.start()
            self.workdir = Path(tempfile.mkdtemp(prefix="pgsvc-bench-broker-"))
            self._start_broker()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.broker is not None:
            if self.broker.poll() is None:
                self.broker.terminate()
                try:
                    self.broker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.broker.kill()
                    self.broker.wait()
            self.broker = None
        if self.cluster is not None:
            self.cluster.destroy()
            self.cluster = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- the broker -------------------------------------------------------------

    def _broker_config(self, port: int) -> dict[str, Any]:
        assert self.cluster is not None
        return {
            "auth": [{"username": self._username, "password": self._password}],
            "encryption_key": secrets.token_urlsafe(32),
            "listen": {"host": "127.0.0.1", "port": port},
            "database": {
                "host": "127.0.0.1",
                "port": self.cluster.port,
                "user": self.cluster.superuser,
                "password": self.cluster.password,
                "sslmode": "disable",
            },
            # What an operator runs: the audit log stays on, at its usual level.
            "log_level": "INFO",
        }

    def _start_broker(self, timeout_s: float = 60) -> None:
        assert self.workdir is not None
        port = free_port()
        config_path = self.workdir / "broker.yml"
        # Written 0600 from the start: it holds the cluster's password.
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(self._broker_config(port), out)
        exe = Path(sys.executable).parent / "postgres-service-broker"
        with open(self.broker_log, "ab") as log:
            self.broker = subprocess.Popen(
                [str(exe), "serve", "--config", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: Ctrl-C reaches only us, and we stop it in order.
                start_new_session=True,
            )
        self._url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.broker.poll() is not None:
                raise BrokerStartError(f"the broker exited at start:\n{self._log_tail()}")
            try:
                if requests.get(self._url + "/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise BrokerStartError(f"the broker did not become healthy in {timeout_s:.0f} s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        # The log is removed with the work directory, so an error must carry its end.
        try:
            return "\n".join(self.broker_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"

    @property
    def broker_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "broker.log"

    def target(self) -> Target:
        assert self.cluster is not None
        return Target.discover(self._url, self._username, self._password, self.cluster.conninfo())
