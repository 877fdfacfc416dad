"""`postgres-service-broker ups create|delete` against a real PostgreSQL, run as its console script."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from postgres_service_broker.local_cluster import LocalCluster, free_port
from tests.sample_app.vcap_services import parse_cups_command
from tests.stage1.ups_cli import CLI, admin_env, cluster_objects, run_ups, ups_objects
from tests.support.osb_client import OsbClient, new_id

BROKER_CREDENTIAL_KEYS = {"uri", "jdbcUrl", "hostname", "hosts", "port", "name", "database", "username"}


def unique_name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def connect(creds: dict) -> psycopg.Connection:
    return psycopg.connect(creds["uri"], autocommit=True, connect_timeout=5)


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("postgres-service-broker: ups ")
    return lines[0]


@pytest.fixture
def env(pg_cluster: LocalCluster) -> dict[str, str]:
    return admin_env(pg_cluster)


@pytest.fixture
def created(env: dict[str, str]) -> Iterator[list[str]]:
    """Names to delete after the test, whatever it left."""
    names: list[str] = []
    yield names
    for name in names:
        run_ups("delete", name, env=env)


def test_create_prints_the_cups_command_with_working_credentials(
    env: dict[str, str], created: list[str], admin_conn: psycopg.Connection
) -> None:
    name = unique_name()
    result = run_ups("create", name, env=env)
    created.append(name)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    cups = parse_cups_command(line)
    assert cups.name == name
    assert cups.tags == ["postgresql", "relational"]
    creds = cups.credentials
    assert creds["password"] not in result.stderr
    assert creds["hostname"] == "127.0.0.1"
    assert creds["port"] == int(env["PGPORT"])
    assert creds["uri"].startswith(f"postgres://{creds['username']}:")

    with connect(creds) as conn:
        conn.execute("CREATE TABLE t (x int)")
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 't'").fetchone()[0]
        # A login role that is no more than the instance's owner.
        attrs = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = session_user"
        ).fetchone()
    assert owner == creds["name"] + "_owner"
    assert attrs == (False, False, False)
    # As the broker: nobody but the instance's roles may connect to the database.
    connect_priv = admin_conn.execute(
        "SELECT has_database_privilege('public', %s, 'CONNECT')", (creds["name"],)
    ).fetchone()[0]
    assert connect_priv is False
    limit = admin_conn.execute(
        "SELECT datconnlimit FROM pg_database WHERE datname = %s", (creds["name"],)
    ).fetchone()[0]
    assert limit == 10


def test_credentials_have_the_shape_of_a_broker_binding(
    env: dict[str, str], created: list[str], osb: OsbClient
) -> None:
    name = unique_name()
    result = run_ups("create", name, "--json", env=env)
    created.append(name)
    assert result.returncode == 0, result.stderr
    ups_creds = json.loads(result.stdout)

    instance, binding = new_id(), new_id()
    assert osb.provision(instance).status_code == 201
    try:
        broker_creds = osb.bind(instance, binding).json()["credentials"]
    finally:
        osb.unbind(instance, binding)
        osb.deprovision(instance)
    assert set(ups_creds) == set(broker_creds)
    assert set(ups_creds) >= BROKER_CREDENTIAL_KEYS | {"password"}
    for key in ("hosts", "port", "hostname"):
        assert ups_creds[key] == broker_creds[key]
    assert {k: type(v) for k, v in ups_creds.items()} == {k: type(v) for k, v in broker_creds.items()}


def test_host_and_port_flags_set_what_apps_are_told(env: dict[str, str], created: list[str]) -> None:
    name = unique_name()
    result = run_ups("create", name, "--json", "--host", "db.example.internal", "--port", "6432", env=env)
    created.append(name)
    assert result.returncode == 0, result.stderr
    creds = json.loads(result.stdout)
    assert creds["hosts"] == ["db.example.internal"]
    assert creds["port"] == 6432
    assert creds["uri"].endswith(f"@db.example.internal:6432/{creds['name']}")
    # Loopback addresses earn a note; a real host name does not.
    assert "note:" not in result.stderr


def test_admin_password_from_pgpass_file(
    pg_cluster: LocalCluster, created: list[str], tmp_path: Path
) -> None:
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_cluster.port}:*:{pg_cluster.superuser}:{pg_cluster.password}\n")
    pgpass.chmod(0o600)
    env = admin_env(pg_cluster, PGPASSWORD=None, PGPASSFILE=str(pgpass))
    name = unique_name()
    result = run_ups("create", name, "--json", env=env)
    created.append(name)
    assert result.returncode == 0, result.stderr
    with connect(json.loads(result.stdout)) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "ups_" + name.replace("-", "_")


def test_create_twice_is_an_error_that_changes_nothing(
    env: dict[str, str], created: list[str], admin_conn: psycopg.Connection
) -> None:
    name = unique_name()
    first = run_ups("create", name, "--json", env=env)
    created.append(name)
    assert first.returncode == 0, first.stderr
    creds = json.loads(first.stdout)
    before = cluster_objects(admin_conn)

    second = run_ups("create", name, env=env)
    assert second.returncode == 2
    assert second.stdout == ""
    error = one_line_error(second.stderr)
    assert f"{name} already exists" in error
    assert f"database {creds['name']}" in error
    assert f"role {creds['username']}" in error
    assert f"ups delete {name}" in error
    assert cluster_objects(admin_conn) == before
    with connect(creds) as conn:  # the first password still works: nothing was altered
        conn.execute("SELECT 1")


def test_delete_removes_exactly_what_create_made(env: dict[str, str], admin_conn: psycopg.Connection) -> None:
    name = unique_name()
    before = cluster_objects(admin_conn)
    created = run_ups("create", name, "--json", env=env)
    assert created.returncode == 0, created.stderr
    creds = json.loads(created.stdout)
    made = cluster_objects(admin_conn) - before
    assert made == ups_objects(admin_conn, name)
    assert len(made) == 4  # the database, the owner and reader groups, the login role

    session = connect(creds)  # deletion ends open sessions
    result = run_ups("delete", name, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"deleted {name} on 127.0.0.1:")
    assert cluster_objects(admin_conn) == before
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    with pytest.raises(psycopg.OperationalError):
        connect(creds)


def test_delete_of_an_unknown_name_is_an_error(env: dict[str, str]) -> None:
    result = run_ups("delete", "never-created", env=env)
    assert result.returncode == 2
    assert "nothing named never-created exists" in one_line_error(result.stderr)


INVALID_NAMES = ["My-DB", "1db", "-db", "db_1", "", "a" * 42, "db;drop", "db name", "dé", "db\n"]


@pytest.mark.parametrize(
    ("action", "name"),
    [*(("create", n) for n in INVALID_NAMES), ("delete", "My-DB"), ("delete", "a" * 42)],
)
def test_invalid_names_are_refused_before_connecting(
    pg_cluster: LocalCluster, action: str, name: str
) -> None:
    # An unreachable server: the name is checked first, without any connection.
    env = admin_env(pg_cluster, PGPORT=str(free_port()))
    result = run_ups(action, "--", name, env=env)  # "--": so "-db" is a name, not an option
    assert result.returncode == 2
    assert "invalid name" in one_line_error(result.stderr)


def test_longest_valid_name(env: dict[str, str], created: list[str]) -> None:
    name = "a" + "-9" * 20
    assert len(name) == 41
    result = run_ups("create", name, "--json", env=env)
    created.append(name)
    assert result.returncode == 0, result.stderr


def test_unreachable_server(pg_cluster: LocalCluster, admin_conn: psycopg.Connection) -> None:
    before = cluster_objects(admin_conn)
    result = run_ups("create", unique_name(), env=admin_env(pg_cluster, PGPORT=str(free_port())))
    assert result.returncode == 2
    error = one_line_error(result.stderr)
    assert "cannot connect to PostgreSQL as an administrator" in error
    assert "PGHOST" in error
    assert result.stdout == ""
    assert cluster_objects(admin_conn) == before


def test_wrong_admin_password(pg_cluster: LocalCluster) -> None:
    result = run_ups("create", unique_name(), env=admin_env(pg_cluster, PGPASSWORD="wrong-password"))
    assert result.returncode == 2
    error = one_line_error(result.stderr)
    assert "password authentication failed" in error
    assert "wrong-password" not in error


def test_unix_socket_without_host_flag_is_refused(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection
) -> None:
    before = cluster_objects(admin_conn)
    env = admin_env(pg_cluster, PGHOST=str(pg_cluster.socket_dir))
    result = run_ups("create", unique_name(), env=env)
    assert result.returncode == 2
    assert "Unix socket" in one_line_error(result.stderr)
    assert "--host" in result.stderr
    assert cluster_objects(admin_conn) == before


@pytest.mark.parametrize(
    ("attributes", "missing"),
    [
        ("NOCREATEDB NOCREATEROLE", "CREATEDB and CREATEROLE"),
        ("CREATEDB NOCREATEROLE", "CREATEROLE"),
        ("NOCREATEDB CREATEROLE", "CREATEDB"),
    ],
)
def test_admin_without_privileges_is_refused_before_creating_anything(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection, attributes: str, missing: str
) -> None:
    role = "limited_" + uuid.uuid4().hex[:8]
    admin_conn.execute(f"CREATE ROLE {role} LOGIN {attributes} PASSWORD 'limited-password-1'")
    try:
        before = cluster_objects(admin_conn)
        env = admin_env(pg_cluster, PGUSER=role, PGPASSWORD="limited-password-1")
        result = run_ups("create", unique_name(), env=env)
        assert result.returncode == 2
        error = one_line_error(result.stderr)
        assert f"{role} lacks {missing}:" in error
        assert f"ALTER ROLE {role} CREATEDB CREATEROLE" in error
        assert cluster_objects(admin_conn) == before
    finally:
        admin_conn.execute(f"DROP ROLE {role}")


def test_admin_with_createdb_and_createrole_but_not_superuser(
    pg_cluster: LocalCluster, admin_conn: psycopg.Connection, created: list[str]
) -> None:
    role = "creator_" + uuid.uuid4().hex[:8]
    admin_conn.execute(f"CREATE ROLE {role} LOGIN CREATEDB CREATEROLE PASSWORD 'creator-password-1'")
    env = admin_env(pg_cluster, PGUSER=role, PGPASSWORD="creator-password-1")
    name = unique_name()
    try:
        result = run_ups("create", name, "--json", env=env)
        assert result.returncode == 0, result.stderr
        run_ups("delete", name, env=env)
    finally:
        run_ups("delete", name, env=admin_env(pg_cluster))
        admin_conn.execute(f"DROP OWNED BY {role}")
        admin_conn.execute(f"DROP ROLE {role}")


@pytest.fixture(scope="module")
def failing_cluster() -> Iterator[LocalCluster]:
    """A cluster of its own whose new databases refuse one of the steps `create` takes."""
    cluster = LocalCluster.create(prefix="pgsvc-ups-fail-")
    cluster.start()
    with psycopg.connect(**cluster.conninfo("template1"), autocommit=True) as conn:
        # Databases are copied from template1, event trigger included: the step that
        # runs inside the new database (ALTER DEFAULT PRIVILEGES) fails there.
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS event_trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test''s event trigger'; END $$"
        )
        conn.execute(
            "CREATE EVENT TRIGGER refuse ON ddl_command_start "
            "WHEN TAG IN ('ALTER DEFAULT PRIVILEGES') EXECUTE FUNCTION refuse()"
        )
    yield cluster
    cluster.destroy()


def test_a_step_failing_midway_leaves_nothing_behind(failing_cluster: LocalCluster) -> None:
    with psycopg.connect(**failing_cluster.conninfo(), autocommit=True) as conn:
        before = cluster_objects(conn)
        result = run_ups("create", "half-made", env=admin_env(failing_cluster))
        assert result.returncode == 1
        error = one_line_error(result.stderr)
        assert "could not create half-made" in error
        assert "refused by the test's event trigger" in error
        assert "nothing was left behind" in error
        assert result.stdout == ""
        assert cluster_objects(conn) == before


def test_connection_limit_flag(
    env: dict[str, str], created: list[str], admin_conn: psycopg.Connection
) -> None:
    name = unique_name()
    result = run_ups("create", name, "--json", "--connection-limit", "25", env=env)
    created.append(name)
    assert result.returncode == 0, result.stderr
    database = json.loads(result.stdout)["name"]
    limit = "SELECT datconnlimit FROM pg_database WHERE datname = %s"
    assert admin_conn.execute(limit, (database,)).fetchone()[0] == 25


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--connection-limit", "0"], "invalid --connection-limit 0"),
        (["--port", "70000"], "invalid --port 70000"),
        (["--host", "db.example/x"], "invalid --host 'db.example/x'"),
    ],
)
def test_bad_flag_values_are_refused_before_connecting(
    pg_cluster: LocalCluster, flags: list[str], message: str
) -> None:
    result = run_ups("create", unique_name(), *flags, env=admin_env(pg_cluster, PGPORT=str(free_port())))
    assert result.returncode == 2
    assert message in one_line_error(result.stderr)


def test_delete_leaves_roles_it_did_not_make(
    env: dict[str, str], created: list[str], admin_conn: psycopg.Connection
) -> None:
    name = unique_name()
    assert run_ups("create", name, "--json", env=env).returncode == 0
    created.append(name)
    owner = "ups_" + name.replace("-", "_") + "_owner"
    person = "person_" + uuid.uuid4().hex[:8]
    admin_conn.execute(f"CREATE ROLE {person} LOGIN")
    try:
        admin_conn.execute(f"GRANT {owner} TO {person}")
        before = cluster_objects(admin_conn)
        result = run_ups("delete", name, env=env)
        assert result.returncode == 2
        error = one_line_error(result.stderr)
        assert f"{person} also belong to {name}'s group roles" in error
        assert f"REVOKE {owner}, " in error
        assert cluster_objects(admin_conn) == before

        admin_conn.execute(f"REVOKE {owner} FROM {person}")
        assert run_ups("delete", name, env=env).returncode == 0
        assert ups_objects(admin_conn, name) == set()
        assert f"role {person}" in cluster_objects(admin_conn)
    finally:
        admin_conn.execute(f"DROP ROLE IF EXISTS {person}")


def test_concurrent_creates_of_one_name(
    env: dict[str, str], created: list[str], admin_conn: psycopg.Connection
) -> None:
    name = unique_name()
    created.append(name)
    runs = [
        subprocess.Popen(
            [str(CLI), "ups", "create", name, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        outcomes.append((run.returncode, out, err))
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 2, 2], outcomes
    (winner,) = [out for code, out, _ in outcomes if code == 0]
    assert all("already exists" in err for code, _, err in outcomes if code == 2)
    assert len(ups_objects(admin_conn, name)) == 4
    with connect(json.loads(winner)) as conn:  # the one password that was printed is the one in force
        conn.execute("SELECT 1")
