"""A stand-in for what Cloud Foundry does around an app, so tests can run apps as CF would.

- ``read_manifest``: the one application of an app manifest, with ``((vars))``
  resolved from a vars file as ``cf push --vars-file`` does (a missing var is
  an error, as it is for cf).
- ``stage``: what the Python buildpack does: copy the pushed directory and
  ``pip install -r requirements.txt`` (from the app directory) into a fresh
  environment.
- ``AppInstance.start``: what the app container does: run the manifest's
  ``command`` with bash in the app directory, with ``PORT``,
  ``VCAP_APPLICATION``, ``VCAP_SERVICES`` and the manifest's ``env`` and nothing
  else from the test's environment, then wait for the manifest's health check.

One difference, on purpose: servers here listen on 127.0.0.1, so tests add
the apps' listen-host variable to the environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from postgres_service_broker.local_cluster import free_port

REPO = Path(__file__).resolve().parents[2]
BROKER_DIR = REPO / "src" / "broker"
SAMPLE_APP_DIR = REPO / "src" / "sample-app"
# What a pushed directory leaves behind (cf push skips these, or they are local build output).
NOT_PUSHED = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".pytest_cache")
# Where the dev environment's python and console scripts are (for apps run without staging).
DEV_BIN = Path(sys.executable).parent
# Servers in these tests listen on 127.0.0.1 only; on CF apps listen on all interfaces.
SAMPLE_APP_LOCAL = {"APP_LISTEN_HOST": "127.0.0.1"}
BROKER_LOCAL = {"BROKER_LISTEN_HOST": "127.0.0.1"}
_VAR = re.compile(r"\(\(([A-Za-z0-9_.-]+)\)\)")


@dataclass(frozen=True)
class AppManifest:
    name: str
    command: str
    memory: str
    buildpacks: list[str]
    health_check_type: str
    health_check_endpoint: str
    env: dict[str, str]
    raw: dict[str, Any]


def interpolate(node: Any, variables: dict[str, Any]) -> Any:
    """Resolve ((vars)) in the manifest's values (not its comments), as cf push does."""
    missing: set[str] = set()

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            whole = _VAR.fullmatch(value)
            if whole:  # a whole-value var keeps the var's own type
                if whole[1] not in variables:
                    missing.add(whole[1])
                return variables.get(whole[1])
            missing.update(m for m in _VAR.findall(value) if m not in variables)
            return _VAR.sub(lambda m: str(variables.get(m[1], "")), value)
        return value

    result = walk(node)
    if missing:
        raise ValueError(f"Expected to find variables: {', '.join(sorted(missing))}")
    return result


def read_manifest(path: Path, vars_file: Path | None = None) -> AppManifest:
    variables = yaml.safe_load(vars_file.read_text()) if vars_file else {}
    doc = interpolate(yaml.safe_load(path.read_text()), variables or {})
    (app,) = doc["applications"]
    return AppManifest(
        name=app["name"],
        command=app["command"],
        memory=str(app.get("memory", "1G")),
        buildpacks=list(app.get("buildpacks", [])),
        health_check_type=app.get("health-check-type", "port"),
        health_check_endpoint=app.get("health-check-http-endpoint", "/"),
        env={k: str(v) for k, v in (app.get("env") or {}).items()},
        raw=app,
    )


@dataclass(frozen=True)
class StagedApp:
    """The droplet: the app's files and the environment the buildpack installed into."""

    app_dir: Path
    bin_dir: Path


def stage(source: Path, workdir: Path) -> StagedApp:
    app_dir = workdir / "app"
    shutil.copytree(source, app_dir, ignore=NOT_PUSHED)
    deps = workdir / "deps"
    subprocess.run([sys.executable, "-m", "venv", str(deps)], check=True, capture_output=True)
    result = subprocess.run(
        [str(deps / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
        cwd=app_dir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"staging failed (pip install -r requirements.txt):\n{result.stderr[-4000:]}")
    return StagedApp(app_dir=app_dir, bin_dir=deps / "bin")


def installed_packages(staged: StagedApp) -> dict[str, str]:
    """name -> version of everything in the staged environment but the app and pip itself."""
    out = subprocess.run(
        [str(staged.bin_dir / "python"), "-m", "pip", "freeze", "--all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        name, sep, version = line.partition("==")
        if sep and name.lower() not in ("pip", "setuptools", "wheel"):
            found[name] = version
    return found


@dataclass
class AppInstance:
    manifest: AppManifest
    app_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(
        cls,
        manifest: AppManifest,
        app_dir: Path,
        *,
        bin_dir: Path,
        log_dir: Path,
        services: str | None = "{}",
        extra_env: dict[str, str] | None = None,
    ) -> AppInstance:
        """An instance with the container's environment, not yet running (services=None: no VCAP_SERVICES)."""
        port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.defpath.strip(os.pathsep)}",
            "HOME": str(app_dir),
            "LANG": "C.UTF-8",
            "PORT": str(port),
            "MEMORY_LIMIT": manifest.memory,
            "VCAP_APPLICATION": json.dumps(
                {"application_name": manifest.name, "application_id": str(uuid.uuid4()), "port": port}
            ),
            **({} if services is None else {"VCAP_SERVICES": services}),
            **manifest.env,
            **(extra_env or {}),
        }
        log_path = log_dir / f"{manifest.name}-{port}.log"
        return cls(manifest=manifest, app_dir=app_dir, port=port, log_path=log_path, env=env)

    @classmethod
    def start(cls, manifest: AppManifest, app_dir: Path, **kwargs: Any) -> AppInstance:
        """Create, launch and wait for the health check, as `cf start` does."""
        return cls.create(manifest, app_dir, **kwargs).launch().wait_healthy()

    def launch(self) -> AppInstance:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            ["bash", "-c", self.manifest.command],
            cwd=self.app_dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_healthy(self, timeout_s: float = 60) -> AppInstance:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.manifest.name} exited at start:\n{self.log()}")
            if self._healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.manifest.name} failed its health check:\n{self.log()}")

    def _healthy(self) -> bool:
        kind = self.manifest.health_check_type
        if kind == "process":
            return True
        if kind == "http":
            try:
                url = self.url + self.manifest.health_check_endpoint
                return requests.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def exit_code(self, timeout_s: float = 30) -> int:
        """For an app expected to stop by itself: wait and return its exit code."""
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """As `cf stop`: SIGTERM to the process group, SIGKILL after a grace period."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.process = None


class Space:
    """The apps a test pushed, so each can be restaged with new bindings and all stopped at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.instances: list[AppInstance] = []

    def push(
        self,
        manifest: AppManifest,
        app_dir: Path,
        *,
        bin_dir: Path,
        services: str | None = "{}",
        extra_env: dict[str, str] | None = None,
    ) -> AppInstance:
        instance = AppInstance.create(
            manifest, app_dir, bin_dir=bin_dir, log_dir=self.log_dir, services=services, extra_env=extra_env
        )
        self.instances.append(instance)
        return instance.launch().wait_healthy()

    def restage(self, instance: AppInstance, services: str) -> AppInstance:
        """`cf bind-service` / `cf unbind-service` + `cf restage`: the same app, new VCAP_SERVICES."""
        instance.stop()
        instance.env["VCAP_SERVICES"] = services
        return instance.launch().wait_healthy()

    def stop_all(self) -> None:
        for instance in self.instances:
            instance.stop()


@pytest.fixture
def space(tmp_path: Path) -> Iterator[Space]:
    """Import into a conftest to use: apps pushed in a test are stopped after it."""
    apps = Space(tmp_path / "app-logs")
    yield apps
    apps.stop_all()
