"""Run every benchmark once and print one ``name: value (baseline ...)`` line per figure.

Environment knobs (all optional), for a quicker or a bigger run:
  BENCH_INSTANCES        instances for provision_ms_p50_at_N (default 2000)
  BENCH_LIFECYCLES       interleaved lifecycles per side for the overhead (default 100)
  BENCH_CLIENTS          concurrent clients (default 16)
  BENCH_FILL_DEADLINE_S  longest time spent creating filler instances (default 1800)
  BENCH_FAILOVERS        crash failovers, and as many switchovers, of the HA formation (default 3;
                         0 leaves the HA figures out)
Lines starting with '#' describe the run; every other line is a figure.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from types import FrameType

import psycopg

from benchmarks import failover, measurements
from benchmarks.environment import BenchEnvironment
from benchmarks.release_build import measure_release_build
from benchmarks.target import Target

SMALL_INSTANCES = 10
PROVISION_SAMPLES = 25
SINGLE_CLIENT_RUNS = 16
PER_CLIENT_RUNS = 6
# Room left on the disk after the filler instances: other work shares it.
DISK_HEADROOM = 0.8


def _env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}")
    return value


def note(message: str) -> None:
    print(f"# {message}", flush=True)


def figure(line: str) -> None:
    print(line, flush=True)


def _instances_that_fit(env: BenchEnvironment, target: Target, wanted: int) -> int:
    """`wanted`, or fewer if the cluster's disk cannot hold that many copies of template1."""
    assert env.cluster is not None
    with psycopg.connect(**target.conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size('template1')").fetchone()
    per_instance = int(row[0] * 1.1) if row else 8 * 1024 * 1024
    free = shutil.disk_usage(env.cluster.base_dir).free
    fits = int(free * DISK_HEADROOM) // per_instance
    note(
        f"disk: {free / 2**30:.1f} GiB free where the cluster lives; an instance takes "
        f"~{per_instance / 2**20:.1f} MiB, so {fits} fit with headroom"
    )
    if fits < wanted:
        note(f"only {fits} of the {wanted} instances asked for fit on the disk; using {fits}")
        return max(SMALL_INSTANCES + 1, fits)
    return wanted


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run(env: BenchEnvironment) -> int:
    instances = _env_int("BENCH_INSTANCES", 2000, SMALL_INSTANCES + 1)
    lifecycles = _env_int("BENCH_LIFECYCLES", 100, 1)
    clients = _env_int("BENCH_CLIENTS", 16, 2)
    fill_deadline = _env_int("BENCH_FILL_DEADLINE_S", 1800, 10)
    failovers = _env_int("BENCH_FAILOVERS", 3, 0)

    target = env.target()
    assert env.cluster is not None
    settings = " ".join(f"{k}={v}" for k, v in env.settings.items())
    note(f"PostgreSQL {env.cluster.bin.parent.name} on 127.0.0.1:{env.cluster.port}; settings: {settings}")
    note(f"broker at {target.broker_url}; plan {target.plan_id} (connection limit {target.connection_limit})")
    note(f"cores: {os.cpu_count()}; load average at start: {os.getloadavg()[0]:.2f}")

    started = time.monotonic()
    figure(measure_release_build().line())
    overhead = measurements.measure_overhead(target, lifecycles)
    figure(overhead.line())
    note(overhead.steps_note())

    concurrency = measurements.measure_concurrency(
        target, clients=clients, per_client=PER_CLIENT_RUNS, single_runs=SINGLE_CLIENT_RUNS
    )
    for line in concurrency.lines():
        figure(line)

    instances = _instances_that_fit(env, target, instances)
    note(f"instances for provision_ms_p50_at_N: {instances} (BENCH_INSTANCES, default 2000)")
    scaling = measurements.measure_provision_scaling(
        target,
        small=SMALL_INSTANCES,
        large=instances,
        samples=PROVISION_SAMPLES,
        fill_deadline_s=fill_deadline,
        # The cluster is destroyed next; removing 2,000 databases one by one would only cost time.
        cleanup=False,
        progress=note,
    )
    for line in scaling.lines():
        figure(line)
    lost = _measure_ha(failovers)
    note(f"total {time.monotonic() - started:.0f} s; load average at end: {os.getloadavg()[0]:.2f}")
    # Thousands of databases are hundreds of thousands of files; on a disk
    # mounted with 'discard' their removal can take longer than the run.
    note("removing the cluster and the broker")
    return 1 if concurrency.errors or lost else 0


def _measure_ha(rounds: int) -> int:
    """The HA figures on a formation of their own; returns the acknowledged writes lost."""
    if rounds == 0:
        note("HA figures left out (BENCH_FAILOVERS=0)")
        return 0
    missing = failover.pg_autoctl_missing()
    if missing:
        note(f"HA figures left out: {missing}")
        return 0
    note(f"building a pg_auto_failover formation for {rounds} failovers and {rounds} switchovers")
    result = failover.measure_ha(rounds)
    for line in result.lines():
        figure(line)
    return sum(e.lost for e in result.failovers + result.switchovers)


def main() -> int:
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        note("starting a PostgreSQL cluster and the broker (both removed at the end)")
        with BenchEnvironment() as env:
            return run(env)
    except KeyboardInterrupt:
        print("\ninterrupted; the cluster and the broker have been removed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
