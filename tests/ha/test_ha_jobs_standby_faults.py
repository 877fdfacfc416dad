"""The postgres job's standby-watch: a stuck standby does not take the primary's commits down.

The deployment is the rendered pg-monitor job and two postgres jobs in HA
mode (tests/ha/ha_jobs_tree.py), each node running both bpm processes of its
job: the keeper and `standby-watch`. An app commits numbered rows through the
broker's multi-host credentials while the standby's startup process and WAL
receiver are stopped with SIGSTOP: its keeper and postmaster keep running, so
pg_auto_failover keeps it "secondary" and in the synchronous set, and every
commit on the primary waits (tests/ha/test_standby_faults.py measures that on
a bare formation). The primary's standby-watch must notice within
`postgres.ha.standby_stall_seconds`, name the standby and the condition in
the job's log, and put the standby in maintenance so the primary commits
alone. After SIGCONT the standby catches up, the watch ends the maintenance
it started, and the pair is primary + synchronous secondary again, with no
acknowledged commit lost.

The scenario runs once per module (it is the slow part); the tests read its record.
"""

from __future__ import annotations

import contextlib
import itertools
import pwd
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.ha.ha_jobs_tree import (
    ADMIN_PASSWORD,
    Deployment,
    kill_process_tree,
)
from tests.support import small_filesystem
from tests.support.auto_failover import NODE_HOSTS, wait_until
from tests.support.ha_writes import WRITES_TABLE, ContinuousWriter, acked_writes_lost, committed_seqs
from tests.support.process_tree import process_tree, signal_all
from tests.templates.renderer import job_spec

# A real deployment: the stall, maintenance and catch-up take tens of seconds.
pytestmark = pytest.mark.slow

# The job's default stall limit, which the deployment keeps.
STALL_SECONDS = job_spec("postgres")["properties"]["postgres.ha.standby_stall_seconds"]["default"]
# The limit, plus the watch's 2 s check period, the primary's wal_sender_timeout
# (1 s) and the monitor taking the standby out (measured about 2 s), with room
# for a busy shared machine.
STALL_BOUND_S = 30.0
WATCH_LOG = "/var/vcap/sys/log/postgres/standby-watch.stdout.log"
STARTED_FILE = "/var/vcap/store/postgres/standby-watch.maintenance"
# A standby's recovery processes, with or without a cluster_name in their titles.
RECOVERY_TITLE = re.compile(rb"postgres: (?:[^:\x00]+: )?(startup|walreceiver)\b")


def recovery_processes(deployment: Deployment, index: int) -> list[int]:
    """The node's startup process and WAL receiver, found under its keeper's bpm process."""
    keeper = deployment.nodes[index].processes["postgres/postgres"]
    found = []
    for pid in process_tree(keeper.pid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if RECOVERY_TITLE.match(title):
            found.append(pid)
    return found


def longest_gap(ack_times: list[float], start: float, end: float) -> float:
    """The longest interval inside [start, end] in which no commit was acknowledged."""
    inside = sorted(t for t in ack_times if start < t < end)
    edges = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(edges))


@dataclass(frozen=True)
class StuckStandby:
    primary: int
    standby: int
    writer: ContinuousWriter
    stall_s: float
    states_while_stuck: dict[str, tuple[str, str]]
    log_while_stuck: str
    recovered_s: float
    log_after: str
    started_file_after: bool


@pytest.fixture(scope="module")
def stuck(deployment: Deployment) -> StuckStandby:
    """SIGSTOP the standby's recovery under steady commits, SIGCONT once the watch acted, then recover."""
    primary, standby = 0, 1
    names = {i: deployment.node_name(i) for i in (primary, standby)}
    deployment.wait_states({names[primary]: "primary", names[standby]: "secondary"})
    with deployment.connect_app() as conn:
        conn.execute(
            f"CREATE TABLE {WRITES_TABLE} (seq bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"
        )
    wait_until(
        lambda: len(recovery_processes(deployment, standby)) == 2,
        timeout_s=30,
        what=f"{names[standby]}'s startup process and WAL receiver",
    )
    writer = ContinuousWriter.for_uri(make_conninfo(deployment.app_uri(), password=ADMIN_PASSWORD)).start()
    stopped: list[int] = []
    watch_log = deployment.nodes[primary].path(WATCH_LOG)
    try:
        writer.wait_for_acks(20, timeout_s=60)
        stopped = recovery_processes(deployment, standby)
        assert len(stopped) == 2, stopped
        fault_at = time.monotonic()
        signal_all(stopped, signal.SIGSTOP)
        # The watch acts through the monitor: the standby goes to maintenance.
        wait_until(
            lambda: deployment.states().get(names[standby], ("", ""))[0] == "maintenance",
            timeout_s=90,
            what=f"{names[standby]} to be put in maintenance",
        )
        states = deployment.states()
        writer.wait_for_ack_after(time.monotonic(), timeout_s=30)
        writer.wait_for_acks(20, timeout_s=30)
        stall = longest_gap([a.acked for a in writer.acks], fault_at, time.monotonic())
        log_while_stuck = watch_log.read_text() if watch_log.exists() else ""

        lifted_at = time.monotonic()
        signal_all(stopped, signal.SIGCONT)
        stopped = []
        deployment.wait_states({names[primary]: "primary", names[standby]: "secondary"}, timeout_s=180)
        recovered = time.monotonic() - lifted_at
        writer.wait_for_acks(20, timeout_s=60)
    finally:
        signal_all(stopped, signal.SIGCONT)
        writer.stop()
    return StuckStandby(
        primary=primary,
        standby=standby,
        writer=writer,
        stall_s=stall,
        states_while_stuck=states,
        log_while_stuck=log_while_stuck,
        recovered_s=recovered,
        log_after=watch_log.read_text(),
        started_file_after=deployment.nodes[primary].path(STARTED_FILE).exists(),
    )


def test_stuck_standby_is_put_in_maintenance_and_commits_resume(
    stuck: StuckStandby, deployment: Deployment, record_figure: Any
) -> None:
    standby_name = deployment.node_name(stuck.standby)
    assert stuck.states_while_stuck[deployment.node_name(stuck.primary)][0] in {"primary", "wait_primary"}
    print(
        f"\nHA jobs standby-watch: commits stalled {stuck.stall_s:.1f} s on a stuck standby"
        f" (limit {STALL_SECONDS} s)",
        flush=True,
    )
    record_figure("jobs_stuck_standby_write_stall_s", stuck.stall_s, stall_limit_s=STALL_SECONDS)
    # Commits really waited for the standby until the watch acted, and not much longer.
    assert stuck.stall_s >= STALL_SECONDS * 0.8, f"commits stalled only {stuck.stall_s:.1f} s"
    assert stuck.stall_s < STALL_BOUND_S, f"commits stalled {stuck.stall_s:.1f} s"
    # Only the primary switched the standby out: every commit went to it.
    assert {a.server for a in stuck.writer.acks} == {NODE_HOSTS[stuck.primary]}
    # The job's log names the standby and what is wrong with it.
    reports = [line for line in stuck.log_while_stuck.splitlines() if "received no WAL" in line]
    assert reports, stuck.log_while_stuck
    assert standby_name in reports[0], reports
    print(f"standby-watch log: {reports[0]}", flush=True)
    assert "maintenance" in reports[0], reports


def test_standby_catches_up_and_the_watch_ends_its_maintenance_without_loss(
    stuck: StuckStandby, deployment: Deployment, record_figure: Any
) -> None:
    standby_name = deployment.node_name(stuck.standby)
    record_figure("jobs_stuck_standby_back_to_secondary_s", stuck.recovered_s)
    ended = [line for line in stuck.log_after.splitlines() if "maintenance ended" in line]
    assert ended, stuck.log_after
    assert standby_name in ended[0], ended
    print(f"standby-watch log: {ended[0]}", flush=True)
    assert not stuck.started_file_after, "the watch still lists a maintenance it started"

    acks = stuck.writer.acks
    lost = acked_writes_lost([a.seq for a in acks], committed_seqs(deployment.node_conninfo(stuck.primary)))
    assert lost == 0, f"{lost} acknowledged commits are missing on the primary"
    acked = {a.seq for a in acks}
    wait_until(
        lambda: acked <= committed_seqs(deployment.node_conninfo(stuck.standby)),
        timeout_s=60,
        what=f"{standby_name} to hold every acknowledged commit",
    )
    # It is a synchronous standby again: commits on the primary wait for it.
    deployment.assert_synchronous_standby_streams(stuck.primary, "the standby to stream again")


# -- the standby's disk is full --------------------------------------------------------

# Room on the standby's WAL filesystem beyond what pg_wal holds when the test starts.
WAL_HEADROOM_BYTES = 32 * 1024 * 1024


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass(frozen=True)
class FullDisk:
    primary: int
    standby: int
    writer: ContinuousWriter
    stall_s: float
    new_log: str
    recovered_s: float


@pytest.fixture(scope="module")
def full_disk(deployment: Deployment) -> Iterator[FullDisk]:
    """The standby's pg_wal on a small tmpfs, filled under steady commits, freed once the watch acted.

    The standby is stopped (its drain, then its bpm processes) to move pg_wal
    and started again as the agent starts a job; it stays on the tmpfs until the module's deployment is gone.
    """
    if not small_filesystem.can_mount():
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN and mount(8)")
    primary = deployment.primary_index()
    standby = deployment.standby_index()
    assert primary is not None, deployment.states()
    assert standby is not None, deployment.states()
    names = {i: deployment.node_name(i) for i in (primary, standby)}
    tree = deployment.nodes[standby]
    owner = pwd.getpwnam(tree.user)
    wal = tree.path("/var/vcap/store/postgres/data/pg_wal")
    size = _dir_bytes(wal) + WAL_HEADROOM_BYTES
    with small_filesystem.small_tmpfs(size, owner.pw_uid, owner.pw_gid) as mount_point:
        try:
            deployment.run(tree, "postgres", "drain", timeout=300)
            small_filesystem.move_directory_onto(wal, mount_point, owner.pw_uid, owner.pw_gid)
            deployment.start_node(standby)
            deployment.wait_states({names[primary]: "primary", names[standby]: "secondary"}, timeout_s=120)
            watch_log = deployment.nodes[primary].path(WATCH_LOG)
            log_start = watch_log.stat().st_size if watch_log.exists() else 0
            writer = ContinuousWriter.for_uri(
                make_conninfo(deployment.app_uri(), password=ADMIN_PASSWORD)
            ).start()
            filler: Path | None = None
            try:
                writer.wait_for_acks(20, timeout_s=60)
                fault_at = time.monotonic()
                filler = small_filesystem.fill(mount_point)
                # The standby must now start a new WAL segment, which needs space it has not got.
                with psycopg.connect(deployment.node_conninfo(primary), autocommit=True) as conn:
                    conn.execute("SELECT pg_switch_wal()")
                wait_until(
                    lambda: deployment.states().get(names[standby], ("", ""))[0] == "maintenance",
                    timeout_s=90,
                    what=f"{names[standby]} to be put in maintenance",
                )
                writer.wait_for_ack_after(time.monotonic(), timeout_s=30)
                writer.wait_for_acks(20, timeout_s=30)
                stall = longest_gap([a.acked for a in writer.acks], fault_at, time.monotonic())
                lifted_at = time.monotonic()
                filler.unlink()
                filler = None
                deployment.wait_states(
                    {names[primary]: "primary", names[standby]: "secondary"}, timeout_s=180
                )
                recovered = time.monotonic() - lifted_at
                writer.wait_for_acks(20, timeout_s=60)
            finally:
                if filler is not None:
                    filler.unlink(missing_ok=True)
                writer.stop()
            with watch_log.open("rb") as log:
                log.seek(log_start)
                new_log = log.read().decode(errors="replace")
            yield FullDisk(primary, standby, writer, stall, new_log, recovered)
        finally:
            # The standby's server holds files on the tmpfs: it goes before the tmpfs does.
            keeper = tree.processes.get("postgres/postgres")
            if keeper is not None and keeper.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    kill_process_tree(keeper.pid)


def test_full_disk_on_the_standby_is_reported_and_commits_resume(
    full_disk: FullDisk, deployment: Deployment, record_figure: Any
) -> None:
    standby_name = deployment.node_name(full_disk.standby)
    print(
        f"\nHA jobs standby-watch: commits stalled {full_disk.stall_s:.1f} s on a standby with a full disk",
        flush=True,
    )
    record_figure("jobs_standby_disk_full_write_stall_s", full_disk.stall_s, stall_limit_s=STALL_SECONDS)
    record_figure("jobs_standby_disk_full_back_to_secondary_s", full_disk.recovered_s)
    assert full_disk.stall_s < STALL_BOUND_S, f"commits stalled {full_disk.stall_s:.1f} s"
    reports = [line for line in full_disk.new_log.splitlines() if "received no WAL" in line]
    assert reports, full_disk.new_log
    assert standby_name in reports[0], reports
    ended = [line for line in full_disk.new_log.splitlines() if "maintenance ended" in line]
    assert ended, full_disk.new_log
    assert {a.server for a in full_disk.writer.acks} == {NODE_HOSTS[full_disk.primary]}
    acks = full_disk.writer.acks
    lost = acked_writes_lost(
        [a.seq for a in acks], committed_seqs(deployment.node_conninfo(full_disk.primary))
    )
    assert lost == 0, f"{lost} acknowledged commits are missing on the primary"
    acked = {a.seq for a in acks}
    wait_until(
        lambda: acked <= committed_seqs(deployment.node_conninfo(full_disk.standby)),
        timeout_s=60,
        what=f"{standby_name} to hold every acknowledged commit",
    )
