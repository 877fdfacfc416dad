"""The figures: each function measures one figure and its baseline in the same run.

Every function is bounded by the counts it is given (and a deadline where
work piles up), cleans up what it made unless told the cluster is about to be
thrown away, and returns a small result that formats its own output line.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg

from benchmarks.broker_client import STEPS, BrokerClient
from benchmarks.direct_sql import DirectSql
from benchmarks.target import Target
from postgres_service_broker.backends.shared_names import InstanceNames

# Enough to keep both cores busy while the broker creates databases, no more:
# beyond this, requests only queue inside the broker.
FILL_THREADS = 8


def _ms(seconds: float) -> float:
    return seconds * 1000.0


# -- broker overhead -------------------------------------------------------------


@dataclass(frozen=True)
class OverheadResult:
    broker_ms: float
    direct_ms: float
    runs: int
    # Medians of each step (`STEPS`), on each side: where the difference lies.
    broker_step_ms: tuple[float, ...] = ()
    direct_step_ms: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        return self.broker_ms / self.direct_ms

    def line(self) -> str:
        return (
            f"broker_overhead_ratio: {self.ratio:.2f} (broker {self.broker_ms:.1f} ms / direct SQL "
            f"{self.direct_ms:.1f} ms, median of {self.runs} interleaved lifecycles each; goal <= 1.10)"
        )

    def steps_note(self) -> str:
        steps = ", ".join(
            f"{step} {broker:.1f} / {direct:.1f} ms ({broker - direct:+.1f})"
            for step, broker, direct in zip(STEPS, self.broker_step_ms, self.direct_step_ms, strict=True)
        )
        return f"median of each step, broker / direct SQL: {steps}"


def measure_overhead(target: Target, runs: int, warmup: int = 2) -> OverheadResult:
    """Median provision+bind+unbind+deprovision: through the broker over HTTP vs the same SQL directly.

    Runs alternate ABBA (broker first, then direct first) so drift in the
    machine's load and the cluster's state falls on both sides alike.
    """
    client, direct = BrokerClient(target), DirectSql(target)
    try:
        for _ in range(warmup):
            client.lifecycle()
            direct.lifecycle()
        broker_steps: list[tuple[float, ...]] = []
        direct_steps: list[tuple[float, ...]] = []
        for i in range(runs):
            if i % 2 == 0:
                broker_steps.append(client.lifecycle_steps())
                direct_steps.append(direct.lifecycle_steps())
            else:
                direct_steps.append(direct.lifecycle_steps())
                broker_steps.append(client.lifecycle_steps())
    finally:
        client.close()
        direct.close()
    return OverheadResult(
        broker_ms=_ms(statistics.median(sum(steps) for steps in broker_steps)),
        direct_ms=_ms(statistics.median(sum(steps) for steps in direct_steps)),
        runs=runs,
        broker_step_ms=_step_medians_ms(broker_steps),
        direct_step_ms=_step_medians_ms(direct_steps),
    )


def _step_medians_ms(lifecycles: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(_ms(statistics.median(step)) for step in zip(*lifecycles, strict=True))


# -- provisioning as instances pile up -------------------------------------------


@dataclass(frozen=True)
class ProvisionSample:
    existing: int
    p50_ms: float
    # The same SQL issued directly, sampled alongside: PostgreSQL's own share of
    # any slowdown (and the machine's drift between the two points).
    direct_p50_ms: float
    samples: int


@dataclass(frozen=True)
class ScalingResult:
    small: ProvisionSample
    large: ProvisionSample
    wanted_large: int

    @property
    def ratio(self) -> float:
        return self.large.p50_ms / self.small.p50_ms

    @property
    def direct_ratio(self) -> float:
        return self.large.direct_p50_ms / self.small.direct_p50_ms

    def lines(self) -> list[str]:
        small, large = self.small, self.large
        note = "" if large.existing >= self.wanted_large else f"; {self.wanted_large} were asked for"
        return [
            f"provision_ms_p50_at_{small.existing}: {small.p50_ms:.1f} "
            f"(p50 of {small.samples} provisions with {small.existing} instances; baseline of the next "
            f"line; the same SQL direct: {small.direct_p50_ms:.1f} ms)",
            f"provision_ms_p50_at_{large.existing}: {large.p50_ms:.1f} "
            f"(ratio {self.ratio:.2f} to {small.p50_ms:.1f} ms at {small.existing}, flat is ~1.0; "
            f"the same SQL direct: {large.direct_p50_ms:.1f} ms, ratio {self.direct_ratio:.2f}; "
            f"p50 of {large.samples} provisions with {large.existing} instances{note})",
        ]


def count_instances(target: Target) -> int:
    """Instances on the cluster, counted where they live: the databases the broker named."""
    with psycopg.connect(**target.conninfo, autocommit=True) as conn:
        row = conn.execute(r"SELECT count(*) FROM pg_database WHERE datname LIKE 'cf\_%'").fetchone()
    return int(row[0]) if row else 0


def _in_parallel(
    target: Target, threads: int, items: Iterable[str], work: Callable[[BrokerClient, str], None]
) -> list[BaseException]:
    """Run `work` on every item with one `BrokerClient` per thread; the errors, in no order."""
    local = threading.local()
    clients: list[BrokerClient] = []
    lock = threading.Lock()

    def run(item: str) -> BaseException | None:
        if not hasattr(local, "client"):
            local.client = BrokerClient(target)
            with lock:
                clients.append(local.client)
        try:
            work(local.client, item)
        except Exception as exc:
            return exc
        return None

    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        results = list(pool.map(run, items))
    finally:
        # On Ctrl-C, queued work is dropped instead of run to the end.
        pool.shutdown(wait=True, cancel_futures=True)
        for client in clients:
            client.close()
    return [r for r in results if r is not None]


def fill(target: Target, count: int, deadline: float, made: list[str]) -> None:
    """Provision `count` instances through the broker, in parallel, until `deadline` (monotonic).

    Each id is added to `made` as soon as it exists, so a caller can clean up
    even after an error or Ctrl-C.
    """
    lock = threading.Lock()

    def provision(client: BrokerClient, instance_id: str) -> None:
        if time.monotonic() > deadline:
            return
        client.provision(instance_id)
        with lock:
            made.append(instance_id)

    errors = _in_parallel(target, FILL_THREADS, (str(uuid.uuid4()) for _ in range(count)), provision)
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} filler provisions failed; first: {errors[0]}")


def remove(target: Target, instance_ids: list[str]) -> None:
    errors = _in_parallel(target, FILL_THREADS, instance_ids, BrokerClient.deprovision)
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(instance_ids)} deprovisions failed; first: {errors[0]}")


def sample_provision(target: Target, samples: int) -> ProvisionSample:
    """p50 of `samples` provisions, one at a time, through the broker and (interleaved) directly.

    Each new instance is removed again, untimed, so the count stays where it was.
    """
    existing = count_instances(target)
    client, direct = BrokerClient(target), DirectSql(target)
    broker_s: list[float] = []
    direct_s: list[float] = []

    def through_broker() -> None:
        instance_id = str(uuid.uuid4())
        started = time.perf_counter()
        client.provision(instance_id)
        broker_s.append(time.perf_counter() - started)
        client.deprovision(instance_id)

    def directly() -> None:
        names = InstanceNames.for_instance(str(uuid.uuid4()))
        started = time.perf_counter()
        direct.provision(names)
        direct_s.append(time.perf_counter() - started)
        direct.deprovision(names)

    try:
        for i in range(samples):
            first, second = (through_broker, directly) if i % 2 == 0 else (directly, through_broker)
            first()
            second()
    finally:
        client.close()
        direct.close()
    return ProvisionSample(
        existing=existing,
        p50_ms=_ms(statistics.median(broker_s)),
        direct_p50_ms=_ms(statistics.median(direct_s)),
        samples=samples,
    )


def measure_provision_scaling(
    target: Target,
    small: int,
    large: int,
    samples: int,
    *,
    fill_deadline_s: float,
    cleanup: bool = True,
    progress: Callable[[str], None] = lambda _msg: None,
) -> ScalingResult:
    """p50 provision latency with `small` instances, then with `large` (filled through the broker)."""
    made: list[str] = []
    try:
        fill(target, max(0, small - count_instances(target)), time.monotonic() + fill_deadline_s, made)
        small_sample = sample_provision(target, samples)
        wanted = max(0, large - count_instances(target))
        progress(f"creating {wanted} more instances through the broker ({FILL_THREADS} threads)")
        started, before = time.monotonic(), len(made)
        fill(target, wanted, started + fill_deadline_s, made)
        progress(f"created {len(made) - before} instances in {time.monotonic() - started:.0f} s")
        large_sample = sample_provision(target, samples)
    finally:
        if cleanup and made:
            remove(target, made)
    return ScalingResult(small=small_sample, large=large_sample, wanted_large=large)


# -- concurrency -------------------------------------------------------------------


@dataclass(frozen=True)
class ConcurrencyResult:
    clients: int
    lifecycles: int
    per_s: float
    single_per_s: float
    single_runs: int
    errors: int
    first_error: str | None

    @property
    def ratio(self) -> float:
        return self.per_s / self.single_per_s

    def lines(self) -> list[str]:
        shown = f"; first: {self.first_error}" if self.first_error else ""
        return [
            f"concurrent_lifecycles_per_s: {self.per_s:.2f} ({self.clients} clients, {self.lifecycles} "
            f"lifecycles; ratio {self.ratio:.2f} to one client's {self.single_per_s:.2f}/s over "
            f"{self.single_runs} lifecycles)",
            f"concurrent_errors: {self.errors} (of {self.lifecycles} lifecycles at once; must be 0{shown})",
        ]


def _lifecycles_per_s(target: Target, clients: int, per_client: int) -> tuple[float, int, int, str | None]:
    """Each client runs `per_client` lifecycles back to back; completed lifecycles per wall-clock second."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client_loop(_index: int) -> None:
        client = BrokerClient(target)
        try:
            for _ in range(per_client):
                try:
                    client.lifecycle()
                except Exception as exc:
                    with lock:
                        errors.append(exc)
        finally:
            client.close()

    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=clients)
    try:
        list(pool.map(client_loop, range(clients)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    elapsed = time.perf_counter() - started
    total = clients * per_client
    done = total - len(errors)
    return done / elapsed, total, len(errors), (str(errors[0]) if errors else None)


def measure_concurrency(target: Target, clients: int, per_client: int, single_runs: int) -> ConcurrencyResult:
    """Lifecycles per second with `clients` at once, against one client alone (the baseline)."""
    single_per_s, _, single_errors, single_first = _lifecycles_per_s(target, 1, single_runs)
    if single_errors:
        raise RuntimeError(f"the single-client baseline failed {single_errors} times; first: {single_first}")
    per_s, total, errors, first = _lifecycles_per_s(target, clients, per_client)
    return ConcurrencyResult(
        clients=clients,
        lifecycles=total,
        per_s=per_s,
        single_per_s=single_per_s,
        single_runs=single_runs,
        errors=errors,
        first_error=first,
    )
