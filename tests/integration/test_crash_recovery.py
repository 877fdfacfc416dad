"""A broker that dies between any two steps leaves nothing another broker cannot finish or undo.

Each test starts a broker whose environment names one crash point
(`fault_injection.CRASH_AT_ENV`); it exits with status 137 right there, mid
request, as after a power cut. A normal broker on the same cluster then gets
what the platform would send next:

- the same request again (the platform retries when it got no answer). The
  spec's codes: a provision or bind that this retry completes was "created as a
  result of this request" -> ``201``; a delete the retry completes -> ``200``;
  a delete whose crash came after the record was already gone finds nothing ->
  ``410 Gone`` ("MUST be returned if the ... does not exist"), which the
  platform counts as success.
- or, for provision and bind, orphan mitigation: a DELETE, which must answer
  ``200`` and leave no database, role or record behind.

These tests use a cluster of their own so that "no orphans" can be checked for
every ``cf_`` object on it.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from postgres_service_broker.backends.fault_injection import (
    BIND_POINTS,
    CRASH_AT_ENV,
    CRASH_EXIT_CODE,
    DEPROVISION_POINTS,
    PROVISION_POINTS,
    UNBIND_POINTS,
)
from postgres_service_broker.backends.shared_names import InstanceNames
from postgres_service_broker.local_cluster import LocalCluster
from tests.conftest import FAST_SETTINGS
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.cluster_state import (
    binding_footprint,
    connect_with,
    instance_footprint,
    orphans,
)
from tests.support.osb_client import OsbClient, new_id

pytestmark = pytest.mark.slow

EXTENSIONS = {"extensions": ["citext"]}
SMALL_PLAN_CONNECTION_LIMIT = 10
# Crash points after which the record is already gone: a retried DELETE finds nothing.
GONE_AFTER = {"unbind.after_delete_record", "deprovision.after_delete_record"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    own = LocalCluster.create(prefix="pgsvc-crash-", settings=FAST_SETTINGS)
    own.start()
    yield own
    own.destroy()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash-brokers")


@pytest.fixture(scope="module")
def steady(cluster: LocalCluster, workdir: Path) -> Iterator[OsbClient]:
    """A broker with no crash point: the one that picks up the pieces."""
    proc = BrokerProcess.write(workdir, cluster).start()
    yield OsbClient(proc.url, BROKER_USER, BROKER_PASSWORD)
    proc.stop()


class CrashingBroker:
    """A broker that dies at `point`; it boots in the background while the test sets up."""

    def __init__(self, cluster: LocalCluster, workdir: Path, point: str) -> None:
        self.point = point
        self.proc = BrokerProcess.write(workdir, cluster)
        self.proc.env[CRASH_AT_ENV] = point
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._booting = self._pool.submit(self.proc.start)

    def crash_on(self, send: Callable[[OsbClient], requests.Response]) -> None:
        """Send one request and see the broker die at its point, without answering."""
        self._booting.result()
        assert self.proc.process is not None
        with pytest.raises(requests.ConnectionError):
            send(OsbClient(self.proc.url, BROKER_USER, BROKER_PASSWORD))
        assert self.proc.process.wait(timeout=30) == CRASH_EXIT_CODE
        assert f"fault injection: crashing at {self.point}" in self.proc.log()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._booting.result()
        self._pool.shutdown()
        self.proc.kill()


@pytest.fixture
def crashing(cluster: LocalCluster, workdir: Path, point: str) -> Iterator[CrashingBroker]:
    broker = CrashingBroker(cluster, workdir, point)
    yield broker
    broker.close()


def assert_usable_instance(cluster: LocalCluster, steady: OsbClient, instance: str) -> None:
    """Everything a finished provision makes, with the right attributes, and a binding that works."""
    footprint = instance_footprint(cluster, instance)
    assert footprint.complete, footprint
    assert footprint.extensions == {"citext"}
    names = InstanceNames.for_instance(instance)
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as admin:
        owner, limit, public_connect = admin.execute(
            "SELECT pg_get_userbyid(datdba), datconnlimit, has_database_privilege('public', oid, 'CONNECT') "
            "FROM pg_database WHERE datname = %s",
            (names.database,),
        ).fetchone()
    assert (owner, limit, public_connect) == (names.owner_role, SMALL_PLAN_CONNECTION_LIMIT, False)
    assert steady.fetch_instance(instance).json()["parameters"] == EXTENSIONS
    binding = new_id()
    creds = steady.bind(instance, binding).json()["credentials"]
    with connect_with(creds) as conn:
        conn.execute("CREATE TABLE t (name citext)")
        conn.execute("INSERT INTO t VALUES ('Ada')")
        assert conn.execute("SELECT count(*) FROM t WHERE name = 'ada'").fetchone()[0] == 1
    assert steady.unbind(instance, binding).status_code == 200


def provision_ready(steady: OsbClient) -> str:
    instance = new_id()
    assert steady.provision(instance, parameters=EXTENSIONS).status_code == 201
    return instance


# -- provision ----------------------------------------------------------------------


@pytest.mark.parametrize("point", PROVISION_POINTS)
def test_provision_crash_then_retry_finishes_it(
    cluster: LocalCluster, crashing: CrashingBroker, steady: OsbClient, point: str
) -> None:
    instance = new_id()
    crashing.crash_on(lambda c: c.provision(instance, parameters=EXTENSIONS))
    assert instance_footprint(cluster, instance).record_state == "creating"
    # Until it is finished, the instance is not presented as existing.
    assert steady.fetch_instance(instance).status_code == 404

    resp = steady.provision(instance, parameters=EXTENSIONS)
    assert resp.status_code == 201, resp.text
    assert resp.json() == {}
    assert_usable_instance(cluster, steady, instance)
    assert steady.provision(instance, parameters=EXTENSIONS).status_code == 200  # now simply exists

    assert steady.deprovision(instance).status_code == 200
    assert orphans(cluster) == []


@pytest.mark.parametrize("point", PROVISION_POINTS)
def test_provision_crash_then_orphan_mitigation_removes_everything(
    cluster: LocalCluster, crashing: CrashingBroker, steady: OsbClient, point: str
) -> None:
    instance = new_id()
    crashing.crash_on(lambda c: c.provision(instance, parameters=EXTENSIONS))
    resp = steady.deprovision(instance)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}
    footprint = instance_footprint(cluster, instance)
    assert footprint.absent, footprint
    assert steady.deprovision(instance).status_code == 410
    assert orphans(cluster) == []


# -- bind --------------------------------------------------------------------------------


@pytest.mark.parametrize("read_only", [False, True], ids=["normal", "read-only"])
@pytest.mark.parametrize("point", BIND_POINTS)
def test_bind_crash_then_retry_finishes_it(
    cluster: LocalCluster, crashing: CrashingBroker, steady: OsbClient, point: str, read_only: bool
) -> None:
    instance = provision_ready(steady)
    maker = steady.bind(instance, new_id()).json()["credentials"]
    with connect_with(maker) as conn:
        conn.execute("CREATE TABLE existing (v int)")
        conn.execute("INSERT INTO existing VALUES (1)")
    binding = new_id()
    params: dict[str, Any] = {"read_only": read_only}
    crashing.crash_on(lambda c: c.bind(instance, binding, parameters=params))
    assert binding_footprint(cluster, binding).record_state == "creating"
    assert steady.fetch_binding(instance, binding).status_code == 404

    resp = steady.bind(instance, binding, parameters=params)
    assert resp.status_code == 201, resp.text
    creds = resp.json()["credentials"]
    footprint = binding_footprint(cluster, binding)
    assert footprint.record_state == "ready"
    assert footprint.can_login
    group = "_reader" if read_only else "_owner"
    assert footprint.member_of == {InstanceNames.for_instance(instance).database + group}
    with connect_with(creds) as conn:
        assert conn.execute("SELECT v FROM existing").fetchall() == [(1,)]
        if read_only:
            conn.execute("SET default_transaction_read_only = off")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO existing VALUES (2)")
        else:
            conn.execute("INSERT INTO existing VALUES (2)")
    again = steady.bind(instance, binding, parameters=params)
    assert again.status_code == 200
    assert again.json()["credentials"] == creds

    assert steady.deprovision(instance).status_code == 200
    assert orphans(cluster) == []


@pytest.mark.parametrize("point", BIND_POINTS)
def test_bind_crash_then_orphan_mitigation_removes_it(
    cluster: LocalCluster, crashing: CrashingBroker, steady: OsbClient, point: str
) -> None:
    instance = provision_ready(steady)
    binding = new_id()
    crashing.crash_on(lambda c: c.bind(instance, binding))
    resp = steady.unbind(instance, binding)
    assert resp.status_code == 200, resp.text
    assert binding_footprint(cluster, binding).absent
    assert steady.unbind(instance, binding).status_code == 410
    assert instance_footprint(cluster, instance).complete  # the instance itself is untouched
    assert orphans(cluster) == []
    assert steady.deprovision(instance).status_code == 200


# -- unbind and deprovision -----------------------------------------------------------------


@pytest.mark.parametrize("point", UNBIND_POINTS)
def test_unbind_crash_then_retry_finishes_it(
    cluster: LocalCluster, crashing: CrashingBroker, steady: OsbClient, point: str
) -> None:
    instance, binding = provision_ready(steady), new_id()
    creds = steady.bind(instance, binding).json()["credentials"]
    session = connect_with(creds)
    session.execute("CREATE TABLE kept (v int)")
    session.execute("INSERT INTO kept VALUES (7)")
    try:
        crashing.crash_on(lambda c: c.unbind(instance, binding))
        resp = steady.unbind(instance, binding)
        assert resp.status_code == (410 if point in GONE_AFTER else 200), resp.text
        assert binding_footprint(cluster, binding).absent
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")  # its open session ended with it
        with pytest.raises(psycopg.OperationalError):
            connect_with(creds)
    finally:
        session.close()
    # What the binding made survives, and belongs to the instance.
    other = steady.bind(instance, new_id()).json()["credentials"]
    with connect_with(other) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [(7,)]
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'kept'").fetchone()[0]
        assert owner == other["name"] + "_owner"
    assert steady.deprovision(instance).status_code == 200
    assert orphans(cluster) == []


@pytest.mark.parametrize("point", DEPROVISION_POINTS)
def test_deprovision_crash_then_retry_finishes_it(
    cluster: LocalCluster, crashing: CrashingBroker, steady: OsbClient, point: str
) -> None:
    instance, binding = provision_ready(steady), new_id()
    assert steady.bind(instance, binding).status_code == 201
    crashing.crash_on(lambda c: c.deprovision(instance))
    resp = steady.deprovision(instance)
    assert resp.status_code == (410 if point in GONE_AFTER else 200), resp.text
    assert instance_footprint(cluster, instance).absent
    assert binding_footprint(cluster, binding).absent
    assert orphans(cluster) == []


# -- a real kill at a random moment ----------------------------------------------------------

# What a client sees when the broker dies: no connection, or one cut mid-response.
RETRYABLE = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout)


class Lifecycles:
    """Workers running provision, bind, use, unbind, deprovision in a loop, retrying like a platform."""

    def __init__(self, url: str, deadline: float) -> None:
        self.url = url
        self.deadline = deadline
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.cut_in_flight = 0  # requests the broker died during (not merely refused while down)
        self.completed: list[tuple[str, str]] = []

    def until_done(self, send: Callable[[OsbClient], requests.Response], ok: set[int]) -> requests.Response:
        client = OsbClient(self.url, BROKER_USER, BROKER_PASSWORD)
        while time.monotonic() < self.deadline:
            try:
                resp = send(client)
            except RETRYABLE as exc:
                if "Connection refused" not in str(exc):
                    with self.lock:
                        self.cut_in_flight += 1
                client = OsbClient(self.url, BROKER_USER, BROKER_PASSWORD)
                time.sleep(0.1)
                continue
            if resp.status_code in ok:
                return resp
            if resp.status_code == 422 and resp.json().get("error") == "ConcurrencyError":
                time.sleep(0.1)
                continue
            raise AssertionError(f"unexpected {resp.status_code}: {resp.text}")
        raise AssertionError("no success before the deadline")

    def lifecycle(self, instance: str, binding: str) -> None:
        self.until_done(lambda c: c.provision(instance, parameters=EXTENSIONS), {200, 201})
        resp = self.until_done(lambda c: c.bind(instance, binding), {200, 201})
        with connect_with(resp.json()["credentials"]) as conn:
            conn.execute("CREATE TABLE t (v citext)")
        self.until_done(lambda c: c.unbind(instance, binding), {200, 410})
        self.until_done(lambda c: c.deprovision(instance), {200, 410})
        with self.lock:
            self.completed.append((instance, binding))

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.lifecycle(new_id(), new_id())
        except Exception as exc:  # reported by the test, not lost in a thread
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")


def test_sigkill_at_random_moments_converges(cluster: LocalCluster, workdir: Path) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    proc = BrokerProcess.write(workdir, cluster).start()
    loops = Lifecycles(proc.url, deadline=time.monotonic() + 120)
    workers = [threading.Thread(target=loops.run) for _ in range(3)]
    try:
        for worker in workers:
            worker.start()
        for _ in range(3):
            time.sleep(rng.uniform(0.2, 1.5))
            proc.kill()  # SIGKILL: no clean-up at all
            proc.start()
        time.sleep(0.5)
    finally:
        loops.stop.set()
        for worker in workers:
            worker.join(timeout=150)
        proc.stop()
    assert loops.errors == [], f"seed {seed}"
    assert loops.cut_in_flight > 0, f"seed {seed}: no kill hit a request in flight"
    assert len(loops.completed) >= len(workers)
    assert orphans(cluster) == [], f"seed {seed}"
    for instance, binding in loops.completed:
        assert instance_footprint(cluster, instance).absent
        assert binding_footprint(cluster, binding).absent
