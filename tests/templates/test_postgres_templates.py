"""The postgres job's templates: what they render from defaults and from a full property set, and
what they refuse."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from postgres_service_broker.local_cluster import ClusterError, find_pg_bin
from tests.templates.job_inputs import ADMIN_PASSWORD
from tests.templates.rendered_checks import assert_valid_bash
from tests.templates.renderer import JOBS_DIR, RenderError, render_job
from tests.templates.tls_material import TlsMaterial, make_tls

TLS = make_tls()

# Settings the job sets from its own properties or manages itself; an
# operator must not be able to override them through additional_settings.
MANAGED_SETTINGS = {
    "listen_addresses",
    "port",
    "max_connections",
    "unix_socket_directories",
    "hba_file",
    "ident_file",
    "data_directory",
    "config_file",
    "password_encryption",
    "ssl",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_ca_file",
    "ssl_min_protocol_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "logging_collector",
    "log_destination",
    "log_line_prefix",
    "log_connections",
}


def full_properties(tls: TlsMaterial = TLS) -> dict[str, Any]:
    return {
        "postgres": {
            "port": 6543,
            "listen_addresses": "10.0.1.10",
            "admin_username": "cluster_admin",
            "admin_password": ADMIN_PASSWORD,
            "allowed_networks": ["10.0.0.7/16", "fd00::1/8"],
            "max_connections": 321,
            "shared_buffers": "1GB",
            "work_mem": "16MB",
            "maintenance_work_mem": "256MB",
            "effective_cache_size": "12GB",
            "log_line_prefix": "%m [%p] app=%a ",
            "log_connections": True,
            "additional_settings": {
                "shared_preload_libraries": "pg_stat_statements",
                "log_min_duration_statement": "500ms",
                "random_page_cost": 1.1,
                "autovacuum_max_workers": 5,
                "jit": False,
                "log_statement": "ddl",
                "timezone": "Europe/Berlin",
            },
            "tls": {"certificate": TLS.certificate, "private_key": TLS.private_key, "ca": TLS.ca},
            "startup_timeout_seconds": 120,
            "shutdown_timeout_seconds": 30,
        }
    }


def parse_conf(text: str) -> dict[str, str]:
    """postgresql.conf as name -> value, quotes removed, the way PostgreSQL reads it."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if value.startswith("'") and value.endswith("'"):
            value = value[1:-1].replace("''", "'")
        out[name.strip()] = value
    return out


def hba_rules(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def additional_settings_allow_list() -> dict[str, str]:
    """The allow-list as the template spells it: setting name -> kind (`bool`, `size`, `enum`, ...)."""
    source = (JOBS_DIR / "postgres" / "templates" / "postgresql.conf.erb").read_text()
    block = source.split("# begin additional settings", 1)[1].split("# end additional settings", 1)[0]
    entries = re.findall(r"'([a-z_.]+)' => (:[a-z]+|%w\[[^\]]*\])", block)
    assert entries, "no allow-list found between the markers"
    return {name: ("enum" if kind.startswith("%w") else kind[1:]) for name, kind in entries}


def render_postgres(properties: dict[str, Any]) -> dict[str, str]:
    return render_job("postgres", properties)


@pytest.fixture(scope="module")
def defaults() -> dict[str, str]:
    return render_postgres({"postgres": {"admin_password": ADMIN_PASSWORD}})


@pytest.fixture(scope="module")
def full() -> dict[str, str]:
    return render_postgres(full_properties())


# -- defaults ----------------------------------------------------------------------------


def test_defaults_give_a_conventional_server(defaults: dict[str, str]) -> None:
    conf = parse_conf(defaults["config/postgresql.conf"])
    assert conf["port"] == "5432"
    assert conf["listen_addresses"] == "*"
    assert conf["max_connections"] == "500"
    assert conf["shared_buffers"] == "128MB"
    assert conf["password_encryption"] == "scram-sha-256"
    assert conf["ssl"] == "off"
    assert conf["hba_file"] == "/var/vcap/jobs/postgres/config/pg_hba.conf"
    assert conf["unix_socket_directories"] == "/var/vcap/sys/run/postgres"


def test_hba_allows_only_scram_and_never_trust(defaults: dict[str, str], full: dict[str, str]) -> None:
    for rendered in (defaults, full):
        hba = rendered["config/pg_hba.conf"]
        assert "trust" not in hba
        rules = hba_rules(hba)
        assert rules
        assert {rule[-1] for rule in rules} == {"scram-sha-256"}


def test_hba_without_tls_uses_plain_host_lines_for_every_allowed_network(defaults: dict[str, str]) -> None:
    rules = hba_rules(defaults["config/pg_hba.conf"])
    assert ["local", "all", "all", "scram-sha-256"] in rules
    assert ["host", "all", "all", "0.0.0.0/0", "scram-sha-256"] in rules
    assert ["host", "all", "all", "::/0", "scram-sha-256"] in rules
    assert not [r for r in rules if r[0] == "hostssl"]


def test_bpm_runs_the_server_from_the_package_on_the_persistent_disk(defaults: dict[str, str]) -> None:
    bpm = yaml.safe_load(defaults["config/bpm.yml"])
    [process] = bpm["processes"]
    assert process["name"] == "postgres"
    assert process["executable"] == "/var/vcap/packages/postgres/bin/postgres"
    assert process["args"] == [
        "-D",
        "/var/vcap/store/postgres/data",
        "-c",
        "config_file=/var/vcap/jobs/postgres/config/postgresql.conf",
    ]
    assert process["persistent_disk"] is True
    assert process["shutdown_signal"] == "INT"


def test_the_admin_password_file_holds_exactly_the_password(defaults: dict[str, str]) -> None:
    assert defaults["config/admin_password"] == ADMIN_PASSWORD


def test_the_admin_role_sql_quotes_the_password_as_a_literal(defaults: dict[str, str]) -> None:
    sql = defaults["config/admin_role.sql"]
    lines = sql.strip().splitlines()
    # Single-user mode ends a statement at a newline: one statement per line.
    assert len(lines) == 2
    assert lines[0].startswith("DO $$")
    assert lines[0].endswith("$$;")
    quoted = "'" + ADMIN_PASSWORD.replace("'", "''") + "'"
    attributes = "SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN"
    assert lines[1] == f'ALTER ROLE "pgadmin" WITH {attributes} PASSWORD {quoted};'


def test_no_tls_files_are_rendered_with_content_by_default(defaults: dict[str, str]) -> None:
    assert defaults["config/tls/server.crt"].strip() == ""
    assert defaults["config/tls/server.key"].strip() == ""
    assert "TLS_ENABLED=false" in defaults["bin/env.sh"]


@pytest.mark.parametrize("script", ["bin/pre-start", "bin/post-start", "bin/drain", "bin/env.sh"])
def test_scripts_are_valid_bash(defaults: dict[str, str], full: dict[str, str], script: str) -> None:
    for rendered in (defaults, full):
        assert_valid_bash(rendered, script)


# -- a full property set -------------------------------------------------------------------


def test_every_server_property_lands_in_postgresql_conf(full: dict[str, str]) -> None:
    conf = parse_conf(full["config/postgresql.conf"])
    assert conf["port"] == "6543"
    assert conf["listen_addresses"] == "10.0.1.10"
    assert conf["max_connections"] == "321"
    assert conf["shared_buffers"] == "1GB"
    assert conf["work_mem"] == "16MB"
    assert conf["maintenance_work_mem"] == "256MB"
    assert conf["effective_cache_size"] == "12GB"
    assert conf["log_line_prefix"] == "%m [%p] app=%a "
    assert conf["log_connections"] == "on"


def test_additional_settings_land_with_postgresql_spelling(full: dict[str, str]) -> None:
    conf = parse_conf(full["config/postgresql.conf"])
    assert conf["shared_preload_libraries"] == "pg_stat_statements"
    assert conf["log_min_duration_statement"] == "500ms"
    assert conf["random_page_cost"] == "1.1"
    assert conf["autovacuum_max_workers"] == "5"
    assert conf["jit"] == "off"
    assert conf["log_statement"] == "ddl"
    assert conf["timezone"] == "Europe/Berlin"


def test_tls_turns_on_ssl_and_requires_it_of_remote_clients(full: dict[str, str]) -> None:
    conf = parse_conf(full["config/postgresql.conf"])
    assert conf["ssl"] == "on"
    assert conf["ssl_cert_file"] == "/var/vcap/data/postgres/tls/server.crt"
    assert conf["ssl_key_file"] == "/var/vcap/data/postgres/tls/server.key"
    assert conf["ssl_min_protocol_version"] == "TLSv1.2"
    rules = hba_rules(full["config/pg_hba.conf"])
    remote = [r for r in rules if r[0] in ("host", "hostssl") and not r[3].startswith(("127.", "::1"))]
    assert remote == [
        ["hostssl", "all", "all", "10.0.0.0/16", "scram-sha-256"],
        ["hostssl", "all", "all", "fd00::/8", "scram-sha-256"],
    ]
    assert full["config/tls/server.crt"].strip() == TLS.certificate.strip()
    assert full["config/tls/server.key"].strip() == TLS.private_key.strip()
    assert "TLS_ENABLED=true" in full["bin/env.sh"]


def test_scripts_get_the_port_user_and_timeouts(full: dict[str, str]) -> None:
    env = full["bin/env.sh"]
    assert "PORT=6543\n" in env
    assert "ADMIN_USER=cluster_admin\n" in env
    assert "STARTUP_TIMEOUT_SECONDS=120\n" in env
    assert "SHUTDOWN_TIMEOUT_SECONDS=30\n" in env


def test_secrets_appear_only_in_the_files_meant_to_hold_them(full: dict[str, str]) -> None:
    holders = {
        ADMIN_PASSWORD: {"config/admin_password"},
        ADMIN_PASSWORD.replace("'", "''"): {"config/admin_role.sql"},
        TLS.private_key.strip().splitlines()[1]: {"config/tls/server.key"},
    }
    for secret, allowed in holders.items():
        found = {dest for dest, text in full.items() if secret in text}
        assert found == allowed


def test_bpm_has_no_secret_in_its_args_or_env(full: dict[str, str]) -> None:
    process = yaml.safe_load(full["config/bpm.yml"])["processes"][0]
    exposed = " ".join([*map(str, process["args"]), *map(str, (process.get("env") or {}).values())])
    assert ADMIN_PASSWORD not in exposed
    assert "BEGIN PRIVATE KEY" not in exposed


# -- bad input -------------------------------------------------------------------------------


def with_setting(path: str, value: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"postgres": {"admin_password": ADMIN_PASSWORD}}
    node = props
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return props


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("postgres.port", "5432x", r"postgres\.port must be an integer"),
        ("postgres.port", 70000, r"postgres\.port must be (an integer )?between 1 and 65535"),
        ("postgres.max_connections", "many", r"postgres\.max_connections must be an integer"),
        ("postgres.max_connections", True, r"postgres\.max_connections must be an integer"),
        ("postgres.shared_buffers", 1024, r"postgres\.shared_buffers must be a size with a unit"),
        ("postgres.work_mem", "4 megabytes", r"postgres\.work_mem must be a size with a unit"),
        ("postgres.log_connections", "yes", r"postgres\.log_connections must be true or false"),
        ("postgres.listen_addresses", ["*"], r"postgres\.listen_addresses must be a string"),
        ("postgres.allowed_networks", "10.0.0.0/8", r"postgres\.allowed_networks must be a list"),
        ("postgres.allowed_networks", ["10.0.0.300/8"], r"postgres\.allowed_networks\[0\] must be a CIDR"),
        ("postgres.allowed_networks", ["10.0.0.1"], r"postgres\.allowed_networks\[0\] must be a CIDR"),
        ("postgres.admin_username", "bad-name", r"postgres\.admin_username must be letters"),
        ("postgres.admin_username", 7, r"postgres\.admin_username must be letters"),
        ("postgres.startup_timeout_seconds", "1m", r"postgres\.startup_timeout_seconds must be an integer"),
        ("postgres.shutdown_timeout_seconds", 0, r"postgres\.shutdown_timeout_seconds must be an integer"),
        ("postgres.additional_settings", ["jit"], r"postgres\.additional_settings must be a map"),
        (
            "postgres.additional_settings",
            {"no_such_setting": 1},
            r"postgres\.additional_settings\.no_such_setting is not a setting this job accepts",
        ),
        (
            "postgres.additional_settings",
            {"port": 5433},
            r"postgres\.additional_settings\.port is not a setting this job accepts",
        ),
        (
            "postgres.additional_settings",
            {"jit": "on"},
            r"postgres\.additional_settings\.jit must be true or false",
        ),
        (
            "postgres.additional_settings",
            {"autovacuum_max_workers": 2.5},
            r"postgres\.additional_settings\.autovacuum_max_workers must be an integer",
        ),
        (
            "postgres.additional_settings",
            {"statement_timeout": 3000},
            r"postgres\.additional_settings\.statement_timeout must be a duration with a unit",
        ),
        (
            "postgres.additional_settings",
            {"log_statement": "everything"},
            r"postgres\.additional_settings\.log_statement must be one of none, ddl, mod, all",
        ),
        (
            "postgres.additional_settings",
            {"timezone": "UTC\nport = 1"},
            r"postgres\.additional_settings\.timezone must be a string without control characters",
        ),
        (
            "postgres.tls.certificate",
            TLS.certificate,
            r"postgres\.tls\.certificate and postgres\.tls\.private_key must be given together",
        ),
    ],
)
def test_a_bad_value_fails_rendering_naming_the_property(path: str, value: Any, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_postgres(with_setting(path, value))


def test_a_property_the_spec_does_not_declare_fails_rendering() -> None:
    with pytest.raises(RenderError, match=r"property 'postgres\.max_conections' is not declared"):
        render_postgres(with_setting("postgres.max_conections", 100))


def test_the_admin_password_is_required() -> None:
    with pytest.raises(RenderError, match=r"Can't find property 'postgres\.admin_password'"):
        render_postgres({})


@pytest.mark.parametrize("bad", [123456789, "new\nline-Secret-42", ""])
def test_a_bad_admin_password_is_refused_without_being_shown(bad: Any) -> None:
    with pytest.raises(RenderError, match=r"postgres\.admin_password must") as caught:
        render_postgres(with_setting("postgres.admin_password", bad))
    if bad:
        assert str(bad) not in str(caught.value)
        assert "Secret-42" not in str(caught.value)


def test_a_bad_private_key_is_refused_without_being_shown() -> None:
    props = with_setting("postgres.tls.certificate", TLS.certificate)
    props["postgres"]["tls"]["private_key"] = ["key-Secret-99"]
    with pytest.raises(RenderError, match=r"postgres\.tls\.private_key must be a string") as caught:
        render_postgres(props)
    assert "key-Secret-99" not in str(caught.value)


# -- the allow-list against PostgreSQL itself ---------------------------------------------------

# How each kind of the allow-list shows in `postgres --describe-config`.
DESCRIBED_TYPE = {
    "bool": "BOOLEAN",
    "int": "INTEGER",
    "size": "INTEGER",
    "duration": "INTEGER",
    "real": "REAL",
    "string": "STRING",
    "enum": "ENUM",
}


def test_every_allowed_setting_exists_in_postgresql_15_with_the_kind_the_template_checks() -> None:
    try:
        pg_bin = find_pg_bin()
    except ClusterError as exc:
        pytest.skip(f"needs PostgreSQL 15's server binaries (postgresql-15): {exc}")
    described = subprocess.run(
        [str(pg_bin / "postgres"), "--describe-config"], capture_output=True, text=True, check=True
    ).stdout
    # Setting names ignore case (PostgreSQL lists TimeZone, an operator may write timezone).
    types = {
        line.split("\t")[0].lower(): line.split("\t")[3]
        for line in described.splitlines()
        if line.count("\t") >= 3
    }
    allowed = additional_settings_allow_list()
    assert len(allowed) > 30
    for name, kind in allowed.items():
        assert name in types, f"{name} is not a PostgreSQL 15 setting"
        assert types[name] == DESCRIBED_TYPE[kind], (
            f"{name}: PostgreSQL says {types[name]}, the template {kind}"
        )


def test_no_setting_the_job_manages_is_in_the_allow_list() -> None:
    assert set(additional_settings_allow_list()) & MANAGED_SETTINGS == set()
