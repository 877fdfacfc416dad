"""Configuration: defaults, YAML and environment sources, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from postgres_service_broker import __version__
from postgres_service_broker.config import ConfigError, config_dict_from_env, load_config, parse_config

KEY = "k" * 32


def minimal(**extra: object) -> dict:
    return {"auth": [{"username": "u", "password": "password1"}], "encryption_key": KEY, **extra}


def test_defaults_give_two_plans_and_product_maintenance_version() -> None:
    cfg = parse_config(minimal())
    assert [p.name for p in cfg.catalog.plans] == ["small", "large"]
    assert cfg.catalog.plans[0].connection_limit < cfg.catalog.plans[1].connection_limit
    assert cfg.maintenance_version == __version__
    assert cfg.database.credential_hosts == ["127.0.0.1"]


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "broker.yml"
    path.write_text(
        "auth:\n  - {username: a, password: password-a}\n  - {username: b, password: password-b}\n"
        f"encryption_key: {KEY}\n"
        "database: {host: db.internal, port: 6432, public_hosts: [db1, db2]}\n"
    )
    cfg = load_config(path, {})
    assert [c.username for c in cfg.auth] == ["a", "b"]
    assert cfg.database.port == 6432
    assert cfg.database.credential_hosts == ["db1", "db2"]


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (minimal(database={"port": "not-a-port"}), "database.port"),
        (minimal(database={"prot": 5432}), "database.prot: unknown setting"),
        (minimal(listen={"port": 70000}), "listen.port"),
        ({"auth": [], "encryption_key": KEY}, "auth"),
        (minimal(encryption_key="short"), "encryption_key"),
        (minimal(auth=[{"username": "u", "password": "short"}]), "auth.0.password"),
        (minimal(allowed_extensions=["bad name;"]), "allowed_extensions.0"),
        (minimal(maintenance_version="1.2"), "maintenance_version"),
        (minimal(database={"sslmode": "sometimes"}), "database.sslmode"),
    ],
)
def test_bad_value_names_the_field(doc: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert field in str(err.value)


def test_duplicate_plan_names_are_refused() -> None:
    plan = {"id": "p1", "name": "same", "description": "d", "connection_limit": 5}
    with pytest.raises(ConfigError, match="two plans share the name 'same'"):
        parse_config(minimal(catalog={"plans": [plan, {**plan, "id": "p2"}]}))


def test_secrets_do_not_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(minimal(auth=[{"username": "u", "password": "secret-but-valid"}], listen={"port": 0}))
    assert "secret-but-valid" not in str(err.value)


def test_environment_configuration_for_a_pushed_app() -> None:
    env = {
        "PORT": "9090",
        "BROKER_USERNAME": "cc",
        "BROKER_PASSWORD": "cc-password",
        "BROKER_CREDENTIALS": '[{"username": "next", "password": "next-password"}]',
        "BROKER_ENCRYPTION_KEY": KEY,
        "DATABASE_URL": "postgres://admin:p%40ss@pg.example:5433/postgres?sslmode=require",
        "BROKER_PUBLIC_HOSTS": "pg-a, pg-b",
        "BROKER_ALLOWED_EXTENSIONS": "citext,pgcrypto",
    }
    cfg = load_config(None, env)
    assert cfg.listen.port == 9090
    assert [c.username for c in cfg.auth] == ["cc", "next"]
    assert cfg.database.host == "pg.example"
    assert cfg.database.port == 5433
    assert cfg.database.password is not None
    assert cfg.database.password.get_secret_value() == "p@ss"
    assert cfg.database.sslmode == "require"
    assert cfg.database.credential_hosts == ["pg-a", "pg-b"]
    assert cfg.allowed_extensions == ["citext", "pgcrypto"]


def test_environment_error_names_the_variable() -> None:
    env = {"BROKER_USERNAME": "cc", "BROKER_PASSWORD": "cc-password", "BROKER_ENCRYPTION_KEY": KEY}
    with pytest.raises(ConfigError, match=r"listen\.port.*\(from PORT\)"):
        load_config(None, {**env, "PORT": "eighty"})
    with pytest.raises(ConfigError, match="BROKER_CREDENTIALS: not valid JSON"):
        load_config(None, {**env, "BROKER_CREDENTIALS": "[oops"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        config_dict_from_env({"DATABASE_URL": "mysql://x@y/z"})
    with pytest.raises(ConfigError, match=r"encryption_key.*\(from BROKER_ENCRYPTION_KEY\)"):
        load_config(None, {"BROKER_USERNAME": "cc", "BROKER_PASSWORD": "cc-password"})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "missing.yml", {})
    bad = tmp_path / "bad.yml"
    bad.write_text("auth: [{username: u, password: hunter2-secret}\n")
    with pytest.raises(ConfigError, match="not valid YAML at line") as err:
        load_config(bad, {})
    assert "hunter2-secret" not in str(err.value)  # the parser quotes the line; we must not
    scalar = tmp_path / "scalar.yml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar, {})


def test_several_admin_hosts_become_the_credential_hosts() -> None:
    cfg = parse_config(minimal(database={"host": "node-a, node-b"}))
    assert cfg.database.hosts == ["node-a", "node-b"]
    assert cfg.database.credential_hosts == ["node-a", "node-b"]
