"""The files `cf push` reads: manifests, requirements and runtime.txt of the broker and the test app."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from postgres_service_broker.config import ENV_FIELDS
from tests.sample_app.cf_stand_in import BROKER_DIR, SAMPLE_APP_DIR, read_manifest
from tests.stage2.pins import DEV_LOCK, dependency_closure, read_pins

# The vars the README's vars file sets for `cf push --vars-file`.
BROKER_VARS = {"database_url", "broker_username", "broker_password", "broker_encryption_key"}


def test_broker_manifest() -> None:
    raw = yaml.safe_load((BROKER_DIR / "manifest.yml").read_text())
    (app,) = raw["applications"]
    assert app["buildpacks"] == ["python_buildpack"]
    assert app["command"] == "postgres-service-broker serve"
    assert re.fullmatch(r"\d+M", app["memory"])
    # CF's HTTP health check sends no credentials: /health is the broker's unauthenticated route.
    assert app["health-check-type"] == "http"
    assert app["health-check-http-endpoint"] == "/health"
    # Every value is a ((placeholder)): no secret, no address in the file.
    placeholders = {key: re.fullmatch(r"\(\(([a-z_]+)\)\)", str(value)) for key, value in app["env"].items()}
    assert all(placeholders.values()), app["env"]
    assert {m.group(1) for m in placeholders.values() if m} == BROKER_VARS
    assert set(app["env"]) <= set(ENV_FIELDS)


def test_broker_command_is_the_installed_console_script(tmp_path: Path) -> None:
    # Like cf push, the manifest cannot be read without every var.
    with pytest.raises(ValueError, match="Expected to find variables: broker_encryption_key"):
        read_manifest(BROKER_DIR / "manifest.yml")
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(dict.fromkeys(BROKER_VARS, "x")))
    command = read_manifest(BROKER_DIR / "manifest.yml", vars_file).command
    pyproject = tomllib.loads((BROKER_DIR / "pyproject.toml").read_text())
    assert command.split()[0] in pyproject["project"]["scripts"]


def test_broker_requirements_pin_the_broker_and_every_dependency_as_dev_lock_does() -> None:
    path = BROKER_DIR / "requirements.txt"
    lines = [line.strip() for line in path.read_text().splitlines()]
    assert "." in lines  # the broker itself, from the pushed directory
    pins = read_pins(path)
    assert pins == dependency_closure("postgres-service-broker")
    lock = read_pins(DEV_LOCK)
    assert {name: lock.get(name) for name in pins} == pins


def test_sample_app_requirements_pin_psycopg_and_what_it_needs() -> None:
    pins = read_pins(SAMPLE_APP_DIR / "requirements.txt")
    assert pins == {canonicalize_name("psycopg"): "3.3.9", **dependency_closure("psycopg", ["binary"])}
    lock = read_pins(DEV_LOCK)
    assert {name: lock.get(name) for name in pins} == pins


@pytest.mark.parametrize("app_dir", [BROKER_DIR, SAMPLE_APP_DIR], ids=["broker", "sample-app"])
def test_runtime_txt_names_a_python_the_code_supports(app_dir: Path) -> None:
    text = (app_dir / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+)\.(\d+)\.x", text)
    assert match, text
    requires = tomllib.loads((BROKER_DIR / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(f"{match[1]}.{match[2]}.0") in SpecifierSet(requires)


def test_sample_app_manifest() -> None:
    manifest = read_manifest(SAMPLE_APP_DIR / "manifest.yml")
    assert manifest.buildpacks == ["python_buildpack"]
    assert manifest.command == "python -m postgres_sample_app"
    assert (SAMPLE_APP_DIR / "postgres_sample_app" / "__main__.py").is_file()
    # The app starts before it is bound (and answers 503 on /health then), so CF checks the port.
    assert manifest.health_check_type == "port"
    assert manifest.env == {}
