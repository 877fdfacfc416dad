"""A standby whose disk is full, and a standby that cannot catch up: reported, and the standby catches up.

Both faults leave the standby's PostgreSQL and keeper running; only its
WAL stops moving. The disk-full standby has its pg_wal on a small real
filesystem (a tmpfs) that the test fills, so the WAL receiver meets ENOSPC
from the kernel. The stuck standby has its startup process and WAL receiver
stopped with SIGSTOP (a standby that cannot replay or receive).

What pg_auto_failover 2.0 does about it on its own, measured here: nothing.
Its monitor judges a node by its keeper's reports, its own health-check
connection and "is PostgreSQL running", and all three stay good; so the
standby stays "secondary", stays in synchronous_standby_names, and every
commit on the primary waits for it (the stall is recorded as a figure).
What keeps the primary committing is the postgres job's standby-watch,
which puts such a standby in maintenance after a stall limit and ends that
maintenance once it caught up (tests/ha/test_ha_jobs_standby_faults.py).
What is asserted here, on a bare formation: the fault is in the logs, no
acknowledged commit is lost, the documented operator action (`pg_autoctl
enable maintenance` on the standby) releases the primary at once, and once
the fault is gone and maintenance is off the standby catches up and is
secondary again.

Each scenario runs once per module (it is the slow part); the tests read its record.
"""

from __future__ import annotations

import contextlib
import itertools
import pwd
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from postgres_service_broker import ha_settings
from tests.ha.conftest import HaApp, reset
from tests.support import small_filesystem
from tests.support.auto_failover import Formation, FormationError, Server, wait_until
from tests.support.ha_writes import Ack, ContinuousWriter, acked_writes_lost, committed_seqs
from tests.support.process_tree import process_tree, signal_all

# A real formation: faults, maintenance and catch-up take tens of seconds.
pytestmark = pytest.mark.slow

# A standby that is gone entirely is out of the synchronous set within about
# 4 s (walsender timeout, then the monitor's unhealthy timeout and health
# checks); three times that allows for a busy machine. A faulty standby that
# is still running is left alone for longer, to show the monitor does not act.
WRITE_STALL_BOUND_S = 3 * (
    ha_settings.WAL_SENDER_TIMEOUT_MS / 1000
    + ha_settings.NODE_CONSIDERED_UNHEALTHY_TIMEOUT_MS / 1000
    + ha_settings.HEALTH_CHECK_PERIOD_MS / 1000
)
# How long each fault is left alone before the operator acts: longer than that bound.
OBSERVE_S = WRITE_STALL_BOUND_S + 10
# Room on the standby's WAL filesystem beyond what pg_wal holds when the test starts.
WAL_HEADROOM_BYTES = 32 * 1024 * 1024

# What PostgreSQL writes when the kernel refuses a write for lack of space.
DISK_FULL = re.compile(r"No space left on device")
# What the primary writes when it gives up on a standby that stopped answering.
WALSENDER_TIMEOUT = re.compile(r"terminating walsender process due to replication timeout")


@dataclass
class LogWatch:
    """New lines in a server's logs (pg_autoctl's and PostgreSQL's) since the watch began."""

    server: Server
    _start: dict[Path, int] = field(default_factory=dict)

    def files(self) -> list[Path]:
        return [self.server.log_path, *sorted((self.server.pgdata / "log").glob("*"))]

    def begin(self) -> LogWatch:
        self._start = {path: path.stat().st_size for path in self.files() if path.is_file()}
        return self

    def lines(self, pattern: re.Pattern[str]) -> list[str]:
        found = []
        for path in self.files():
            if not path.is_file():
                continue
            with path.open("rb") as log:
                log.seek(self._start.get(path, 0))
                text = log.read().decode(errors="replace")
            found += [line for line in text.splitlines() if pattern.search(line)]
        return found


@dataclass
class FaultRecord:
    """What one scenario observed, for the tests to judge."""

    primary: Server
    standby: Server
    writer: ContinuousWriter
    fault_at: float
    operator_acted_at: float
    lifted_at: float  # the fault gone (space freed, processes resumed)
    recovered_at: float  # primary + secondary again, maintenance over
    reported: dict[str, list[str]]  # server name -> log lines naming the fault
    lag_bytes: int | None = None

    def stall_during_fault_s(self) -> float:
        """The longest stretch without an acknowledged commit between the fault and the operator's action."""
        return longest_gap([a.acked for a in self.writer.acks], self.fault_at, self.operator_acted_at)


def longest_gap(ack_times: list[float], start: float, end: float) -> float:
    """The longest interval inside [start, end] in which no commit was acknowledged."""
    inside = sorted(t for t in ack_times if start < t < end)
    edges = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(edges))


def first_ack_after(acks: list[Ack], moment: float) -> float:
    """Seconds from `moment` to the first acknowledgement of a commit sent after it."""
    later = [a.acked for a in acks if a.sent > moment]
    if not later:
        raise AssertionError("no commit was acknowledged after the moment")
    return min(later) - moment


def enable_maintenance(standby: Server) -> None:
    """The operator's action for a standby that holds the primary back (pg_auto_failover's documented CLI)."""
    standby.run(["enable", "maintenance", "--pgdata", str(standby.pgdata)], timeout_s=120)


def disable_maintenance(standby: Server) -> None:
    standby.run(["disable", "maintenance", "--pgdata", str(standby.pgdata)], timeout_s=120)


def wait_streaming_in_quorum(primary: Server, timeout_s: float = 60) -> None:
    """The primary's standby streams and counts for synchronous commit (so a stuck one blocks commits)."""

    def in_quorum() -> bool:
        with primary.connect() as conn:
            rows = conn.execute("SELECT state, sync_state FROM pg_stat_replication").fetchall()
        return rows == [("streaming", "quorum")]

    wait_until(in_quorum, timeout_s, f"{primary.name}'s standby to stream as a synchronous quorum member")


def wal_lag_bytes(primary: Server, standby: Server) -> int:
    """How far the standby's received WAL is behind the primary's current WAL position."""
    with primary.connect() as conn:
        current = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with standby.connect() as conn:
        received = conn.execute("SELECT pg_last_wal_receive_lsn()").fetchone()[0]
        return int(conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", (current, received)).fetchone()[0])


def run_fault(
    formation: Formation,
    ha_app: HaApp,
    primary: Server,
    standby: Server,
    inject: Callable[[], None],
    lift: Callable[[], None],
    fault_pattern: re.Pattern[str],
    measure_lag: bool = False,
) -> FaultRecord:
    """Commit steadily, inject the fault, watch it for OBSERVE_S, then do what an operator does and lift it.

    Order after the window: maintenance on the standby (releases the
    primary), the fault lifted, maintenance off; then wait for primary +
    secondary again with commits flowing.
    """
    watches = {server.name: LogWatch(server).begin() for server in (primary, standby)}
    writer = ContinuousWriter.for_uri(ha_app.uri).start()
    lag: int | None = None
    in_maintenance = False
    try:
        writer.wait_for_acks(20, timeout_s=60)
        fault_at = time.monotonic()
        inject()
        wait_until(
            lambda: any(watch.lines(fault_pattern) for watch in watches.values()),
            timeout_s=60,
            what=f"a log line matching {fault_pattern.pattern!r}",
        )
        time.sleep(max(0.0, fault_at + OBSERVE_S - time.monotonic()))
        if measure_lag:
            lag = wal_lag_bytes(primary, standby)
        operator_acted_at = time.monotonic()
        in_maintenance = True
        enable_maintenance(standby)
        writer.wait_for_ack_after(operator_acted_at, timeout_s=60)
        lifted_at = time.monotonic()
        lift()
        disable_maintenance(standby)
        in_maintenance = False
        formation.wait_states({primary.name: "primary", standby.name: "secondary"}, timeout_s=180)
        recovered_at = time.monotonic()
        writer.wait_for_acks(20, timeout_s=60)
    finally:
        writer.stop()
        if in_maintenance:
            # Leave no node in maintenance behind a failure: the next test expects primary + secondary.
            lift()
            with contextlib.suppress(FormationError, subprocess.TimeoutExpired):
                standby.run(["disable", "maintenance", "--pgdata", str(standby.pgdata)], check=False)
    return FaultRecord(
        primary=primary,
        standby=standby,
        writer=writer,
        fault_at=fault_at,
        operator_acted_at=operator_acted_at,
        lifted_at=lifted_at,
        recovered_at=recovered_at,
        reported={name: watch.lines(fault_pattern) for name, watch in watches.items()},
        lag_bytes=lag,
    )


# -- the standby's disk is full -------------------------------------------------------


@dataclass
class SmallWalVolume:
    """The standby's pg_wal on a filesystem of its own, which the test fills and frees."""

    mount_point: Path
    filler: Path | None = None

    def fill(self) -> None:
        self.filler = small_filesystem.fill(self.mount_point)

    def free(self) -> None:
        if self.filler is not None:
            self.filler.unlink(missing_ok=True)
            self.filler = None


def restart_and_settle(formation: Formation, primary: Server, standby: Server) -> None:
    """Start the stopped standby and wait until it is a streaming synchronous standby again.

    The monitor sees the restart a moment late, and then has the keeper
    restart PostgreSQL once more (catchingup): so first wait for the primary
    to have gone to wait_primary, lest a stale "secondary" pass for the new one.
    """
    standby.start()
    with contextlib.suppress(FormationError):  # an unseen restart: still primary + secondary
        formation.wait_states({primary.name: "wait_primary"}, timeout_s=20)
    formation.wait_states({primary.name: "primary", standby.name: "secondary"}, timeout_s=120)
    wait_streaming_in_quorum(primary)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def disk_full(formation: Formation, ha_app: HaApp) -> FaultRecord:
    """The scenario, run once; the standby's pg_wal is home again and the pair healthy when it returns."""
    if not small_filesystem.can_mount():
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN and mount(8)")
    primary, standby = reset(formation, ha_app)
    owner = pwd.getpwnam(standby.os_user)
    wal = standby.pgdata / "pg_wal"
    size = _dir_bytes(wal) + WAL_HEADROOM_BYTES
    with small_filesystem.small_tmpfs(size, owner.pw_uid, owner.pw_gid) as mount_point:
        volume = SmallWalVolume(mount_point)
        standby.stop()
        small_filesystem.move_directory_onto(wal, mount_point, owner.pw_uid, owner.pw_gid)
        try:
            restart_and_settle(formation, primary, standby)

            def inject() -> None:
                volume.fill()
                # The standby must now start a new WAL segment, which needs space it has not got.
                with primary.connect() as conn:
                    conn.execute("SELECT pg_switch_wal()")

            record = run_fault(formation, ha_app, primary, standby, inject, volume.free, DISK_FULL)
        finally:
            volume.free()
            standby.stop()
            small_filesystem.move_directory_back(wal, owner.pw_uid, owner.pw_gid)
    restart_and_settle(formation, primary, standby)
    return record


def test_full_disk_on_the_standby_is_named_in_its_log(disk_full: FaultRecord) -> None:
    lines = disk_full.reported[disk_full.standby.name]
    assert lines, f"no 'No space left on device' line in {disk_full.standby.name}'s logs"
    # PostgreSQL names the file it could not write, so the operator knows which volume is full.
    assert any("pg_wal" in line for line in lines), lines


def test_full_disk_loses_no_acknowledged_write_and_the_standby_catches_up(
    disk_full: FaultRecord, ha_app: HaApp, record_figure
) -> None:
    assert_caught_up_without_loss(disk_full, ha_app)
    record_figure(
        "standby_disk_full_write_stall_s",
        disk_full.stall_during_fault_s(),
        observed_s=round(disk_full.operator_acted_at - disk_full.fault_at, 1),
    )
    record_figure(
        "standby_disk_full_maintenance_releases_writes_s",
        first_ack_after(disk_full.writer.acks, disk_full.operator_acted_at),
    )
    record_figure("standby_disk_full_back_to_secondary_s", disk_full.recovered_at - disk_full.lifted_at)


# -- the standby cannot catch up ------------------------------------------------------


def recovery_processes(standby: Server) -> list[int]:
    """The standby's startup process and WAL receiver: what receives and replays WAL."""
    postmaster = standby.postmaster_pid()
    if not postmaster:
        return []
    found = []
    for pid in process_tree(postmaster):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith((b"postgres: startup", b"postgres: walreceiver")):
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def stuck_standby(formation: Formation, ha_app: HaApp) -> FaultRecord:
    primary, standby = reset(formation, ha_app)
    wait_streaming_in_quorum(primary)
    stopped: list[int] = []

    def inject() -> None:
        def both() -> list[int] | None:
            found = recovery_processes(standby)
            return found if len(found) == 2 else None

        pids = wait_until(
            both,
            timeout_s=30,
            what=f"{standby.name}'s startup process and WAL receiver",
        )
        signal_all(pids, signal.SIGSTOP)
        stopped.extend(pids)

    def lift() -> None:
        signal_all(stopped, signal.SIGCONT)
        stopped.clear()

    try:
        return run_fault(
            formation, ha_app, primary, standby, inject, lift, WALSENDER_TIMEOUT, measure_lag=True
        )
    finally:
        lift()


def test_stuck_standby_is_named_in_the_primary_log_and_its_lag_is_visible(
    stuck_standby: FaultRecord, record_figure
) -> None:
    assert stuck_standby.reported[stuck_standby.primary.name], (
        f"no walsender timeout line in {stuck_standby.primary.name}'s log"
    )
    assert stuck_standby.lag_bytes is not None
    assert stuck_standby.lag_bytes > 0, stuck_standby.lag_bytes
    record_figure("stuck_standby_wal_lag_bytes", stuck_standby.lag_bytes, observed_s=OBSERVE_S)


def test_stuck_standby_loses_no_acknowledged_write_and_catches_up(
    stuck_standby: FaultRecord, ha_app: HaApp, record_figure
) -> None:
    assert_caught_up_without_loss(stuck_standby, ha_app)
    record_figure(
        "stuck_standby_write_stall_s",
        stuck_standby.stall_during_fault_s(),
        observed_s=round(stuck_standby.operator_acted_at - stuck_standby.fault_at, 1),
    )
    record_figure(
        "stuck_standby_maintenance_releases_writes_s",
        first_ack_after(stuck_standby.writer.acks, stuck_standby.operator_acted_at),
    )
    record_figure("stuck_standby_back_to_secondary_s", stuck_standby.recovered_at - stuck_standby.lifted_at)


# -- shared judgements ------------------------------------------------------------------


def assert_caught_up_without_loss(record: FaultRecord, ha_app: HaApp) -> None:
    acks = record.writer.acks
    assert {a.server for a in acks} == {record.primary.host}, "the primary changed during a standby fault"
    lost = acked_writes_lost([a.seq for a in acks], committed_seqs(ha_app.node_conninfo(record.primary)))
    assert lost == 0, f"{lost} acknowledged commits are missing on the primary"
    # Back to secondary, the standby holds every acknowledged commit.
    acked = {a.seq for a in acks}
    wait_until(
        lambda: acked <= committed_seqs(ha_app.node_conninfo(record.standby)),
        timeout_s=60,
        what=f"{record.standby.name} to hold every acknowledged commit",
    )
    with record.standby.connect() as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
