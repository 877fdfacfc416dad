"""The release's shared variant deployed on this machine: compiled packages, rendered jobs, real processes.

The deployment manifest (manifests/postgres-service.yml with its defaults vars
file) is interpolated as the director would, with the `variables:` it declares
generated the way the config server does, and then fitted to one machine by an
ops-file (loopback addresses, free ports, small memory settings). Its postgres,
broker and smoke-tests instance groups share one /var/vcap-like tree mounted at
/var/vcap (see tests/templates/vcap_tree.py), as if colocated on one VM: the
compiled packages are linked under packages/, each job is rendered from its
instance group's properties and links (addresses 127.0.0.1) under jobs/.

Lifecycle, as the BOSH agent runs it: `start` runs every job's pre-start, then
starts the bpm.yml processes its rendered monit file starts (`bpm start JOB
[-p PROCESS]`) as the unprivileged user bpm uses, then post-start, instance
group by instance group in the manifest's order (it is `serial`); `stop` runs
drain, then stops what still runs as bpm would (the process's shutdown_signal,
20 seconds, then SIGKILL). No monit daemon and no bpm containers here:
processes are started once and not restarted.
"""

from __future__ import annotations

import secrets
import signal
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from postgres_service_broker.local_cluster import free_port
from scripts.manifests.opsfile import apply_ops, parse_ops
from scripts.manifests.render import interpolate_files
from scripts.manifests.variables import interpolate
from tests.templates.renderer import Link, job_spec, render_job
from tests.templates.vcap_tree import VCAP, VcapTree

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifests" / "postgres-service.yml"
DEFAULT_VARS = ROOT / "manifests" / "vars" / "defaults.yml"

# The instance groups brought up here, in the manifest's (serial) order; errands run on demand.
SERVICE_GROUPS = ("postgres", "broker")
ERRAND_GROUPS = ("smoke-tests",)
ADDRESS = "127.0.0.1"
# bpm's stop: the process's shutdown_signal, then this long before SIGKILL.
BPM_STOP_SECONDS = 20


class DeploymentError(Exception):
    """A lifecycle step failed; the message names the job, the step and what it printed."""


def generate_variables(manifest: dict[str, Any]) -> dict[str, str]:
    """Values for the manifest's `variables:`, as the config server generates `password` ones."""
    alphabet = string.ascii_letters + string.digits
    values: dict[str, str] = {}
    for variable in manifest.get("variables", []):
        if variable.get("type") != "password":
            kind = variable.get("type")
            raise DeploymentError(f"variable {variable['name']}: type {kind!r} is not generated here")
        length = int((variable.get("options") or {}).get("length", 20))
        values[variable["name"]] = "".join(secrets.choice(alphabet) for _ in range(length))
    return values


def local_ops(postgres_port: int, broker_port: int) -> list[dict[str, Any]]:
    """The ops-file that fits the deployment to one machine: loopback, free ports, small settings."""
    postgres = "/instance_groups/name=postgres/jobs/name=postgres/properties/postgres"
    broker = "/instance_groups/name=broker/jobs/name=broker/properties/broker"
    return [
        {"type": "replace", "path": f"{postgres}/port?", "value": postgres_port},
        {"type": "replace", "path": f"{postgres}/listen_addresses?", "value": ADDRESS},
        {"type": "replace", "path": f"{postgres}/allowed_networks?", "value": [f"{ADDRESS}/32"]},
        {"type": "replace", "path": f"{postgres}/max_connections?", "value": 60},
        {"type": "replace", "path": f"{postgres}/shared_buffers?", "value": "32MB"},
        {"type": "replace", "path": f"{postgres}/startup_timeout_seconds?", "value": 120},
        {"type": "replace", "path": f"{postgres}/shutdown_timeout_seconds?", "value": 60},
        {"type": "replace", "path": f"{broker}/port?", "value": broker_port},
        {"type": "replace", "path": f"{broker}/threads?", "value": 8},
        {"type": "replace", "path": f"{broker}/database?/pool_size?", "value": 10},
    ]


def manifest_for_this_machine() -> dict[str, Any]:
    """The shared variant's manifest, interpolated and fitted to this machine."""
    raw = interpolate_files(MANIFEST, vars_files=[DEFAULT_VARS])
    ops = parse_ops(local_ops(free_port(), free_port()), "local-machine ops")
    doc = apply_ops(raw, ops, "local-machine ops")
    # The errands that talk to Cloud Foundry are not deployed here; their inputs stay unset.
    return interpolate(doc, generate_variables(doc))


def _instance_group(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    for group in manifest["instance_groups"]:
        if group["name"] == name:
            return group
    raise DeploymentError(f"the manifest has no instance group {name}")


def _job(group: dict[str, Any], name: str) -> dict[str, Any]:
    for job in group["jobs"]:
        if job["name"] == name:
            return job
    raise DeploymentError(f"instance group {group['name']} has no job {name}")


@dataclass
class LocalDeployment:
    packages: dict[str, Path]
    manifest: dict[str, Any] = field(default_factory=manifest_for_this_machine)
    tree: VcapTree = field(default_factory=lambda: VcapTree.create(mount_namespace=True))
    # Every lifecycle script's output, in order, for a failing test to show.
    transcript: list[str] = field(default_factory=list)

    def properties(self, group: str, job: str | None = None) -> dict[str, Any]:
        return dict(_job(_instance_group(self.manifest, group), job or group).get("properties") or {})

    def _links(self, group_name: str, job_name: str) -> dict[str, Link]:
        """The links a job consumes, as the director resolves them: `from` names the providing group."""
        job = _job(_instance_group(self.manifest, group_name), job_name)
        links: dict[str, Link] = {}
        for link_name, consumed in (job.get("consumes") or {}).items():
            provider = consumed["from"]
            links[link_name] = Link(
                addresses=[ADDRESS], properties=self.properties(provider), from_job=provider
            )
        return links

    def install(self) -> None:
        """Lay out packages and render every job, as the agent's apply does."""
        for name, install_dir in self.packages.items():
            self.tree.link_package(name, install_dir)
        self.tree.install_bpm_pid_command()
        for group in (*SERVICE_GROUPS, *ERRAND_GROUPS):
            wanted = set(job_spec(group).get("packages") or [])
            missing = wanted - set(self.packages)
            if missing:
                raise DeploymentError(f"job {group} needs packages that were not compiled: {sorted(missing)}")
            rendered = render_job(group, self.properties(group), links=self._links(group, group))
            self.tree.install_job(group, rendered)

    def _has_script(self, job: str, script: str) -> bool:
        return self.tree.path(f"{VCAP}/jobs/{job}/bin/{script}").is_file()

    def _script(self, job: str, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = self.tree.run_script(job, script, timeout=timeout)
        output = result.stdout + result.stderr
        self.transcript.append(f"--- {job}/{script} exited {result.returncode}\n{output}")
        if result.returncode != 0:
            raise DeploymentError(
                f"{job} {script} exited with {result.returncode}: {(result.stderr or result.stdout).strip()}"
            )
        return result

    def _bpm_processes(self, job: str) -> list[dict[str, Any]]:
        bpm = self.tree.path(f"{VCAP}/jobs/{job}/config/bpm.yml")
        return list(yaml.safe_load(bpm.read_text())["processes"]) if bpm.is_file() else []

    def start(self) -> None:
        """pre-start, processes, post-start for each instance group in order, then wait for the broker."""
        for job in SERVICE_GROUPS:
            if self._has_script(job, "pre-start"):
                self._script(job, "pre-start")
            # What monit starts (its `bpm start` checks), not every process bpm.yml declares.
            for name in self.tree.monit_started_processes(job):
                self.tree.start_process(job, name)
            if self._has_script(job, "post-start"):
                self._script(job, "post-start")
        self.wait_for_broker()

    @property
    def broker_url(self) -> str:
        return f"http://{ADDRESS}:{self.properties('broker')['broker']['port']}"

    def wait_for_broker(self, timeout: float = 60) -> None:
        """Until the broker's unauthenticated /health answers 200 (what monit's process check stands for)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            proc = self.tree.processes.get("broker/broker")
            if proc is not None and proc.poll() is not None:
                log = self.tree.log("broker", "broker")[-2000:]
                raise DeploymentError(f"the broker process exited with {proc.returncode}: {log}")
            try:
                response = requests.get(self.broker_url + "/health", timeout=5)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.5)
        raise DeploymentError(f"the broker did not answer /health within {timeout:.0f} s ({last})")

    def stop(self) -> None:
        """drain each job (reverse order), then stop what still runs as bpm stop would."""
        for job in reversed(SERVICE_GROUPS):
            if self._has_script(job, "drain"):
                result = self._script(job, "drain")
                if result.stdout.strip() != "0":
                    raise DeploymentError(f"{job} drain printed {result.stdout.strip()!r}, not the integer 0")
            for process in self._bpm_processes(job):
                self._bpm_stop(job, process)

    def _bpm_stop(self, job: str, process: dict[str, Any]) -> None:
        proc = self.tree.processes.pop(f"{job}/{process['name']}", None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(getattr(signal, "SIG" + str(process.get("shutdown_signal", "TERM"))))
        try:
            proc.wait(timeout=BPM_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def run_errand(self, job: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The errand's bin/run, as `bosh run-errand` runs it; the result is returned, not checked."""
        result = self.tree.run_script(job, "run", timeout=timeout)
        self.transcript.append(f"--- {job}/run exited {result.returncode}\n{result.stdout}{result.stderr}")
        return result

    def destroy(self) -> None:
        """Stop every process (whatever state the deployment is in) and remove the tree."""
        try:
            for job in reversed(SERVICE_GROUPS):
                if self.tree.path(f"{VCAP}/jobs/{job}").is_dir():
                    for process in self._bpm_processes(job):
                        self._bpm_stop(job, process)
        finally:
            # Whatever is left (a stop that failed half-way) gets the tree's own, harsher cleanup.
            self.tree.destroy()
