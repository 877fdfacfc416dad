"""Run the broker: open the backend, serve the OSB app over HTTP, close cleanly on a signal."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from postgres_service_broker.backends.shared_backend import SharedBackend
from postgres_service_broker.catalog import Catalog
from postgres_service_broker.config import BrokerConfig
from postgres_service_broker.http_server import ServerLimits, WsgiServer
from postgres_service_broker.osb.app import create_app

log = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Every mutating request writes an audit line. The format above shows no
    # source location, thread or process, so do not gather them for each
    # record: the "Optimization" section of Python's logging HOWTO names these
    # switches (and logging._srcfile, which skips the caller's frame lookup).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class _Stop(SystemExit):
    """SIGINT or SIGTERM, raised in the main thread, which runs the accept loop.

    A SystemExit, so no handler for ordinary errors on the way out of the loop
    can take it for one and go on serving.
    """


def serve(config: BrokerConfig, *, on_ready: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM. `on_ready` is printed to stdout once listening."""
    backend = SharedBackend(config, Catalog(config))
    backend.open()
    try:
        app = create_app(config, backend)
        server = WsgiServer(
            app,
            config.listen.host,
            config.listen.port,
            # The app refuses oversized bodies (an OSB error body); the server
            # hands it no more than one byte over the limit.
            ServerLimits(
                max_requests=config.listen.threads,
                max_connections=max(ServerLimits.max_connections, config.listen.threads),
                max_body_bytes=config.max_request_bytes,
            ),
        )
        received: list[str] = []

        def raise_stop(signum: int, _frame: FrameType | None) -> None:
            received.append(signal.Signals(signum).name)
            raise _Stop(received[-1])

        previous = {s: signal.signal(s, raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        log.info("broker listening on %s:%s", config.listen.host, server.port)
        if on_ready:
            print(on_ready.format(port=server.port), flush=True)
        try:
            server.serve_forever()
        except _Stop:
            pass
        finally:
            log.info("stopping on %s", received[-1] if received else "the server's end")
            server.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        backend.close()
