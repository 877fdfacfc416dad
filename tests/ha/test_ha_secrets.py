"""No password of the formation appears in a process list, a log, or a file other than its .pgpass.

The formation has by now been through the other HA tests' failovers and
rejoins (pg_basebackup, pg_rewind, restarts), so their logs are included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ha.conftest import HaApp
from tests.support.auto_failover import Formation, Server

# A real formation: failovers, restarts and rejoins take tens of seconds.
pytestmark = pytest.mark.slow


def _secrets(formation: Formation, ha_app: HaApp) -> dict[str, bytes]:
    return {
        "superuser": formation.nodes[0].superuser_password.encode(),
        "autoctl_node": formation.monitor_password.encode(),
        "replicator": formation.replication_password.encode(),
        "app": ha_app.credentials["password"].encode(),
    }


def test_no_password_in_any_process_command_line(
    formation: Formation, healthy: tuple[Server, Server], ha_app: HaApp
) -> None:
    secrets = _secrets(formation, ha_app)
    pids = [pid for server in (formation.monitor, *formation.nodes) for pid in server.pids()]
    assert len(pids) > 10  # keepers, monitor, postmasters and their workers
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # ended meanwhile
        for name, secret in secrets.items():
            assert secret not in cmdline, f"the {name} password is on the command line of pid {pid}"
            assert secret not in environ, f"the {name} password is in the environment of pid {pid}"


def test_no_password_in_any_file_but_the_pgpass_files(
    formation: Formation, healthy: tuple[Server, Server], ha_app: HaApp
) -> None:
    secrets = _secrets(formation, ha_app)
    pgpass = {server.pgpass for server in (formation.monitor, *formation.nodes)}
    scanned = 0
    for path in formation.base.rglob("*"):
        if path in pgpass or not path.is_file() or path.is_symlink():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue  # a file PostgreSQL removed meanwhile
        scanned += 1
        for name, secret in secrets.items():
            assert secret not in data, f"the {name} password is in {path}"
    assert scanned > 100  # configuration, state, logs, and the data directories themselves
    # And the .pgpass files are private to the server's OS user.
    for path in pgpass:
        assert path.stat().st_mode & 0o077 == 0, path
