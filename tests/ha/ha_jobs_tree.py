"""The HA variant's jobs laid out on this machine: one /var/vcap-like tree per "VM", and their deployment.

The monitor and each PostgreSQL node get their own `VcapTree` (see
tests/templates/vcap_tree.py), with its own loopback address, so the nodes
and the monitor all use one port as on separate machines. Their packages are
chosen by $HA_JOBS_PACKAGES:

- `release` (the default): the release's own `postgres` (PostgreSQL 15) and `pg-auto-failover`
  (pg_auto_failover 2.2 built into a copy of it), compiled from packages/ as a
  BOSH compilation VM does (tests/support/bosh_compile.py, cached). Compiled
  packages carry absolute /var/vcap paths, so every script and process of a
  tree runs in a private mount namespace where that tree is /var/vcap.
- `debian`: Debian's PostgreSQL 15 and pg_auto_failover stand
  in: `postgres` is PostgreSQL's own tree, and `pg-auto-failover` a directory
  whose bin/ holds links to PostgreSQL's programs plus `pg_autoctl`, the
  layout the package builds.

`Deployment` brings the jobs up in the HA manifest's order with their own
lifecycle scripts; `kill_process_tree` takes a "VM"'s bpm process down with
everything under it, as losing the machine would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from postgres_service_broker.local_cluster import ClusterError, find_pg_bin
from tests.support import bosh_compile, vcap_namespace
from tests.support.auto_failover import (
    MONITOR_HOST,
    NODE_HOSTS,
    find_pg_autoctl,
    shared_free_port,
    wait_until,
)
from tests.support.process_tree import pid_alive, process_tree, signal_all
from tests.templates.renderer import Link, render_job
from tests.templates.vcap_tree import VcapTree

ROOT = Path(__file__).resolve().parents[2]


class MissingTool(Exception):
    """A program the HA job tests need is not installed; the message names it."""


@dataclass(frozen=True)
class HaPackages:
    """What each "VM"'s packages/postgres and packages/pg-auto-failover link to."""

    postgres: Path
    pg_auto_failover: Path
    # Compiled packages need the real /var/vcap paths; Debian's programs do not.
    mount_namespace: bool
    # Which software this is, for the test output: "release" or "debian".
    origin: str
    # A directory made for this run, removed by `remove`.
    made: Path | None = None

    def remove(self) -> None:
        if self.made is not None:
            shutil.rmtree(self.made, ignore_errors=True)


def release_packages() -> HaPackages:
    """The release's postgres and pg-auto-failover packages, compiled (or taken from the compile cache)."""
    reason = vcap_namespace.unavailable()
    if reason:
        raise MissingTool(f"a mount namespace for the compiled packages: {reason}")
    compiled = bosh_compile.compile_release(
        ROOT, bosh_compile.default_cache_dir(ROOT), log=lambda line: print(line, flush=True)
    )
    return HaPackages(
        postgres=compiled["postgres"].install_dir,
        pg_auto_failover=compiled["pg-auto-failover"].install_dir,
        mount_namespace=True,
        origin="release",
    )


def debian_packages() -> HaPackages:
    """A stand-in for the two packages, built from links to Debian's installed programs."""
    try:
        pg_bin = find_pg_bin()
    except ClusterError as exc:
        raise MissingTool(f"PostgreSQL 15's server binaries (postgresql-15): {exc}") from None
    pg_autoctl = find_pg_autoctl()
    if pg_autoctl is None:
        raise MissingTool("pg_autoctl (postgresql-15-auto-failover)")
    package = Path(tempfile.mkdtemp(prefix="pkg-pgaf-"))
    package.chmod(0o755)
    (package / "bin").mkdir(mode=0o755)
    # Links, not copies: PostgreSQL finds its share/ and lib/ from where the
    # linked-to binary really is, as the package's copy finds its own.
    for program in pg_bin.iterdir():
        (package / "bin" / program.name).symlink_to(program)
    (package / "bin" / "pg_autoctl").symlink_to(pg_autoctl)
    return HaPackages(pg_bin.parent, package, mount_namespace=False, origin="debian", made=package)


# Which packages the "VMs" get: "release" (the compiled packages, the default) or "debian".
PACKAGES_ENV = "HA_JOBS_PACKAGES"


def ha_packages() -> HaPackages:
    """The packages chosen by $HA_JOBS_PACKAGES: Debian's stand-ins unless "release" is asked for."""
    choice = os.environ.get(PACKAGES_ENV, "release")
    if choice == "release":
        return release_packages()
    if choice == "debian":
        return debian_packages()
    raise ValueError(f"{PACKAGES_ENV}={choice!r} is not a choice; use 'debian' or 'release'")


def vm(packages: HaPackages) -> VcapTree:
    """A fresh "VM": a /var/vcap-like tree with both packages and bpm's `pid` command."""
    tree = VcapTree.create(mount_namespace=packages.mount_namespace)
    tree.link_package("postgres", packages.postgres)
    tree.link_package("pg-auto-failover", packages.pg_auto_failover)
    tree.install_bpm_pid_command()
    return tree


def kill_process_tree(pid: int) -> float:
    """SIGKILL `pid` and every descendant at once, as losing the VM would; returns when it happened.

    Everything is stopped first, so no process can react (a keeper restarting
    its PostgreSQL, a postmaster noticing a dead child) before all are killed.
    """
    pids = process_tree(pid)
    signal_all(pids, signal.SIGSTOP)
    # Children forked between the listing and the stop are caught by a second look.
    pids = sorted(set(pids) | set(process_tree(pid)))
    killed_at = time.monotonic()
    signal_all(pids, signal.SIGKILL)
    return killed_at


def wait_gone(pids: list[int], timeout_s: float = 20) -> None:
    """Until none of `pids` exists any more (reaped, by us or by init)."""
    deadline = time.monotonic() + timeout_s
    while alive := [p for p in pids if pid_alive(p)]:
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {alive} still run {timeout_s:.0f} s after SIGKILL")
        time.sleep(0.1)


def stop_process(tree: VcapTree, job: str, name: str, timeout_s: float = 30) -> None:
    """`bpm stop` of one process, if it runs: its shutdown signal (bpm's default SIGTERM), then SIGKILL."""
    running = tree.processes.get(f"{job}/{name}")
    if running is None or running.poll() is not None:
        return
    shutdown = tree.bpm_process(job, name).get("shutdown_signal", "TERM")
    running.send_signal(signal.Signals[f"SIG{shutdown}"])
    try:
        running.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_process_tree(running.pid)
        running.wait()


# -- the deployment -----------------------------------------------------------------------

ADMIN = "pgadmin"
ADMIN_PASSWORD = "ha-admin'Secret-4e1f"
REPLICATION_PASSWORD = "ha-repl:Secret-77c0"
MONITOR_PASSWORD = "ha-monitor\\Secret-a9d2"


class Deployment:
    """The monitor "VM" and two node "VMs", deployed in the order of the HA manifest.

    Every step is the job's own script or bpm process, in the order a deploy
    runs them: the monitor's pre-start, bpm process and post-start; then each
    node's.
    """

    def __init__(self, packages: HaPackages) -> None:
        self.packages = packages
        self.monitor_port = shared_free_port((MONITOR_HOST,))
        self.node_port = shared_free_port(NODE_HOSTS[:2])
        self.monitor = vm(packages)
        self.nodes = [vm(packages) for _ in range(2)]
        # What every lifecycle script printed, as BOSH keeps it in the job's logs.
        self.transcript: list[str] = []

    def run(
        self, tree: VcapTree, job: str, script: str, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """A lifecycle script, which must succeed (else its output and the process's log tail are shown)."""
        result = tree.run_script(job, script, timeout=timeout)
        self.transcript.append(result.stdout + result.stderr)
        assert result.returncode == 0, (
            f"{job} {script}:\n{result.stdout}\n{result.stderr}\n{tree.log(job, job)[-3000:]}"
        )
        return result

    def monitor_properties(self) -> dict[str, Any]:
        return {
            "pg_monitor": {
                "port": self.monitor_port,
                "autoctl_node_password": MONITOR_PASSWORD,
                "allowed_networks": ["127.0.0.0/8"],
                "startup_timeout_seconds": 60,
                "shutdown_timeout_seconds": 30,
            }
        }

    def node_properties(self, index: int, admin_password: str = ADMIN_PASSWORD) -> dict[str, Any]:
        return {
            "postgres": {
                "port": self.node_port,
                # Each "VM" listens on its own address only, as on separate machines.
                "listen_addresses": NODE_HOSTS[index],
                "admin_username": ADMIN,
                "admin_password": admin_password,
                "allowed_networks": ["127.0.0.0/8"],
                "max_connections": 40,
                "shared_buffers": "16MB",
                "startup_timeout_seconds": 120,
                "shutdown_timeout_seconds": 30,
                "ha": {"replication_password": REPLICATION_PASSWORD, "switchover_timeout_seconds": 90},
            }
        }

    def monitor_link(self) -> Link:
        return Link(addresses=[MONITOR_HOST], properties=self.monitor_properties(), from_job="pg-monitor")

    def deploy_monitor(self) -> None:
        rendered = render_job("pg-monitor", self.monitor_properties(), {"address": MONITOR_HOST, "az": "z1"})
        self.monitor.install_job("pg-monitor", rendered)
        self.run(self.monitor, "pg-monitor", "pre-start")
        self.monitor.start_process("pg-monitor", "pg-monitor")
        self.run(self.monitor, "pg-monitor", "post-start")

    def deploy_node(
        self, index: int, admin_password: str = ADMIN_PASSWORD
    ) -> subprocess.CompletedProcess[str]:
        tree = self.nodes[index]
        spec = {"address": NODE_HOSTS[index], "az": f"z{index + 2}", "index": index}
        properties = self.node_properties(index, admin_password)
        rendered = render_job("postgres", properties, spec, {"pg-monitor": self.monitor_link()})
        tree.install_job("postgres", rendered)
        return self.start_node(index)

    def start_node(self, index: int) -> subprocess.CompletedProcess[str]:
        """The agent's `start` of an installed node: pre-start, what the job's monit starts, post-start."""
        tree = self.nodes[index]
        self.run(tree, "postgres", "pre-start", timeout=300)
        # What monit starts (its `bpm start` checks), not every process bpm.yml declares.
        for name in tree.monit_started_processes("postgres"):
            # The agent stops every bpm process of the job after drain; one still running goes first.
            stop_process(tree, "postgres", name)
            tree.start_process("postgres", name)
        return self.run(tree, "postgres", "post-start", timeout=300)

    def node_name(self, index: int) -> str:
        return f"postgres_z{index + 2}_{index}"

    def states(self) -> dict[str, tuple[str, str]]:
        """The monitor's view: node name -> (reported, assigned), asked as a keeper would."""
        conninfo = dict(
            host=MONITOR_HOST,
            port=self.monitor_port,
            dbname="pg_auto_failover",
            user="autoctl_node",
            password=MONITOR_PASSWORD,
            connect_timeout=5,
        )
        with psycopg.connect(**conninfo) as conn:
            rows = conn.execute(
                "SELECT nodename, current_group_state::text, assigned_group_state::text"
                " FROM pgautofailover.current_state('default')"
            ).fetchall()
        return {name: (reported, assigned) for name, reported, assigned in rows}

    def wait_states(self, wanted: dict[str, str], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.states()
            if all(states.get(name) == (state, state) for name, state in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"states {wanted} not reached; last: {states}")
            time.sleep(0.5)

    def standby_index(self) -> int | None:
        """Which node is the settled standby, if one is."""
        states = self.states()
        for index in range(len(self.nodes)):
            if states.get(self.node_name(index)) == ("secondary", "secondary"):
                return index
        return None

    def primary_index(self) -> int | None:
        """Which node is the settled primary, if one is."""
        states = self.states()
        for index in range(len(self.nodes)):
            if states.get(self.node_name(index)) == ("primary", "primary"):
                return index
        return None

    def app_uri(self, dbname: str = "postgres") -> str:
        """What the broker's credentials carry under HA: every node, the primary chosen by libpq."""
        hosts = ",".join(f"{h}:{self.node_port}" for h in NODE_HOSTS[:2])
        return f"postgresql://{ADMIN}@{hosts}/{dbname}?target_session_attrs=read-write&connect_timeout=5"

    def connect_app(self, password: str = ADMIN_PASSWORD) -> psycopg.Connection:
        return psycopg.connect(self.app_uri(), password=password, autocommit=True)

    def node_conninfo(self, index: int, password: str = ADMIN_PASSWORD) -> str:
        """Straight to one node (no routing), for checking what it holds."""
        return psycopg.conninfo.make_conninfo(
            host=NODE_HOSTS[index],
            port=self.node_port,
            dbname="postgres",
            user=ADMIN,
            password=password,
            connect_timeout=5,
        )

    def assert_synchronous_standby_streams(self, primary: int, what: str, timeout_s: float = 30) -> None:
        """The primary names a synchronous standby, and one streams to it in the quorum (waits for that)."""
        with psycopg.connect(self.node_conninfo(primary), autocommit=True) as conn:
            names = conn.execute("SHOW synchronous_standby_names").fetchone()
            assert names is not None
            assert names[0].startswith("ANY 1 ("), names
            rows = wait_until(
                lambda: conn.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchall(),
                timeout_s=timeout_s,
                what=what,
            )
            assert [r[0] for r in rows] == ["quorum"], rows

    def destroy(self) -> None:
        for tree in self.nodes:
            # bpm's stop (SIGTERM): the tree's teardown signal (SIGQUIT) is one bash ignores here.
            with contextlib.suppress(KeyError, OSError):
                stop_process(tree, "postgres", "standby-watch", timeout_s=5)
        for tree in (*self.nodes, self.monitor):
            tree.destroy()


@contextlib.contextmanager
def deployed(packages: HaPackages) -> Iterator[Deployment]:
    """The whole HA deployment brought up (monitor, then node 0, then node 1) and torn down after."""
    built = Deployment(packages)
    try:
        built.deploy_monitor()
        built.deploy_node(0)
        built.deploy_node(1)
        yield built
    finally:
        built.destroy()
