"""A throwaway PostgreSQL cluster in a temporary directory, on a free port.

Used by ``make run`` (the embedded default) and by the tests, which run real
servers rather than mocks. PostgreSQL refuses to run as root, so when we are
root the cluster's files belong to, and its processes run as, an unprivileged
user (``postgres`` by default, which Debian's packages create).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

DEFAULT_MAJOR = "15"


class ClusterError(RuntimeError):
    pass


def find_pg_bin(major: str = DEFAULT_MAJOR) -> Path:
    """The directory of initdb/postgres: $PG_BIN, Debian's layout, or PATH."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "postgres").is_file():
            return cand
    raise ClusterError(
        f"PostgreSQL {major} server binaries not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + f"); install them with: apt-get install -y postgresql-{major}"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    """One PostgreSQL server: `init()`, `start()`, then connect with `conninfo()`."""

    base_dir: Path
    port: int = field(default_factory=free_port)
    superuser: str = "postgres"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    settings: dict[str, str] = field(default_factory=dict)
    run_as: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.bin = find_pg_bin()
        if self.run_as is None and os.geteuid() == 0:
            self.run_as = os.environ.get("PG_TEST_OS_USER", "postgres")

    @classmethod
    def create(cls, prefix: str = "pgsvc-", **kwargs: object) -> LocalCluster:
        base = Path(tempfile.mkdtemp(prefix=prefix))
        cluster = cls(base_dir=base, **kwargs)  # type: ignore[arg-type]
        cluster.init()
        return cluster

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def _user_kwargs(self) -> dict[str, object]:
        if not self.run_as:
            return {}
        pw = pwd.getpwnam(self.run_as)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.base_dir)
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            subprocess.run(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                env={**os.environ, "LC_ALL": "C.UTF-8"},
                **self._user_kwargs(),  # type: ignore[arg-type]
            )
        except subprocess.CalledProcessError as exc:
            raise ClusterError("initdb failed: " + exc.stderr.decode(errors="replace")[-2000:]) from None
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, timeout_s: float = 30) -> None:
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
        ]
        for key, value in self.settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._user_kwargs(),  # type: ignore[arg-type]
        )
        log.close()
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ClusterError(f"postgres exited at start; see {self.log_file}:\n{self.log_tail()}")
            try:
                with psycopg.connect(**self.conninfo(), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise ClusterError(f"postgres did not accept connections within {timeout_s}s: {last}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def conninfo(self, dbname: str = "postgres") -> dict[str, object]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.superuser,
            "password": self.password,
            "dbname": dbname,
        }

    def stop(self, mode: str = "fast", timeout_s: float = 30) -> None:
        """Stop the server: 'smart', 'fast' (SIGINT) or 'immediate'; 'kill' sends SIGKILL."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            self.process = None
            return
        sig = {
            "smart": signal.SIGTERM,
            "fast": signal.SIGINT,
            "immediate": signal.SIGQUIT,
            "kill": signal.SIGKILL,
        }[mode]
        if mode == "kill":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)
