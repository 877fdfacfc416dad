"""Run the broker: open the backend, serve the OSB app with waitress, close cleanly on a signal."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from waitress.server import create_server

from postgres_service_broker.backends.shared_backend import SharedBackend
from postgres_service_broker.catalog import Catalog
from postgres_service_broker.config import BrokerConfig
from postgres_service_broker.osb.app import create_app

log = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # waitress logs every queue backlog at WARNING; keep it, but not its access chatter.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # Every mutating request writes an audit line. The format above shows no
    # source location, thread or process, so do not gather them for each
    # record: the "Optimization" section of Python's logging HOWTO names these
    # switches (and logging._srcfile, which skips the caller's frame lookup).
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class _Stop(SystemExit):
    """SIGINT or SIGTERM, raised in the main thread, which runs waitress's loop.

    A SystemExit, because the loop hands any other exception raised while it
    serves a connection (closing one, say) to that connection's error handler,
    which logs it and goes on serving: a stop signal landing there was lost.
    SystemExit passes through, and waitress's ``run`` closes the server on it.
    """


def serve(config: BrokerConfig, *, on_ready: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM. `on_ready` is printed to stdout once listening."""
    backend = SharedBackend(config, Catalog(config))
    backend.open()
    try:
        app = create_app(config, backend)
        server = create_server(
            app,
            host=config.listen.host,
            port=config.listen.port,
            threads=config.listen.threads,
            # Let the app, not waitress, refuse oversized bodies, so the answer
            # is an OSB error body; waitress stops only absurd ones.
            max_request_body_size=config.max_request_bytes * 4,
            ident="postgres-service-broker",
            clear_untrusted_proxy_headers=True,
        )
        received: list[str] = []

        def raise_stop(signum: int, _frame: FrameType | None) -> None:
            received.append(signal.Signals(signum).name)
            raise _Stop(received[-1])

        previous = {s: signal.signal(s, raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        log.info("broker listening on %s:%s", config.listen.host, server.effective_port)
        if on_ready:
            print(on_ready.format(port=server.effective_port), flush=True)
        try:
            # Returns once it closed the server on the signal (or raises it, if
            # the signal landed outside its loop).
            server.run()
        except _Stop:
            pass
        finally:
            log.info("stopping on %s", received[-1] if received else "the server's end")
            server.close()
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        backend.close()
