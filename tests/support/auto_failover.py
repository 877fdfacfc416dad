"""A real pg_auto_failover formation on this machine: a monitor and N PostgreSQL nodes.

Every server is a real ``pg_autoctl run`` process tree (keeper plus
PostgreSQL) in a temporary directory, so the tests kill, freeze and restart
the very processes a deployment runs. Loopback addresses stand for machines
in different AZs: the monitor listens on 127.0.0.1 and the nodes on
127.0.0.2, 127.0.0.3, ... all on one shared port, exactly as every VM of a
deployment uses 5432, so a client's multi-host connection string has the
same shape here as in production.

Secrets stay off command lines and out of logs: the database superuser's
password goes to ``initdb`` through a file that is removed at once; the
passwords of pg_auto_failover's own roles (``autoctl_node`` on the monitor,
``pgautofailover_replicator`` on the nodes) are set as SCRAM verifiers
computed here and reach pg_autoctl, pg_basebackup, pg_rewind and the WAL
receiver only through each server's private ``.pgpass``. PostgreSQL
authenticates every TCP connection with scram-sha-256 and local sockets by
peer, so nothing relies on ``trust`` (pg_autoctl's initdb would set it).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from postgres_service_broker import ha_settings
from postgres_service_broker.local_cluster import find_pg_bin
from tests.support.process_tree import pid_alive, process_tree, signal_all

T = TypeVar("T")

MONITOR_HOST = "127.0.0.1"
# One loopback address per node: the node's "VM" in its own AZ.
NODE_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
MONITOR_DB = "pg_auto_failover"
MONITOR_USER = "autoctl_node"
REPLICATION_USER = "pgautofailover_replicator"
FORMATION = "default"

# Settings for throwaway test servers; durability settings stay at their
# defaults because the tests count acknowledged commits.
TEST_SERVER_SETTINGS = {
    "shared_buffers": "32MB",
    "max_connections": "100",
    "max_wal_size": "256MB",
    "wal_keep_size": "64MB",
    "log_min_messages": "warning",
}


class FormationError(RuntimeError):
    pass


def find_pg_autoctl() -> str | None:
    """The pg_autoctl binary (Debian's package puts it on PATH), or None when not installed."""
    found = shutil.which("pg_autoctl")
    if found:
        return found
    for cand in (find_pg_bin() / "pg_autoctl", Path("/usr/bin/pg_autoctl")):
        if cand.is_file():
            return str(cand)
    return None


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (psycopg.Error, FormationError, OSError, subprocess.TimeoutExpired) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise FormationError(f"timed out after {timeout_s:.0f}s waiting for {what}{detail}")
        time.sleep(interval_s)


def _port_free_on(hosts: tuple[str, ...], port: int) -> bool:
    for host in hosts:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def shared_free_port(hosts: tuple[str, ...]) -> int:
    """A TCP port that is free on every one of `hosts`."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if _port_free_on(hosts, port):
            return port
    raise FormationError("no TCP port is free on all of " + ", ".join(hosts))


@dataclass(frozen=True)
class NodeState:
    """One row of `pg_autoctl show state --json`."""

    node_id: int
    name: str
    host: str
    port: int
    reported: str
    goal: str
    health: int

    @property
    def settled(self) -> bool:
        return self.reported == self.goal


@dataclass
class Server:
    """One pg_autoctl-managed PostgreSQL: the monitor or a node, with its files and processes."""

    name: str
    host: str
    port: int
    base: Path
    os_user: str
    # Secrets stay out of reprs, which pytest prints in failure tracebacks.
    superuser_password: str = field(repr=False)
    pg_autoctl: str
    process: subprocess.Popen[bytes] | None = None
    frozen: list[int] = field(default_factory=list)

    @property
    def pgdata(self) -> Path:
        return self.base / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    @property
    def pgpass(self) -> Path:
        return self.base / "pgpass"

    @property
    def log_path(self) -> Path:
        return self.base / "pg_autoctl.log"

    @property
    def superuser(self) -> str:
        # Local connections authenticate by peer, so pg_autoctl (running as
        # this OS user) needs a database superuser of the same name.
        return self.os_user

    def env(self) -> dict[str, str]:
        """The environment of every pg_autoctl command for this server: all its state under `base`."""
        pg_bin = find_pg_bin()
        return {
            "PATH": f"{pg_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.base),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PGPASSFILE": str(self.pgpass),
            "XDG_CONFIG_HOME": str(self.base / "xdg" / "config"),
            "XDG_DATA_HOME": str(self.base / "xdg" / "data"),
            "XDG_RUNTIME_DIR": str(self.base / "xdg" / "run"),
        }

    def _user_kwargs(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam(self.os_user)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.os_user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def mkdirs(self) -> None:
        for path in (
            self.base,
            self.socket_dir,
            self.base / "xdg",
            *(self.base / "xdg" / d for d in ("config", "data", "run")),
        ):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
            self.chown(path)
        # The standby's postgresql.conf is a copy of the primary's; it includes
        # '../node.conf' (relative to PGDATA), so each node reads its own.
        node_conf = self.base / "node.conf"
        node_conf.write_text(f"unix_socket_directories = '{self.socket_dir}'\n")
        self.chown(node_conf)

    def write_pgpass(self, entries: list[tuple[str, str, str, str, str]]) -> None:
        lines = [":".join(_pgpass_escape(part) for part in entry) for entry in entries]
        self.pgpass.write_text("\n".join(lines) + "\n")
        self.pgpass.chmod(0o600)
        self.chown(self.pgpass)

    def run(
        self, args: list[str], timeout_s: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one pg_autoctl command for this server and wait for it."""
        proc = subprocess.run(
            [self.pg_autoctl, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self.env(),
            cwd=self.base,
            check=False,
            **self._user_kwargs(),
        )
        if check and proc.returncode != 0:
            raise FormationError(
                f"pg_autoctl {' '.join(args[:2])} for {self.name} failed ({proc.returncode}):\n"
                + (proc.stderr or proc.stdout)[-3000:]
            )
        return proc

    def initdb(self) -> None:
        """Our own initdb, so authentication is scram/peer from the first start (never trust)."""
        pwfile = self.base / "initdb-pw"
        pwfile.write_text(self.superuser_password + "\n")
        pwfile.chmod(0o600)
        self.chown(pwfile)
        try:
            subprocess.run(
                [
                    str(find_pg_bin() / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                env=self.env(),
                cwd=self.base,
                **self._user_kwargs(),
            )
        except subprocess.CalledProcessError as exc:
            raise FormationError(
                f"initdb for {self.name} failed: {exc.stderr.decode(errors='replace')[-2000:]}"
            ) from None
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# This server's own settings (socket directory), outside PGDATA so copies keep theirs.\n"
            )
            conf.write("include_if_exists = '../node.conf'\n")

    def write_auto_conf(self, settings: dict[str, str]) -> None:
        """Settings that must win over pg_auto_failover's own file.

        postgresql.auto.conf is read after postgresql.conf and everything it
        includes; the server is not running yet, so writing it is what
        ALTER SYSTEM would do. The standby copies it with the data directory.
        """
        path = self.pgdata / "postgresql.auto.conf"
        lines = [path.read_text().rstrip("\n")] if path.exists() else []
        for key, value in settings.items():
            lines.append(f"{key} = '{value}'")
        path.write_text("\n".join(lines) + "\n")
        self.chown(path)

    def start(self, args: list[str] | None = None) -> None:
        """Start the pg_autoctl service (keeper or monitor, plus its PostgreSQL) as a process tree."""
        if self.process is not None and self.process.poll() is None:
            raise FormationError(f"{self.name} is already running")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [self.pg_autoctl, *(args or ["run", "--pgdata", str(self.pgdata)])],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.base,
            start_new_session=True,
            **self._user_kwargs(),
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        """The service and every process below it (keeper, PostgreSQL, its backends)."""
        if self.process is None:
            return []
        pids = process_tree(self.process.pid)
        # A postmaster that outlived its supervisor is still this server.
        postmaster = self.postmaster_pid()
        if postmaster and postmaster not in pids and pid_alive(postmaster):
            pids += process_tree(postmaster)
        return pids

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> float:
        """SIGKILL the keeper and PostgreSQL together, as a VM losing power; returns the time of the kill."""
        self.thaw()
        pids = self.pids()
        at = time.monotonic()
        signal_all(pids, signal.SIGKILL)
        self._reap(pids)
        return at

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the service as its supervisor would (SIGTERM: pg_autoctl stops PostgreSQL first)."""
        self.thaw()
        if not self.running:
            self._reap(self.pids())
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout_s)
        self._reap(self.pids())

    def freeze(self) -> float:
        """SIGSTOP the keeper and every PostgreSQL process: alive, holding its sockets, silent.

        Returns the moment the whole tree was stopped.
        """
        for _ in range(2):  # a second pass catches a child forked during the first
            pids = [p for p in self.pids() if p not in self.frozen]
            signal_all(pids, signal.SIGSTOP)
            self.frozen += pids
        return time.monotonic()

    def thaw(self) -> float:
        at = time.monotonic()
        signal_all(list(reversed(self.frozen)), signal.SIGCONT)
        self.frozen = []
        return at

    def thaw_postgres_only(self) -> float:
        """Resume PostgreSQL but not the keeper: a primary awake before its keeper can demote it."""
        postmaster = self.postmaster_pid()
        tree = set(process_tree(postmaster)) if postmaster else set()
        resumed = [p for p in self.frozen if p in tree]
        signal_all(list(reversed(resumed)), signal.SIGCONT)
        self.frozen = [p for p in self.frozen if p not in tree]
        return time.monotonic()

    def _reap(self, pids: list[int], timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [p for p in pids if pid_alive(p)]
            if self.process is not None:
                self.process.poll()
            if not alive:
                break
            if time.monotonic() > deadline:
                signal_all(alive, signal.SIGKILL)
                deadline = time.monotonic() + timeout_s
            time.sleep(0.05)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        # A killed postmaster leaves postmaster.pid behind; pg_autoctl copes
        # with that on restart, as after a real power loss.

    def conninfo(self, dbname: str = "postgres", **extra: Any) -> dict[str, Any]:
        """libpq keywords for a superuser session over TCP (password authentication)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.superuser,
            "password": self.superuser_password,
            "dbname": dbname,
            "connect_timeout": 3,
            **extra,
        }

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(**self.conninfo(dbname), autocommit=True)

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def set_password_quietly(conn: psycopg.Connection, role: str, password: str) -> None:
    """Set a role's password as a SCRAM verifier, with statement logging off for the session."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    conn.execute("SET log_statement = 'none'")
    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))


@dataclass
class Formation:
    """A monitor and nodes; `create()` builds and starts it, `destroy()` ends every process."""

    base: Path
    monitor: Server
    nodes: list[Server]
    node_port: int
    monitor_password: str = field(repr=False)
    replication_password: str = field(repr=False)

    # -- building -----------------------------------------------------------------

    @classmethod
    def create(cls, node_count: int = 2, base: Path | None = None, timeout_s: float = 120) -> Formation:
        pg_autoctl = find_pg_autoctl()
        if pg_autoctl is None:
            raise FormationError("pg_autoctl not found; install postgresql-15-auto-failover")
        if not 2 <= node_count <= len(NODE_HOSTS):
            raise ValueError(f"node_count must be 2..{len(NODE_HOSTS)}")
        os_user = (
            os.environ.get("PG_TEST_OS_USER", "postgres")
            if os.geteuid() == 0
            else pwd.getpwuid(os.geteuid()).pw_name
        )
        base = base or Path(tempfile.mkdtemp(prefix="pgsvc-ha-"))
        base.chmod(0o755)
        superuser_password = secrets.token_urlsafe(24)
        hosts = NODE_HOSTS[:node_count]
        node_port = shared_free_port(hosts)
        monitor_port = shared_free_port((MONITOR_HOST,))

        def server(name: str, host: str, port: int) -> Server:
            return Server(
                name=name,
                host=host,
                port=port,
                base=base / name,
                os_user=os_user,
                superuser_password=superuser_password,
                pg_autoctl=pg_autoctl,
            )

        formation = cls(
            base=base,
            monitor=server("monitor", MONITOR_HOST, monitor_port),
            nodes=[server(f"node{i + 1}", host, node_port) for i, host in enumerate(hosts)],
            node_port=node_port,
            monitor_password=secrets.token_urlsafe(24),
            replication_password=secrets.token_urlsafe(24),
        )
        _LIVE.append(formation)
        try:
            formation._start_monitor(timeout_s)
            for index, node in enumerate(formation.nodes):
                formation._create_node(node, first=index == 0, timeout_s=timeout_s)
            formation.wait_healthy(timeout_s)
        except BaseException:
            formation.destroy()
            raise
        return formation

    @property
    def monitor_uri(self) -> str:
        # No password here: it is in each server's .pgpass.
        return (
            f"postgres://{MONITOR_USER}@{self.monitor.host}:{self.monitor.port}/{MONITOR_DB}?sslmode=disable"
        )

    def _common_create_args(self, server: Server) -> list[str]:
        return [
            "--pgdata",
            str(server.pgdata),
            "--pgctl",
            str(find_pg_bin() / "pg_ctl"),
            "--pgport",
            str(server.port),
            "--hostname",
            server.host,
            "--listen",
            server.host,
            # Our initdb wrote scram/peer rules that already cover the
            # monitor's health checks and replication; pg_autoctl would add
            # per-host lines, which loopback source addresses never match.
            "--skip-pg-hba",
            "--no-ssl",
            "--ssl-mode",
            "disable",
        ]

    def _start_monitor(self, timeout_s: float) -> None:
        mon = self.monitor
        mon.mkdirs()
        mon.write_pgpass([(mon.host, str(mon.port), MONITOR_DB, MONITOR_USER, self.monitor_password)])
        mon.initdb()
        mon.write_auto_conf({**TEST_SERVER_SETTINGS, **ha_settings.monitor_settings()})
        mon.run(["create", "monitor", *self._common_create_args(mon)], timeout_s=timeout_s)
        mon.start()
        with wait_until(
            lambda: mon.connect(MONITOR_DB), timeout_s, "the monitor to accept connections"
        ) as conn:
            set_password_quietly(conn, MONITOR_USER, self.monitor_password)

    def _node_pgpass(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (self.monitor.host, str(self.monitor.port), MONITOR_DB, MONITOR_USER, self.monitor_password),
            # Replication and pg_rewind reach whichever node is primary.
            ("*", "*", "*", REPLICATION_USER, self.replication_password),
        ]

    def _create_node(self, node: Server, first: bool, timeout_s: float) -> None:
        node.mkdirs()
        node.write_pgpass(self._node_pgpass())
        if first:
            # The first node starts from our own initdb (pg_autoctl registers an
            # existing data directory as the primary); the others are cloned
            # from it by pg_basebackup, with these files.
            node.initdb()
            node.write_auto_conf({**TEST_SERVER_SETTINGS, **ha_settings.node_postgres_settings()})
        node.start(
            [
                "create",
                "postgres",
                *self._common_create_args(node),
                "--pghost",
                str(node.socket_dir),
                "--username",
                node.superuser,
                "--dbname",
                "postgres",
                "--name",
                node.name,
                "--monitor",
                self.monitor_uri,
                "--candidate-priority",
                str(ha_settings.CANDIDATE_PRIORITY),
                "--replication-quorum",
                "true" if ha_settings.REPLICATION_QUORUM else "false",
                "--run",
            ]
        )
        expected = "single" if first else "secondary"
        self.wait_for(
            lambda states: any(s.name == node.name and s.reported == expected for s in states),
            timeout_s,
            f"{node.name} to reach {expected}",
        )
        self._apply_keeper_settings(node)
        if first:
            with node.connect() as conn:
                set_password_quietly(conn, REPLICATION_USER, self.replication_password)
                # pg_basebackup starts with a spread checkpoint, which crawls
                # through the freshly initialised cluster's dirty pages for
                # seconds; an immediate one now leaves it nothing to do.
                conn.execute("CHECKPOINT")

    @staticmethod
    def _apply_keeper_settings(node: Server, timeout_s: float = 30) -> None:
        """Set the keeper's timeouts and wait until they stick.

        A keeper that has just joined still rewrites its configuration file
        from memory on its first state changes, which can undo a `config set`
        made in that window; so set, read back, and set again until it holds.
        """
        deadline = time.monotonic() + timeout_s
        wanted = ha_settings.keeper_settings()
        while True:
            for key, value in wanted.items():
                node.run(["config", "set", "--pgdata", str(node.pgdata), key, value])
            time.sleep(1)
            got = {
                key: node.run(["config", "get", "--pgdata", str(node.pgdata), key]).stdout.strip()
                for key in wanted
            }
            if got == wanted:
                return
            if time.monotonic() > deadline:
                raise FormationError(f"{node.name}: keeper settings did not stick: {got} != {wanted}")

    # -- observing ------------------------------------------------------------------

    def states(self) -> list[NodeState]:
        """The monitor's view, from `pg_autoctl show state --json`."""
        proc = self.monitor.run(
            ["show", "state", "--json", "--monitor", self.monitor_uri, "--formation", FORMATION],
            timeout_s=20,
            check=False,
        )
        if proc.returncode != 0:
            raise FormationError(f"pg_autoctl show state failed: {proc.stderr.strip()[-500:]}")
        doc = json.loads(proc.stdout or "[]")
        return [
            NodeState(
                node_id=int(row["node_id"]),
                name=row["nodename"],
                host=row["nodehost"],
                port=int(row["nodeport"]),
                reported=row["current_group_state"],
                goal=row["assigned_group_state"],
                health=int(row["health"]),
            )
            for row in doc
        ]

    def wait_for(
        self, predicate: Callable[[list[NodeState]], bool], timeout_s: float, what: str
    ) -> list[NodeState]:
        last: list[NodeState] = []

        def check() -> list[NodeState] | None:
            nonlocal last
            last = self.states()
            return last if predicate(last) else None

        try:
            return wait_until(check, timeout_s, what, interval_s=0.25)
        except FormationError as exc:
            raise FormationError(f"{exc}; last states: {_describe(last)}\n{self.events()}") from None

    def wait_states(self, expected: dict[str, str], timeout_s: float = 90) -> list[NodeState]:
        """Wait until each named node has reported, and been assigned, the given state."""

        def reached(states: list[NodeState]) -> bool:
            by_name = {s.name: s for s in states}
            return all(
                name in by_name and by_name[name].reported == state and by_name[name].goal == state
                for name, state in expected.items()
            )

        return self.wait_for(reached, timeout_s, f"states {expected}")

    def wait_healthy(self, timeout_s: float = 120) -> tuple[Server, list[Server]]:
        """Wait for one settled primary and every other node a settled secondary; returns them."""

        def healthy(states: list[NodeState]) -> bool:
            if len(states) != len(self.nodes) or not all(s.settled for s in states):
                return False
            roles = sorted(s.reported for s in states)
            return roles == ["primary"] + ["secondary"] * (len(self.nodes) - 1)

        states = self.wait_for(healthy, timeout_s, "one primary and the rest secondary")
        primary_name = next(s.name for s in states if s.reported == "primary")
        return self.node(primary_name), [n for n in self.nodes if n.name != primary_name]

    def node(self, name: str) -> Server:
        return next(n for n in self.nodes if n.name == name)

    def primary(self) -> Server:
        """The node the monitor has settled as primary (fails while a failover is under way)."""
        states = self.states()
        for s in states:
            if s.reported == s.goal and s.reported in ("primary", "wait_primary", "single"):
                return self.node(s.name)
        raise FormationError(f"no settled primary: {_describe(states)}")

    # -- acting -----------------------------------------------------------------------

    def switchover(self, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
        """`pg_autoctl perform switchover`: it returns once the monitor reports the new primary."""
        return self.monitor.run(
            ["perform", "switchover", "--monitor", self.monitor_uri, "--formation", FORMATION],
            timeout_s=timeout_s,
        )

    def restart(self, server: Server) -> None:
        """Start a stopped or killed server again with `pg_autoctl run`."""
        server.start()

    def heal(self, timeout_s: float = 120) -> tuple[Server, list[Server]]:
        """Bring every stopped or frozen server back and wait for primary + secondaries."""
        for server in (self.monitor, *self.nodes):
            server.thaw()
            if not server.running:
                server.start()
        return self.wait_healthy(timeout_s)

    def destroy(self) -> None:
        """Kill every process of the formation (frozen ones too) and remove its files."""
        for server in (*self.nodes, self.monitor):
            with contextlib.suppress(Exception):
                server.kill()
        shutil.rmtree(self.base, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _LIVE.remove(self)

    def events(self, count: int = 30) -> str:
        """The monitor's latest events (`pg_autoctl show events`), oldest first."""
        return self.monitor.run(
            ["show", "events", "--monitor", self.monitor_uri, "--count", str(count)],
            timeout_s=20,
            check=False,
        ).stdout

    def describe(self) -> str:
        """The monitor's view, its recent events and each server's log tail, for a failing test's message."""
        parts = []
        with contextlib.suppress(Exception):
            parts.append("states: " + _describe(self.states()))
            parts.append(self.events())
        for server in (self.monitor, *self.nodes):
            parts.append(f"--- {server.name} ({server.log_path}):\n{server.log_tail(15)}")
        return "\n".join(parts)

    @contextlib.contextmanager
    def frozen(self, server: Server) -> Iterator[float]:
        """Freeze `server` for the body of the `with`; thaw it afterwards even on failure."""
        at = server.freeze()
        try:
            yield at
        finally:
            server.thaw()


def _describe(states: list[NodeState]) -> str:
    return ", ".join(f"{s.name}={s.reported}/{s.goal}(health {s.health})" for s in states) or "(none)"


# Formations still alive at interpreter exit (an interrupted run) are killed
# too, so no pg_autoctl or postgres outlives the tests.
_LIVE: list[Formation] = []


@atexit.register
def _destroy_leftovers() -> None:
    for formation in list(_LIVE):
        formation.destroy()
