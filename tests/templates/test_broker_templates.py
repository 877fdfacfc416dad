"""The broker job's templates. Its broker.yml is held to the broker's own configuration schema
(postgres_service_broker.config), so the job and the broker cannot drift apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from postgres_service_broker.config import (
    BrokerConfig,
    DatabaseConfig,
    PlanConfig,
    ServiceConfig,
    parse_config,
)
from tests.templates.job_inputs import (
    ADMIN_PASSWORD,
    BROKER_PASSWORD,
    ENCRYPTION_KEY,
    NEXT_BROKER_PASSWORD,
    broker_minimal,
    postgres_link,
    postgres_minimal,
)
from tests.templates.rendered_checks import assert_no_secret_shown
from tests.templates.renderer import Link, RenderError, job_spec, render_job
from tests.templates.tls_material import make_tls

BROKER_YML = "config/broker.yml"

# One plan using every field PlanConfig has: if the broker grows a plan field,
# this fails until the test (and so the job's checks) learn about it.
FULL_PLAN: dict[str, Any] = {
    "id": "7d1f4c2a-0c8e-4b6e-9d55-2a3b4c5d6e7f",
    "name": "medium",
    "description": "A database on the shared cluster, at most 50 connections",
    "connection_limit": 50,
    "free": False,
    "display_name": "Medium",
    "bullets": ["Shared cluster", "Up to 50 connections"],
    "costs": [{"amount": {"usd": 10.0}, "unit": "MONTHLY"}],
}


def full_properties() -> dict[str, Any]:
    return {
        "broker": {
            "port": 9443,
            "threads": 16,
            "username": "platform",
            "password": BROKER_PASSWORD,
            "additional_credentials": [{"username": "platform-next", "password": NEXT_BROKER_PASSWORD}],
            "url": "https://postgres-broker.sys.example.com",
            "encryption_key": ENCRYPTION_KEY,
            "log_level": "DEBUG",
            "lock_timeout_seconds": 7.5,
            "max_request_bytes": 65536,
            "maintenance_version": "2.1.0",
            "database": {
                "admin_database": "postgres",
                "state_database": "broker_state",
                "sslmode": "require",
                "connect_timeout_seconds": 5,
                "pool_size": 12,
                "public_hosts": ["postgres.service.internal"],
                "public_port": 15432,
            },
            "allowed_extensions": ["citext", "pgcrypto"],
            "catalog": {
                "id": "0f4e8e8a-6f4b-4f61-9a55-3d1b2c3d4e5f",
                "name": "postgres-shared",
                "description": "PostgreSQL databases",
                "display_name": "PostgreSQL (shared)",
                "long_description": "One database per instance on a shared cluster.",
                "provider_display_name": "Example Corp",
                "documentation_url": "https://docs.example.com/postgres",
                "support_url": "https://support.example.com",
                "image_url": "data:image/png;base64,iVBORw0KGgo=",
                "tags": ["postgresql", "sql"],
                "plans": [FULL_PLAN],
            },
        }
    }


def render_broker(properties: dict[str, Any], postgres: Link | None = None) -> dict[str, str]:
    return render_job("broker", properties, links={"postgres": postgres or postgres_link()})


def parsed(rendered: dict[str, str]) -> BrokerConfig:
    return parse_config(yaml.safe_load(rendered[BROKER_YML]))


@pytest.fixture(scope="module")
def defaults() -> dict[str, str]:
    return render_broker(broker_minimal())


@pytest.fixture(scope="module")
def full() -> dict[str, str]:
    return render_broker(full_properties())


def test_defaults_render_a_config_the_broker_accepts(defaults: dict[str, str]) -> None:
    config = parsed(defaults)
    assert (config.listen.host, config.listen.port, config.listen.threads) == ("0.0.0.0", 8080, 32)
    assert [(c.username, c.password.get_secret_value()) for c in config.auth] == [("broker", BROKER_PASSWORD)]
    assert config.encryption_key.get_secret_value() == ENCRYPTION_KEY
    assert config.log_level == "INFO"


def test_defaults_leave_the_catalog_and_extensions_to_the_broker(defaults: dict[str, str]) -> None:
    config = parsed(defaults)
    assert config.catalog == ServiceConfig()
    assert config.allowed_extensions == BrokerConfig.model_fields["allowed_extensions"].default


def test_the_database_comes_from_the_postgres_link(defaults: dict[str, str]) -> None:
    db = parsed(defaults).database
    assert db.host == "10.0.1.10"
    assert db.port == 5432
    assert db.user == "pgadmin"
    assert db.password is not None
    assert db.password.get_secret_value() == ADMIN_PASSWORD
    assert db.sslmode == "prefer"
    assert db.sslrootcert is None


def test_the_postgres_jobs_own_properties_reach_the_broker_through_the_link() -> None:
    pg_props = postgres_minimal()
    pg_props["postgres"].update(port=6543, admin_username="cluster_admin")
    link = postgres_link(pg_props, addresses=["10.0.1.10", "10.0.1.11"])
    db = parsed(render_broker(broker_minimal(), link)).database
    assert (db.host, db.port, db.user) == ("10.0.1.10,10.0.1.11", 6543, "cluster_admin")


def test_a_ca_on_the_postgres_link_makes_the_broker_verify_the_server() -> None:
    tls = make_tls()
    pg_props = postgres_minimal()
    pg_props["postgres"]["tls"] = {
        "certificate": tls.certificate,
        "private_key": tls.private_key,
        "ca": tls.ca,
    }
    rendered = render_broker(broker_minimal(), postgres_link(pg_props))
    db = parsed(rendered).database
    assert db.sslmode == "verify-ca"
    assert db.sslrootcert == "/var/vcap/jobs/broker/config/postgres-ca.pem"
    assert rendered["config/postgres-ca.pem"].strip() == tls.ca.strip()
    # The server's private key never reaches the broker.
    assert all(tls.private_key.splitlines()[1] not in text for text in rendered.values())


def test_verifying_the_server_without_a_ca_is_refused() -> None:
    props = broker_minimal()
    props["broker"]["database"] = {"sslmode": "verify-full"}
    with pytest.raises(RenderError, match=r"broker\.database\.sslmode verify-full needs a CA certificate"):
        render_broker(props)


def test_bpm_runs_the_broker_package_with_the_rendered_config_and_no_secrets(full: dict[str, str]) -> None:
    [process] = yaml.safe_load(full["config/bpm.yml"])["processes"]
    assert process["executable"] == "/var/vcap/packages/broker/bin/postgres-service-broker"
    assert process["args"] == ["serve", "--config", "/var/vcap/jobs/broker/config/broker.yml"]
    exposed = " ".join([*process["args"], *map(str, (process.get("env") or {}).values())])
    assert_no_secret_shown(exposed)


def test_every_property_lands_in_the_config(full: dict[str, str]) -> None:
    config = parsed(full)
    assert (config.listen.port, config.listen.threads) == (9443, 16)
    assert [c.username for c in config.auth] == ["platform", "platform-next"]
    assert config.auth[1].password.get_secret_value() == NEXT_BROKER_PASSWORD
    assert (config.log_level, config.lock_timeout_seconds, config.max_request_bytes) == ("DEBUG", 7.5, 65536)
    assert config.maintenance_version == "2.1.0"
    assert config.allowed_extensions == ["citext", "pgcrypto"]
    db = config.database
    assert (db.state_database, db.sslmode, db.connect_timeout, db.pool_size) == (
        "broker_state",
        "require",
        5,
        12,
    )
    assert (db.public_hosts, db.public_port) == (["postgres.service.internal"], 15432)
    catalog = config.catalog
    expected_catalog = {k: v for k, v in full_properties()["broker"]["catalog"].items() if k != "plans"}
    assert catalog.model_dump(exclude={"plans"}) == expected_catalog
    assert [p.model_dump() for p in catalog.plans] == [FULL_PLAN]


def test_the_full_plan_uses_every_plan_field_the_broker_knows() -> None:
    assert set(FULL_PLAN) == set(PlanConfig.model_fields)


def test_every_catalog_field_of_the_broker_is_a_property_of_the_job() -> None:
    properties = job_spec("broker")["properties"]
    for field in ServiceConfig.model_fields:
        assert f"broker.catalog.{field}" in properties, (
            f"the broker's catalog.{field} cannot be set from BOSH"
        )


def test_every_database_setting_comes_from_the_link_or_a_property() -> None:
    properties = job_spec("broker")["properties"]
    from_link = {"host", "port", "user", "password", "sslrootcert"}
    renamed = {"connect_timeout": "connect_timeout_seconds"}
    for field in DatabaseConfig.model_fields:
        if field not in from_link:
            assert f"broker.database.{renamed.get(field, field)}" in properties, field


def test_secrets_appear_only_in_the_config_file(full: dict[str, str]) -> None:
    for secret in (BROKER_PASSWORD, NEXT_BROKER_PASSWORD, ENCRYPTION_KEY, ADMIN_PASSWORD):
        # As written, or as JSON escapes it (the admin password has a backslash).
        forms = (secret, json.dumps(secret)[1:-1])
        assert {dest for dest, text in full.items() if any(f in text for f in forms)} == {BROKER_YML}


def test_the_brokers_own_check_config_command_accepts_the_rendered_file(
    full: dict[str, str], tmp_path: Path
) -> None:
    config_file = tmp_path / "broker.yml"
    config_file.write_text(full[BROKER_YML])
    cli = Path(sys.executable).with_name("postgres-service-broker")
    result = subprocess.run(
        [str(cli), "check-config", "--config", str(config_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


# -- bad input -------------------------------------------------------------------------------


def with_broker(**settings: Any) -> dict[str, Any]:
    props = broker_minimal()
    props["broker"].update(settings)
    return props


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": "80a"}, r"broker\.port must be an integer"),
        ({"threads": 0}, r"broker\.threads must be between 1 and 256"),
        ({"username": ""}, r"broker\.username must be a non-empty string"),
        ({"log_level": "TRACE"}, r"broker\.log_level must be one of DEBUG, INFO, WARNING, ERROR"),
        ({"lock_timeout_seconds": "15s"}, r"broker\.lock_timeout_seconds must be a number"),
        ({"max_request_bytes": 1.5}, r"broker\.max_request_bytes must be an integer"),
        ({"allowed_extensions": "citext"}, r"broker\.allowed_extensions must be a list of non-empty strings"),
        ({"additional_credentials": {"username": "x"}}, r"broker\.additional_credentials must be a list"),
        (
            {"additional_credentials": [{"username": "next", "pasword": "long-enough-1"}]},
            r"broker\.additional_credentials\[0\]\.pasword is not a known setting",
        ),
        (
            {"additional_credentials": [{"username": "next"}]},
            r"broker\.additional_credentials\[0\]\.password is required",
        ),
        ({"database": {"pool_size": "many"}}, r"broker\.database\.pool_size must be an integer"),
        (
            {"database": {"sslmode": "verify"}},
            r"broker\.database\.sslmode must be empty \(automatic\) or one of",
        ),
        ({"database": {"public_hosts": "db.internal"}}, r"broker\.database\.public_hosts must be a list"),
        ({"database": {"public_port": "5432"}}, r"broker\.database\.public_port must be an integer"),
        ({"catalog": {"tags": "sql"}}, r"broker\.catalog\.tags must be a list of non-empty strings"),
        ({"catalog": {"plans": []}}, r"broker\.catalog\.plans must be a non-empty list of plans"),
        ({"catalog": {"plans": ["small"]}}, r"broker\.catalog\.plans\[0\] must be a map"),
        (
            {"catalog": {"plans": [{**FULL_PLAN, "conection_limit": 5}]}},
            r"broker\.catalog\.plans\[0\]\.conection_limit is not a known setting",
        ),
        (
            {"catalog": {"plans": [{**FULL_PLAN, "connection_limit": "50"}]}},
            r"broker\.catalog\.plans\[0\]\.connection_limit must be an integer",
        ),
        (
            {"catalog": {"plans": [{k: v for k, v in FULL_PLAN.items() if k != "id"}]}},
            r"broker\.catalog\.plans\[0\]\.id is required",
        ),
        (
            {"catalog": {"plans": [{**FULL_PLAN, "free": "no"}]}},
            r"broker\.catalog\.plans\[0\]\.free must be true",
        ),
        (
            {"catalog": {"plans": [{**FULL_PLAN, "costs": {"usd": 1}}]}},
            r"broker\.catalog\.plans\[0\]\.costs must be a list",
        ),
    ],
)
def test_a_bad_value_fails_rendering_naming_the_property(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_broker(with_broker(**settings))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"password": "Secret7"}, r"broker\.password must be at least 8 characters"),
        ({"password": 12345678}, r"broker\.password must be a string"),
        ({"encryption_key": "too-short-Secret"}, r"broker\.encryption_key must be at least 32 characters"),
        (
            {"additional_credentials": [{"username": "next", "password": "sh-Sec1"}]},
            r"broker\.additional_credentials\[0\]\.password must be at least 8 characters",
        ),
        (
            {"additional_credentials": ["next:long-enough-Secret"]},
            r"broker\.additional_credentials\[0\] must be a map\)",
        ),
        (
            {"additional_credentials": {"username": "next", "password": "long-enough-Secret"}},
            r"broker\.additional_credentials must be a list of \{username, password\} maps",
        ),
    ],
)
def test_a_bad_secret_is_refused_without_being_shown(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message) as caught:
        render_broker(with_broker(**settings))
    shown = str(caught.value)
    for secret in ("Secret", "sh-Sec1", "12345678"):
        assert secret not in shown


def test_an_undeclared_property_fails_rendering() -> None:
    props = broker_minimal()
    props["broker"]["catalog"] = {"plan": []}
    with pytest.raises(RenderError, match=r"property 'broker\.catalog\.plan' is not declared"):
        render_broker(props)


def test_the_postgres_link_is_required() -> None:
    with pytest.raises(RenderError, match=r"link 'postgres' \(type postgres\) is required"):
        render_job("broker", broker_minimal(), links={})


def test_the_password_and_encryption_key_are_required() -> None:
    with pytest.raises(RenderError, match=r"Can't find property 'broker\.password'"):
        render_broker({"broker": {"encryption_key": ENCRYPTION_KEY}})
    with pytest.raises(RenderError, match=r"Can't find property 'broker\.encryption_key'"):
        render_broker({"broker": {"password": BROKER_PASSWORD}})
