"""Start-up: find the binding, log what was found (or why nothing was), serve on $PORT until SIGTERM.

The app starts even without a usable binding, because Cloud Foundry restarts
an app that exits and the reason would scroll away; instead it logs one line
naming the problem and answers 503 on ``/health`` with the same reason.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType

from postgres_sample_app.rows import RowStore, conninfo_from_credentials
from postgres_sample_app.vcap import BindingProblem, find_postgres
from postgres_sample_app.web import AppState, create_server

log = logging.getLogger("postgres_sample_app")
DEFAULT_PORT = 8080
# Cloud Foundry routes to the container's address; tests bind to 127.0.0.1 instead.
DEFAULT_HOST = "0.0.0.0"


def state_from_env(env: Mapping[str, str]) -> AppState:
    """Read VCAP_SERVICES and log one line: the service in use, or the problem."""
    try:
        binding = find_postgres(env.get("VCAP_SERVICES"))
        conninfo = conninfo_from_credentials(binding.credentials)
    except BindingProblem as exc:
        log.error("no usable PostgreSQL binding: %s", exc)
        return AppState(store=None, problem=f"no usable PostgreSQL binding: {exc}")
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"no usable PostgreSQL binding: the credentials cannot be read ({type(exc).__name__})"
        log.error("%s", problem)
        return AppState(store=None, problem=problem)
    log.info(
        "using PostgreSQL service %r (label %r, found by %s)", binding.name, binding.label, binding.found_by
    )
    return AppState(store=RowStore(conninfo))


def _port(env: Mapping[str, str]) -> int:
    raw = env.get("PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"postgres-sample-app: PORT must be a TCP port number, not {raw!r}")
    return int(raw)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="postgres-sample-app %(levelname)s: %(message)s"
    )
    port = _port(env)
    host = env.get("APP_LISTEN_HOST", DEFAULT_HOST)
    state = state_from_env(env)
    server = create_server(state, host, port)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("listening on %s:%s", host, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
