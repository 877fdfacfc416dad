"""The broker stops on SIGTERM (bpm's and cf's stop signal) whatever its loop is doing at the time."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from postgres_service_broker.local_cluster import LocalCluster
from tests.support.broker_process import BrokerProcess

ROUNDS = 4


# A request whose header block takes waitress's loop a while to parse, in
# Python: a signal then lands in the loop's handler for that connection.
_SLOW_HEADERS = (
    b"GET /health HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-Padding-%d: %s\r\n" % (i, b"p" * 20) for i in range(3000))
    + b"\r\n"
)


def _keep_the_loop_busy(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(_SLOW_HEADERS)
        except OSError:
            pass


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sigterm_stops_the_broker_while_its_loop_reads_requests(
    tmp_path: Path, pg_cluster: LocalCluster, round_: int
) -> None:
    # A signal used to be lost when it landed while the loop was reading or
    # closing a connection: waitress logged it as that connection's error and served on.
    broker = BrokerProcess.write(tmp_path, pg_cluster).start()
    assert broker.process is not None
    stop = threading.Event()
    clients = [threading.Thread(target=_keep_the_loop_busy, args=(broker.port, stop)) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        threading.Event().wait(0.3)  # the loop is busy with them by now
        broker.process.send_signal(signal.SIGTERM)
        try:
            code = broker.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            broker.process.kill()
            broker.process.wait()
            pytest.fail(f"the broker ignored SIGTERM:\n{broker.log()[-2000:]}")
    finally:
        stop.set()
        for client in clients:
            client.join()
    assert code == 0, broker.log()[-2000:]
    assert "stopping on SIGTERM" in broker.log()
