"""The errands' configuration files: what is accepted, and errors that name the field to fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from postgres_service_broker.config import ConfigError
from postgres_service_broker.errand_config import (
    RegistrarConfig,
    SmokeTestConfig,
    load_errand_config,
    parse_errand_config,
    require_registration_fields,
)
from tests.errands.errand_runner import run_errand, write_config

MINIMAL: dict[str, Any] = {
    "cloud_controller": {"url": "https://api.sys.example.com"},
    "uaa": {"client_id": "registrar", "client_secret": "s3cret-value-Ab1"},
    "broker": {"name": "postgres", "url": "https://broker.example.com/", "username": "u", "password": "p"},
}


def registrar(**changes: Any) -> dict[str, Any]:
    return {**MINIMAL, **changes}


def error_for(doc: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_errand_config(doc, RegistrarConfig, "register-broker")
    return str(info.value)


def test_minimal_registrar_config_has_safe_defaults() -> None:
    config = parse_errand_config(registrar(), RegistrarConfig, "register-broker")
    assert config.purge is False
    assert config.skip_ssl_validation is False
    assert config.visibility.access == "public"
    assert config.broker.url == "https://broker.example.com"
    assert config.uaa.url is None
    assert require_registration_fields(config) == ("https://broker.example.com", "u", "p")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            registrar(uaa={"client_id": "registrar"}),
            "uaa: client_secret required with grant_type client_credentials",
        ),
        (
            registrar(uaa={"grant_type": "password", "username": "admin"}),
            "uaa: password required with grant_type",
        ),
        (registrar(uaa={**MINIMAL["uaa"], "grant_type": "implicit"}), "uaa.grant_type: Input should be"),
        (registrar(visibilty={"access": "admin"}), "visibilty: unknown setting (check the spelling)"),
        (
            registrar(visibility={"access": "organizations"}),
            "visibility: organizations must list at least one",
        ),
        (
            registrar(visibility={"access": "public", "organizations": ["a"]}),
            "visibility: organizations are only used with access: organizations",
        ),
        (
            registrar(visibility={"access": "organizations", "organizations": ["a,b"]}),
            "must not contain a comma",
        ),
        (registrar(purge="true"), "purge: Input should be a valid boolean"),
        (
            registrar(cloud_controller={"url": "https://api.example.com/v3"}),
            "cloud_controller.url: must be the API's root",
        ),
        (
            registrar(broker={**MINIMAL["broker"], "url": "https://u:pw@broker.example.com"}),
            "broker.url: must not contain a user name or password",
        ),
        (
            registrar(broker={**MINIMAL["broker"], "url": "ftp://broker"}),
            "broker.url: must be an http:// or https://",
        ),
        (registrar(job_timeout_seconds=0), "job_timeout_seconds: Input should be greater than 0"),
        ({k: v for k, v in MINIMAL.items() if k != "broker"}, "broker: required"),
        (["not", "a", "mapping"], "the document must be a mapping"),
    ],
)
def test_bad_registrar_config_names_the_field(doc: Any, message: str) -> None:
    assert message in error_for(doc)


def test_errors_never_show_secrets() -> None:
    doc = registrar(uaa={"client_id": "registrar", "client_secret": "s3cret-value-Ab1", "password": "pw-Zq9"})
    message = error_for(doc)
    assert "uaa: username/password are only used with grant_type password" in message
    assert "s3cret-value-Ab1" not in message
    assert "pw-Zq9" not in message


def test_deregistering_needs_only_the_broker_name() -> None:
    config = parse_errand_config(registrar(broker={"name": "postgres"}), RegistrarConfig, "deregister-broker")
    with pytest.raises(
        ConfigError, match=r"broker\.url, broker\.username, broker\.password required to register"
    ):
        require_registration_fields(config)


def test_smoke_test_config_defaults_and_errors() -> None:
    doc = {"broker": {"url": "http://10.0.0.5:8080", "username": "u", "password": "p"}}
    config = parse_errand_config(doc, SmokeTestConfig, "smoke-tests")
    assert (config.plan, config.service_offering, config.instance_parameters) == (None, None, {})
    with pytest.raises(ConfigError, match=r"broker\.password: required"):
        parse_errand_config({"broker": {"url": "http://x", "username": "u"}}, SmokeTestConfig, "smoke-tests")


def test_invalid_yaml_is_reported_by_position_without_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text('broker:\n  password: "leaky-secret-Vb7\n  url: [\n')
    with pytest.raises(ConfigError) as info:
        load_errand_config(path, SmokeTestConfig, "smoke-tests")
    assert "is not valid YAML at line" in str(info.value)
    assert "leaky-secret-Vb7" not in str(info.value)


def test_cli_exits_2_on_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, registrar(uaa={"client_id": "registrar"}))
    result = run_errand("registrar", "register", "--config", str(path))
    assert result.returncode == 2
    assert "register-broker: FAILED: invalid register-broker configuration" in result.stderr
    assert "uaa: client_secret required" in result.stderr

    missing = run_errand("smoke_test", "--config", str(tmp_path / "absent.yml"))
    assert missing.returncode == 2
    assert "cannot read the smoke-tests configuration file" in missing.stderr
