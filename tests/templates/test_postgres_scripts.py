"""The postgres job's lifecycle scripts, really run: pre-start, the bpm process, post-start, drain.

Each test lays the rendered job out in a /var/vcap-like tree (see vcap_tree.py)
with the locally installed PostgreSQL 15 as its `postgres` package, and runs
the scripts as BOSH would (as root when we are root; the server and its tools
then run as an unprivileged user, as under bpm).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from postgres_service_broker.local_cluster import ClusterError, find_pg_bin, free_port
from tests.templates.job_inputs import ADMIN_PASSWORD
from tests.templates.renderer import render_job
from tests.templates.test_postgres_templates import additional_settings_allow_list
from tests.templates.tls_material import make_tls
from tests.templates.vcap_tree import VcapTree

ROTATED_PASSWORD = "rot'ated\\$pw-Secret-c4d1"
ADMIN = "cluster_admin"


@pytest.fixture(scope="module")
def pg_package() -> Path:
    """The installed PostgreSQL 15, laid out like the postgres package (bin/ under one directory)."""
    try:
        return find_pg_bin().parent
    except ClusterError as exc:
        pytest.skip(f"needs PostgreSQL 15's server binaries (postgresql-15): {exc}")


@pytest.fixture
def tree(pg_package: Path) -> Iterator[VcapTree]:
    vcap = VcapTree.create()
    vcap.link_package("postgres", pg_package)
    vcap.install_bpm_pid_command()
    yield vcap
    vcap.destroy()


def properties(port: int, password: str, **extra: Any) -> dict[str, Any]:
    return {
        "postgres": {
            "port": port,
            "listen_addresses": "127.0.0.1",
            "admin_username": ADMIN,
            "admin_password": password,
            "allowed_networks": ["127.0.0.0/8"],
            "max_connections": 40,
            "shared_buffers": "16MB",
            "startup_timeout_seconds": 60,
            "shutdown_timeout_seconds": 30,
            **extra,
        }
    }


def deploy(tree: VcapTree, props: dict[str, Any]) -> None:
    """What a deploy does on the VM: render, pre-start, start the bpm process, post-start."""
    tree.install_job("postgres", render_job("postgres", props))
    pre = tree.run_script("postgres", "pre-start")
    assert pre.returncode == 0, pre.stdout + pre.stderr
    tree.start_process("postgres", "postgres")
    post = tree.run_script("postgres", "post-start")
    assert post.returncode == 0, post.stdout + post.stderr + tree.log("postgres", "postgres")
    assert "accepting connections" in post.stdout


def drain(tree: VcapTree) -> subprocess.CompletedProcess[str]:
    result = tree.run_script("postgres", "drain", timeout=90)
    assert result.returncode == 0, result.stderr
    return result


def connect(port: int, password: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=ADMIN,
        password=password,
        dbname="postgres",
        autocommit=True,
        **kwargs,
    )


def cluster_state(tree: VcapTree, pg_package: Path) -> str:
    data_dir = tree.path("/var/vcap/store/postgres/data")
    out = subprocess.run(
        [str(pg_package / "bin" / "pg_controldata"), str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.startswith("Database cluster state")
    )


def defaults_of_allowed_settings(conn: psycopg.Connection) -> dict[str, Any]:
    """Each allowed additional setting at PostgreSQL's own default, spelled as the job's property wants it,
    after checking PostgreSQL agrees with the template about the setting's kind."""
    allowed = additional_settings_allow_list()
    rows = conn.execute(
        "SELECT lower(name), vartype, unit, enumvals, boot_val FROM pg_settings WHERE lower(name) = ANY(%s)",
        [list(allowed)],
    ).fetchall()
    assert {row[0] for row in rows} == set(allowed)
    values: dict[str, Any] = {}
    for name, vartype, unit, enumvals, boot in rows:
        kind = allowed[name]
        if kind in ("size", "duration"):
            assert vartype == "integer"
            assert unit, f"{name} has no unit, so it is not a {kind}"
            assert (unit in ("B", "kB", "MB", "8kB")) == (kind == "size"), f"{name}: unit {unit} vs {kind}"
            number = int(boot)
            values[name] = (
                number if number in (-1, 0) else f"{number * 8}kB" if unit == "8kB" else f"{number}{unit}"
            )
        elif kind == "int":
            assert (vartype, unit) == ("integer", None), name
            values[name] = int(boot)
        elif kind == "real":
            assert vartype == "real", name
            values[name] = float(boot)
        elif kind == "bool":
            assert vartype == "bool", name
            values[name] = boot == "on"
        elif kind == "enum":
            assert vartype == "enum", name
            values[name] = boot
        else:
            assert vartype == "string", name
            values[name] = boot
        if kind == "enum":
            source = Path(__file__).resolve().parents[2] / "jobs/postgres/templates/postgresql.conf.erb"
            line = next(li for li in source.read_text().splitlines() if f"'{name}' =>" in li)
            listed = line.split("%w[", 1)[1].split("]", 1)[0].split()
            assert set(listed) <= set(enumvals), f"{name}: {listed} not all in {enumvals}"
    return values


@pytest.mark.slow
def test_a_deploy_initialises_starts_rotates_the_password_and_drains(
    tree: VcapTree, pg_package: Path
) -> None:
    port = free_port()
    tls = make_tls("127.0.0.1")
    tls_props = {"certificate": tls.certificate, "private_key": tls.private_key, "ca": tls.ca}
    extra = {"random_page_cost": 1.5, "log_statement": "ddl"}
    deploy(tree, properties(port, ADMIN_PASSWORD, tls=tls_props, additional_settings=extra))

    data_dir = tree.path("/var/vcap/store/postgres/data")
    assert (data_dir / "PG_VERSION").read_text().strip() == "15"
    # The private key was handed to the server's user, readable by it alone.
    key = tree.path("/var/vcap/data/postgres/tls/server.key")
    assert key.stat().st_mode & 0o077 == 0

    with connect(port, ADMIN_PASSWORD, sslmode="require") as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        assert conn.execute("SHOW max_connections").fetchone() == ("40",)
        assert conn.execute("SHOW random_page_cost").fetchone() == ("1.5",)
        assert conn.execute("SHOW log_statement").fetchone() == ("ddl",)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [ADMIN]).fetchone() == (True,)
        conn.execute("CREATE TABLE survives (note text)")
        conn.execute("INSERT INTO survives VALUES ('written before the restart')")
        every_setting = defaults_of_allowed_settings(conn)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(port, "not-the-password").close()

    # The manifest's password changes: post-start against the running server
    # (still on the old one) says so instead of passing.
    rotated = properties(port, ROTATED_PASSWORD, additional_settings=every_setting)
    tree.install_job("postgres", render_job("postgres", rotated))
    stale = tree.run_script("postgres", "post-start")
    assert stale.returncode != 0
    assert f"role {ADMIN} cannot log in with postgres.admin_password" in stale.stderr
    assert ROTATED_PASSWORD not in stale.stdout + stale.stderr

    result = drain(tree)
    assert result.stdout == "0\n"
    assert "fast shutdown" in result.stderr
    assert tree.processes["postgres/postgres"].wait(timeout=10) == 0
    assert cluster_state(tree, pg_package) == "shut down"

    # Redeploy with the new password, TLS off, and every allowed setting at
    # PostgreSQL's default: PostgreSQL accepts all of them as rendered.
    deploy(tree, rotated)
    with connect(port, ROTATED_PASSWORD) as conn:
        assert conn.execute("SELECT note FROM survives").fetchall() == [("written before the restart",)]
        assert conn.execute("SHOW ssl").fetchone() == ("off",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(port, ADMIN_PASSWORD).close()
    assert not tree.path("/var/vcap/data/postgres/tls").exists()
    assert drain(tree).stdout == "0\n"
    assert cluster_state(tree, pg_package) == "shut down"
    log = tree.log("postgres", "postgres")
    assert ADMIN_PASSWORD not in log
    assert ROTATED_PASSWORD not in log


def test_pre_start_refuses_a_data_directory_of_another_major_version(tree: VcapTree) -> None:
    data_dir = tree.path("/var/vcap/store/postgres/data")
    data_dir.mkdir(parents=True)
    (data_dir / "PG_VERSION").write_text("14\n")
    (data_dir / "base").mkdir()
    tree.install_job("postgres", render_job("postgres", properties(free_port(), ADMIN_PASSWORD)))

    result = tree.run_script("postgres", "pre-start")

    assert result.returncode != 0
    assert "holds a PostgreSQL 14 cluster, but this job runs PostgreSQL 15" in result.stderr
    assert "pg_upgrade" in result.stderr
    assert sorted(p.name for p in data_dir.iterdir()) == ["PG_VERSION", "base"]
    assert (data_dir / "PG_VERSION").read_text() == "14\n"


def test_pre_start_refuses_a_non_empty_directory_that_is_not_a_cluster(tree: VcapTree) -> None:
    data_dir = tree.path("/var/vcap/store/postgres/data")
    data_dir.mkdir(parents=True)
    (data_dir / "somebodys-file").write_text("keep me")
    tree.install_job("postgres", render_job("postgres", properties(free_port(), ADMIN_PASSWORD)))

    result = tree.run_script("postgres", "pre-start")

    assert result.returncode != 0
    assert "has no PG_VERSION file, so it is not a PostgreSQL data directory" in result.stderr
    assert (data_dir / "somebodys-file").read_text() == "keep me"


def test_drain_with_no_server_running_prints_zero_and_nothing_else(tree: VcapTree) -> None:
    tree.install_job("postgres", render_job("postgres", properties(free_port(), ADMIN_PASSWORD)))

    result = drain(tree)

    assert result.stdout == "0\n"


def test_post_start_gives_up_after_the_startup_timeout_with_a_pointer_to_the_log(tree: VcapTree) -> None:
    props = properties(free_port(), ADMIN_PASSWORD, startup_timeout_seconds=1)
    tree.install_job("postgres", render_job("postgres", props))

    result = tree.run_script("postgres", "post-start", timeout=30)

    assert result.returncode != 0
    assert "does not accept connections after 1s" in result.stderr
    assert "postgres.stderr.log" in result.stderr
