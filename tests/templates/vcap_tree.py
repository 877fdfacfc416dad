"""A /var/vcap-like tree in a temporary directory, where a job's rendered scripts really run.

Rendered files have their /var/vcap prefix replaced by the tree's root, packages
are symlinks to locally installed software, and processes are started the way
bpm.yml describes them (executable, args, env) as the unprivileged user bpm
would use; which processes run is what the job's monit file starts
(`monit_started_processes`). Real bpm is not available here; `install_bpm_pid_command` puts a
stand-in for its `bpm pid JOB` command in place, answering from the pidfiles
`start_process` writes where bpm writes them.

With `mount_namespace=True` the files keep their /var/vcap paths and every
script and process runs where the tree is mounted at /var/vcap (see
tests/support/vcap_namespace.py): compiled packages carry absolute /var/vcap
paths, so a deployment of the release's own packages needs the real layout.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import vcap_namespace
from tests.templates.monit import started_bpm_processes
from tests.templates.renderer import write_job

VCAP = "/var/vcap"


def unprivileged_user() -> str:
    """Who runs the jobs' processes here: `postgres` when we are root (PostgreSQL refuses root), else us."""
    if os.geteuid() == 0:
        return os.environ.get("PG_TEST_OS_USER", "postgres")
    return pwd.getpwuid(os.geteuid()).pw_name


@dataclass
class VcapTree:
    root: Path
    user: str = field(default_factory=unprivileged_user)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    mount_namespace: bool = False
    # Packages bind-mounted at /var/vcap/packages/<name> in mount-namespace mode.
    package_binds: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(cls, mount_namespace: bool = False) -> VcapTree:
        # Short and world-traversable: the server's socket path must stay under
        # 108 bytes, and the unprivileged user must reach the files.
        root = Path(tempfile.mkdtemp(prefix="vcap-"))
        root.chmod(0o755)
        return cls(root, mount_namespace=mount_namespace)

    def path(self, vcap_path: str) -> Path:
        assert vcap_path.startswith(VCAP + "/"), vcap_path
        return self.root / vcap_path.removeprefix(VCAP + "/")

    def install_job(self, job: str, rendered: dict[str, str]) -> Path:
        job_dir = self.path(f"{VCAP}/jobs/{job}")
        if job_dir.exists():
            shutil.rmtree(job_dir)
        write_job(rendered, job_dir, None if self.mount_namespace else (VCAP, str(self.root)))
        return job_dir

    def seen_path(self, vcap_path: str) -> str:
        """A /var/vcap path as the tree's scripts and processes see it."""
        return vcap_path if self.mount_namespace else str(self.path(vcap_path))

    def command(self, argv: list[str], user: str | None = None) -> list[str]:
        """The argv that runs argv as the tree's scripts run: in its mount namespace, if it has one."""
        return self._argv(argv, user)

    def _argv(self, argv: list[str], user: str | None = None) -> list[str]:
        if not self.mount_namespace:
            return argv
        binds = [(target, f"packages/{name}") for name, target in sorted(self.package_binds.items())]
        return vcap_namespace.command(self.root, argv, binds=binds, user=user)

    def link_package(self, name: str, target: Path) -> None:
        link = self.path(f"{VCAP}/packages/{name}")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        if self.mount_namespace:
            # A bind mount, not a symlink: the unprivileged user must reach the package even
            # when the directory it was compiled into sits under one only root may enter
            # (a checkout in root's home, a 0700 temporary directory).
            link.mkdir(exist_ok=True)
            self.package_binds[name] = target
        else:
            link.symlink_to(target)

    def script_env(self) -> dict[str, str]:
        """The environment BOSH gives lifecycle scripts, plus the OS user the job's processes run as."""
        return {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8", "PG_OS_USER": self.user}

    def run_script(self, job: str, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        path = self.seen_path(f"{VCAP}/jobs/{job}/bin/{script}")
        return subprocess.run(
            self._argv([path]),
            capture_output=True,
            text=True,
            env=self.script_env(),
            timeout=timeout,
            check=False,
        )

    def bpm_process(self, job: str, name: str) -> dict[str, Any]:
        doc = yaml.safe_load(self.path(f"{VCAP}/jobs/{job}/config/bpm.yml").read_text())
        for process in doc["processes"]:
            if process["name"] == name:
                return process
        raise KeyError(f"{job}'s bpm.yml has no process {name}")

    def monit_started_processes(self, job: str) -> list[str]:
        """The bpm processes of `job` its installed monit file starts, in order: what a VM would run."""
        text = self.path(f"{VCAP}/jobs/{job}/monit").read_text()
        if not self.mount_namespace:
            # install_job put the tree's root where the file said /var/vcap; read it as monit would.
            text = text.replace(str(self.root), VCAP)
        return started_bpm_processes(text, job)

    def _pidfile(self, job: str, name: str) -> Path:
        return self.path(f"{VCAP}/sys/run/bpm/{job}/{name}.pid")

    def start_process(self, job: str, name: str) -> subprocess.Popen[bytes]:
        """Start a bpm.yml process as bpm would: its executable, args and env, as the unprivileged user."""
        process = self.bpm_process(job, name)
        log_dir = self.path(f"{VCAP}/sys/log/{job}")
        log_dir.mkdir(parents=True, exist_ok=True)
        pw = pwd.getpwnam(self.user)
        user_kwargs: dict[str, Any] = {}
        drop_to: str | None = None
        if os.geteuid() == 0:
            if self.mount_namespace:
                # Mounting needs root, so the namespace drops to the user itself, right before exec.
                drop_to = self.user
            else:
                user_kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            **{k: str(v) for k, v in process.get("env", {}).items()},
        }
        with (
            (log_dir / f"{name}.stdout.log").open("ab") as out,
            (log_dir / f"{name}.stderr.log").open("ab") as err,
        ):
            proc = subprocess.Popen(
                self._argv([process["executable"], *[str(a) for a in process.get("args", [])]], drop_to),
                stdout=out,
                stderr=err,
                env=env,
                cwd=self.root,
                **user_kwargs,
            )
        self.processes[f"{job}/{name}"] = proc
        # Reap it the moment it exits, as bpm does: an unreaped child still
        # answers `kill -0`, and drain waits on exactly that.
        threading.Thread(target=proc.wait, daemon=True).start()
        pidfile = self._pidfile(job, name)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{proc.pid}\n")
        return proc

    def install_bpm_pid_command(self) -> None:
        """A stand-in for `bpm pid JOB [-p PROCESS]`, answering from the pidfiles bpm would keep."""
        script = self.path(f"{VCAP}/jobs/bpm/bin/bpm")
        script.parent.mkdir(parents=True, exist_ok=True)
        run_bpm = self.path(f"{VCAP}/sys/run/bpm")
        script.write_text(
            "#!/bin/bash\n"
            "# Test stand-in for bpm's `pid` command only.\n"
            '[[ $1 == pid ]] || { echo "stand-in bpm: only pid is supported" >&2; exit 2; }\n'
            "job=$2; process=${4:-$2}\n"
            f'pidfile="{run_bpm}/$job/$process.pid"\n'
            'if [[ -s $pidfile ]] && kill -0 "$(<"$pidfile")" 2>/dev/null; then cat "$pidfile"; exit 0; fi\n'
            'echo "process is not running" >&2\n'
            "exit 1\n"
        )
        script.chmod(0o755)

    def log(self, job: str, name: str) -> str:
        path = self.path(f"{VCAP}/sys/log/{job}/{name}.stderr.log")
        return path.read_text(errors="replace") if path.exists() else ""

    def destroy(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
