"""The errand jobs' templates: register-broker, deregister-broker and smoke-tests.

Each rendered configuration is held to the schema its errand module reads
(postgres_service_broker.errand_config), and each rendered bin/run is really
run against the modules of this checkout, so the jobs and the errands cannot
drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from postgres_service_broker.errand_config import RegistrarConfig, SmokeTestConfig, parse_errand_config
from postgres_service_broker.local_cluster import free_port
from tests.templates.job_inputs import (
    BROKER_PASSWORD,
    CF_CLIENT_SECRET,
    CF_PASSWORD,
    broker_link,
    broker_minimal,
    registrar_minimal,
)
from tests.templates.rendered_checks import assert_no_secret_shown, assert_valid_bash
from tests.templates.renderer import Link, RenderError, job_spec, render_job
from tests.templates.tls_material import make_tls
from tests.templates.vcap_tree import VcapTree

REGISTRAR_YML = "config/registrar.yml"
SMOKE_YML = "config/smoke-tests.yml"


def registrar(rendered: dict[str, str]) -> RegistrarConfig:
    return parse_errand_config(yaml.safe_load(rendered[REGISTRAR_YML]), RegistrarConfig, "registrar")


def smoke(rendered: dict[str, str]) -> SmokeTestConfig:
    return parse_errand_config(yaml.safe_load(rendered[SMOKE_YML]), SmokeTestConfig, "smoke-tests")


def render_register(properties: dict[str, Any], broker: Link | None = None) -> dict[str, str]:
    return render_job("register-broker", properties, links={"broker": broker or broker_link()})


def with_cf(**cf: Any) -> dict[str, Any]:
    props = registrar_minimal()
    props["cf"].update(cf)
    return props


# -- register-broker -----------------------------------------------------------------------


def test_register_defaults_reach_the_broker_at_its_instance_address() -> None:
    config = registrar(render_register(registrar_minimal()))
    assert config.cloud_controller.url == "https://api.sys.example.com"
    assert config.uaa.grant_type == "client_credentials"
    assert config.uaa.client_id == "postgres-service-registrar"
    assert config.uaa.effective_client_secret == CF_CLIENT_SECRET
    assert config.broker.name == "postgres-service"
    assert config.broker.url == "http://10.0.2.20:8080"
    assert config.broker.username == "broker"
    assert config.broker.password is not None
    assert config.broker.password.get_secret_value() == BROKER_PASSWORD
    assert config.visibility.access == "public"
    assert config.skip_ssl_validation is False


def test_register_uses_the_broker_jobs_url_port_and_username_from_the_link() -> None:
    props = broker_minimal()
    props["broker"].update(port=9000, username="platform")
    config = registrar(
        render_register(registrar_minimal(), broker_link(props, addresses=["10.0.2.21", "10.0.2.22"]))
    )
    assert config.broker.url == "http://10.0.2.21:9000"
    assert config.broker.username == "platform"
    props["broker"]["url"] = "https://postgres-broker.sys.example.com"
    config = registrar(render_register(registrar_minimal(), broker_link(props)))
    assert config.broker.url == "https://postgres-broker.sys.example.com"


def test_register_with_every_property_set() -> None:
    ca = make_tls().ca
    props = with_cf(
        uaa_url="https://uaa.sys.example.com",
        skip_ssl_validation=True,
        ca_cert=ca,
        request_timeout_seconds=10,
        job_timeout_seconds=120,
    )
    props["broker"] = {"name": "postgres-shared"}
    props["visibility"] = {
        "access": "organizations",
        "organizations": ["data-team", "sandbox"],
        "plans": ["small"],
    }
    config = registrar(render_register(props))
    assert config.uaa.url == "https://uaa.sys.example.com"
    assert config.skip_ssl_validation is True
    assert config.ca_cert == ca
    assert (config.request_timeout_seconds, config.job_timeout_seconds) == (10, 120)
    assert config.broker.name == "postgres-shared"
    assert config.visibility.access == "organizations"
    assert config.visibility.organizations == ["data-team", "sandbox"]
    assert config.visibility.plans == ["small"]


def test_register_with_an_admin_user_uses_the_password_grant() -> None:
    props = {"cf": {"api_url": "https://api.sys.example.com", "username": "admin", "password": CF_PASSWORD}}
    config = registrar(render_register(props))
    assert config.uaa.grant_type == "password"
    assert config.uaa.username == "admin"
    assert config.uaa.effective_client_id == "cf"
    assert config.uaa.password is not None
    assert config.uaa.password.get_secret_value() == CF_PASSWORD


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        (
            {"cf": {"api_url": "https://api.x"}},
            r"set cf\.client_id and cf\.client_secret .* or cf\.username and cf\.password",
        ),
        ({"cf": {"api_url": "https://api.x", "username": "admin"}}, r"Can't find property 'cf\.password'"),
        ({}, r"Can't find property 'cf\.api_url'"),
        (with_cf(api_url="api.sys.example.com"), r"cf\.api_url must be an http\(s\) URL"),
        (with_cf(uaa_url=42), r"cf\.uaa_url must be a non-empty string"),
        (with_cf(skip_ssl_validation="false"), r"cf\.skip_ssl_validation must be true or false"),
        (with_cf(job_timeout_seconds="10m"), r"cf\.job_timeout_seconds must be a positive number of seconds"),
        (
            {**registrar_minimal(), "visibility": {"access": "everyone"}},
            r"visibility\.access must be one of public",
        ),
        (
            {**registrar_minimal(), "visibility": {"organizations": ["data-team"]}},
            r"visibility\.organizations is only used when visibility\.access is organizations, not public",
        ),
        (
            {**registrar_minimal(), "visibility": {"access": "organizations"}},
            r"visibility\.organizations must name at least one org",
        ),
        (
            {**registrar_minimal(), "visibility": {"access": "organizations", "organizations": "data-team"}},
            r"visibility\.organizations must be a list of names",
        ),
        (
            {**registrar_minimal(), "visibility": {"plans": ["a,b"]}},
            r"visibility\.plans must be a list of names",
        ),
        (
            {**registrar_minimal(), "visibility": {"orgs": ["x"]}},
            r"property 'visibility\.orgs' is not declared",
        ),
    ],
)
def test_register_refuses_bad_input_naming_the_property(properties: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_register(properties)


def test_register_needs_the_broker_link() -> None:
    with pytest.raises(RenderError, match=r"link 'broker' \(type postgres-service-broker\) is required"):
        render_job("register-broker", registrar_minimal(), links={})


def test_a_bad_cf_secret_is_refused_without_being_shown() -> None:
    with pytest.raises(RenderError, match=r"cf\.client_secret must be a non-empty string") as caught:
        render_register(with_cf(client_secret=["cf-Secret-list"]))
    assert "cf-Secret-list" not in str(caught.value)


# -- deregister-broker ---------------------------------------------------------------------


def test_deregister_never_purges_by_default() -> None:
    config = registrar(render_job("deregister-broker", registrar_minimal()))
    assert config.purge is False
    assert config.broker.name == "postgres-service"
    assert job_spec("deregister-broker")["properties"]["purge"]["default"] is False


def test_deregister_purges_only_when_purge_is_literally_true() -> None:
    config = registrar(render_job("deregister-broker", {**registrar_minimal(), "purge": True}))
    assert config.purge is True
    for not_a_boolean in ("true", "yes", 1):
        with pytest.raises(RenderError, match=r"purge must be true or false"):
            render_job("deregister-broker", {**registrar_minimal(), "purge": not_a_boolean})


def test_deregister_with_the_password_grant_and_every_property() -> None:
    props = {
        "cf": {
            "api_url": "https://api.sys.example.com",
            "uaa_url": "https://uaa.sys.example.com",
            "username": "admin",
            "password": CF_PASSWORD,
            "client_id": "cf",
            "job_timeout_seconds": 60,
        },
        "broker": {"name": "postgres-shared"},
    }
    config = registrar(render_job("deregister-broker", props))
    assert (config.uaa.grant_type, config.uaa.client_id, config.broker.name) == (
        "password",
        "cf",
        "postgres-shared",
    )
    assert config.broker.url is None


# -- smoke-tests ---------------------------------------------------------------------------


def test_smoke_tests_default_to_the_brokers_address_and_credentials() -> None:
    config = smoke(render_job("smoke-tests", {}, links={"broker": broker_link()}))
    assert config.broker.url == "http://10.0.2.20:8080"
    assert config.broker.username == "broker"
    assert config.broker.password.get_secret_value() == BROKER_PASSWORD
    assert config.plan is None
    assert config.service_offering is None
    assert config.operation_timeout_seconds == 900


def test_smoke_tests_with_every_property_set() -> None:
    ca = make_tls().ca
    props = {
        "smoke_tests": {
            "service_offering": "postgres",
            "plan": "large",
            "instance_parameters": {"extensions": ["citext"]},
            "operation_timeout_seconds": 120,
            "request_timeout_seconds": 15,
            "skip_ssl_validation": True,
            "ca_cert": ca,
        }
    }
    config = smoke(render_job("smoke-tests", props, links={"broker": broker_link()}))
    assert (config.service_offering, config.plan) == ("postgres", "large")
    assert config.instance_parameters == {"extensions": ["citext"]}
    assert (config.operation_timeout_seconds, config.request_timeout_seconds) == (120, 15)
    assert (config.skip_ssl_validation, config.ca_cert) == (True, ca)


@pytest.mark.parametrize(
    ("smoke_tests", "message"),
    [
        ({"plan": ""}, r"smoke_tests\.plan must be a non-empty string"),
        ({"service_offering": ["postgres"]}, r"smoke_tests\.service_offering must be a non-empty string"),
        (
            {"operation_timeout_seconds": 0},
            r"smoke_tests\.operation_timeout_seconds must be a positive number",
        ),
        ({"instance_parameters": ["citext"]}, r"smoke_tests\.instance_parameters must be a map"),
        ({"skip_ssl_validation": "no"}, r"smoke_tests\.skip_ssl_validation must be true or false"),
        ({"timeout_seconds": 10}, r"property 'smoke_tests\.timeout_seconds' is not declared"),
    ],
)
def test_smoke_tests_refuse_bad_input_naming_the_property(smoke_tests: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_job("smoke-tests", {"smoke_tests": smoke_tests}, links={"broker": broker_link()})


# -- bin/run, really run -------------------------------------------------------------------


@pytest.fixture
def tree() -> Iterator[VcapTree]:
    vcap = VcapTree.create()
    # The broker package is a virtualenv with bin/python; this checkout's is one.
    vcap.link_package("broker", Path(sys.executable).parent.parent)
    yield vcap
    vcap.destroy()


@pytest.mark.parametrize("job", ["register-broker", "deregister-broker", "smoke-tests"])
def test_run_scripts_are_valid_bash(job: str) -> None:
    properties, links = ERRAND_INPUTS[job](9)
    rendered = render_job(job, properties, links=links)
    assert_valid_bash(rendered, "bin/run")


def _registrar_inputs(closed_port: int) -> tuple[dict[str, Any], dict[str, Link]]:
    props = with_cf(api_url=f"http://127.0.0.1:{closed_port}", request_timeout_seconds=5)
    return props, {"broker": broker_link()}


def _deregister_inputs(closed_port: int) -> tuple[dict[str, Any], dict[str, Link]]:
    props, _ = _registrar_inputs(closed_port)
    return props, {}


def _smoke_inputs(closed_port: int) -> tuple[dict[str, Any], dict[str, Link]]:
    broker = broker_minimal()
    broker["broker"]["port"] = closed_port
    props = {"smoke_tests": {"request_timeout_seconds": 5, "operation_timeout_seconds": 5}}
    return props, {"broker": broker_link(broker, addresses=["127.0.0.1"])}


ERRAND_INPUTS = {
    "register-broker": _registrar_inputs,
    "deregister-broker": _deregister_inputs,
    "smoke-tests": _smoke_inputs,
}


@pytest.mark.parametrize("job", ["register-broker", "deregister-broker", "smoke-tests"])
def test_run_starts_the_errand_module_which_accepts_the_rendered_config(tree: VcapTree, job: str) -> None:
    """Nothing listens where the config points, so the errand must get past its configuration and
    fail on the network (exit 1), not refuse its arguments or configuration (exit 2)."""
    properties, links = ERRAND_INPUTS[job](free_port())
    tree.install_job(job, render_job(job, properties, links=links))

    result = tree.run_script(job, "run", timeout=120)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "FAILED" in result.stderr
    assert "configuration" not in result.stderr
    assert_no_secret_shown(output)
