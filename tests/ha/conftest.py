"""One real pg_auto_failover formation (monitor + two nodes) for the HA tests, healed before each test.

Building a formation costs half a minute (two initdb-sized clusters and a
pg_basebackup), so the tests share one and each starts from "one primary,
one secondary, every process running". The figures the tests measure are
collected and printed at the end of the run.

The HA job tests (test_ha_jobs*.py) use `deployment` instead: the rendered
jobs deployed on "VMs" (tests/ha/ha_jobs_tree.py), one per test module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.ha.ha_jobs_tree import Deployment, MissingTool, deployed, ha_packages
from tests.support.auto_failover import Formation, Server, find_pg_autoctl
from tests.support.ha_writes import PROBE_TABLE, WRITES_TABLE, AppDatabase, create_app_database

APP_DB = "ha_app"
APP_USER = "ha_app"
FIGURES_FILE = Path(__file__).resolve().parents[2] / "build" / "ha" / "figures.json"

_figures: list[dict[str, Any]] = []


# The HA tests' app: its database on the formation (see tests/support/ha_writes.py).
HaApp = AppDatabase


@pytest.fixture(scope="session")
def formation() -> Iterator[Formation]:
    if find_pg_autoctl() is None:
        pytest.skip("pg_autoctl (pg_auto_failover) is not installed; run: make system-packages")
    built = Formation.create()
    try:
        yield built
    finally:
        built.destroy()


@pytest.fixture(scope="session")
def ha_app(formation: Formation) -> HaApp:
    app = create_app_database(formation, APP_DB, APP_USER)
    with psycopg.connect(app.uri, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            f"CREATE TABLE {WRITES_TABLE} (seq bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"
        )
        conn.execute(f"CREATE TABLE {PROBE_TABLE} (id bigserial PRIMARY KEY, node text)")
    return app


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """The HA jobs deployed afresh for each test module that asks, and torn down after it."""
    try:
        packages = ha_packages()
    except MissingTool as exc:
        pytest.skip(f"needs {exc}")
    print(f"HA jobs run with the {packages.origin} packages", flush=True)
    try:
        with deployed(packages) as built:
            yield built
    finally:
        packages.remove()


def reset(formation: Formation, ha_app: HaApp) -> tuple[Server, Server]:
    """Every process running, both nodes settled, the app's tables empty; returns (primary, standby)."""
    primary, standbys = formation.heal()
    with psycopg.connect(ha_app.uri, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"TRUNCATE {WRITES_TABLE}, {PROBE_TABLE}")
    return primary, standbys[0]


@pytest.fixture
def healthy(formation: Formation, ha_app: HaApp) -> Iterator[tuple[Server, Server]]:
    """Yields (primary, standby) of a formation just `reset`."""
    try:
        yield reset(formation, ha_app)
    finally:
        # Leave nothing frozen for the next test, whatever happened in this one.
        for server in (formation.monitor, *formation.nodes):
            server.thaw()


@pytest.fixture
def record_figure(request: pytest.FixtureRequest) -> Any:
    """Record a measured figure with the settings that produced it (printed and saved at the end)."""

    def record(name: str, value: float, **context: Any) -> None:
        _figures.append({"figure": name, "value": round(value, 3), "test": request.node.name, **context})

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _figures:
        return
    terminalreporter.section("HA figures")
    for fig in _figures:
        extra = ", ".join(f"{k}={v}" for k, v in fig.items() if k not in ("figure", "value", "test"))
        terminalreporter.write_line(
            f"{fig['figure']} = {fig['value']}  ({fig['test']}{'; ' + extra if extra else ''})"
        )
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(_figures, indent=2) + "\n")
    terminalreporter.write_line(f"saved to {FIGURES_FILE}")
