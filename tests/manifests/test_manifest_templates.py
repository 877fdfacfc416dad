"""The rendered manifests' properties and links, fed to the release's real job templates: a
manifest the templates would reject at deploy time (a wrong type, a missing link, a secret too
short) fails here. Secrets get test values the way CredHub would generate them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import yaml

from scripts.manifests.opsfile import Operation, apply_ops
from tests.manifests.deployment import JOBS as RELEASE_JOBS
from tests.manifests.deployment import RELEASE, Case, cases, documented_inputs, example_inputs
from tests.templates.renderer import Link, RenderError, render_job, ruby
from tests.templates.tls_material import TlsMaterial, make_tls

CASES = cases()
POSTGRES_ADDRESS = "10.0.1.10"

pytestmark = pytest.mark.skipif(ruby() is None, reason="ruby is not installed; job templates are ERB")


def generated_values(variables: list[dict[str, Any]], tls: TlsMaterial) -> dict[str, Any]:
    """What the config server would generate for each `variables:` entry."""
    values: dict[str, Any] = {}
    for var in variables:
        name = var["name"]
        if var["type"] == "password":
            length = (var.get("options") or {}).get("length", 20)
            # Exactly as long as the generator would make it, so a minimum length the broker
            # enforces (the encryption key's 32) fails here if the manifest asks for too few.
            values[name] = generated_password(name, length)
        elif var["type"] == "certificate" and (var.get("options") or {}).get("is_ca"):
            values[name] = {"ca": tls.ca, "certificate": tls.ca, "private_key": "not-used-by-any-job"}
        elif var["type"] == "certificate":
            values[name] = {"ca": tls.ca, "certificate": tls.certificate, "private_key": tls.private_key}
        else:
            raise AssertionError(f"no test value for a {var['type']} variable ({name})")
    return values


def resolved(case: Case, tls: TlsMaterial) -> dict[str, Any]:
    """The manifest with every variable answered: generated ones and the operator's secret inputs."""
    unresolved = case.render()
    values = generated_values(unresolved.get("variables") or [], tls)
    # The secret inputs (null in inputs.yml) that CredHub or -v would give.
    values |= {name: f"input-{name}" for name in documented_inputs() - set(example_inputs())}
    # strict: a ((variable)) nobody answers would fail the deploy as well.
    return case.render(values, strict=True)


def generated_password(name: str, length: int = 20) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return (digest * (length // len(digest) + 1))[:length]


def link_for(manifest: dict[str, Any], link_type: str) -> Link | None:
    for index, group in enumerate(manifest["instance_groups"]):
        for job in group["jobs"]:
            if job["release"] != RELEASE:
                continue
            spec = yaml.safe_load((RELEASE_JOBS / job["name"] / "spec").read_text())
            if any(p["type"] == link_type for p in spec.get("provides") or []):
                base = POSTGRES_ADDRESS.rsplit(".", 2)[0]
                return Link(
                    addresses=[f"{base}.{index + 1}.{10 + i}" for i in range(group["instances"])],
                    properties=job.get("properties") or {},
                    from_job=job["name"],
                )
    return None


@pytest.fixture(scope="module")
def tls() -> TlsMaterial:
    return make_tls(POSTGRES_ADDRESS)


def render_all_jobs(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for group in manifest["instance_groups"]:
        for job in group["jobs"]:
            if job["release"] != RELEASE:
                continue
            spec = yaml.safe_load((RELEASE_JOBS / job["name"] / "spec").read_text())
            links: dict[str, Link] = {}
            for consumed in spec.get("consumes") or []:
                found = link_for(manifest, consumed["type"])
                if found is not None:
                    links[consumed["name"]] = found
            instance = {
                "name": group["name"],
                "index": 0,
                "az": group["azs"][0],
                "deployment": manifest["name"],
            }
            out[f"{group['name']}/{job['name']}"] = render_job(
                job["name"], job.get("properties"), instance, links
            )
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_job_renders_with_the_manifests_properties(case: Case, tls: TlsMaterial) -> None:
    rendered = render_all_jobs(resolved(case, tls))
    assert {"postgres/postgres", "broker/broker", "smoke-tests/smoke-tests"} <= set(rendered)
    broker = yaml.safe_load(rendered["broker/broker"]["config/broker.yml"])
    # The broker reaches the PostgreSQL group through the link, as the manifest wires it.
    assert broker["database"]["host"].startswith("10.0.")
    assert broker["auth"][0]["password"] == generated_password("broker_password")
    assert broker["encryption_key"] == generated_password("broker_encryption_key", 40)


def by_name(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def test_tls_ops_file_turns_tls_on_end_to_end(tls: TlsMaterial) -> None:
    rendered = render_all_jobs(resolved(by_name("shared+tls"), tls))
    postgres = rendered["postgres/postgres"]
    assert "\nssl = on" in postgres["config/postgresql.conf"]
    assert postgres["config/tls/server.crt"].strip() == tls.certificate.strip()
    # The CA reaches the broker through the link, so it verifies the server.
    assert rendered["broker/broker"]["config/postgres-ca.pem"].strip() == tls.ca.strip()
    assert (
        yaml.safe_load(rendered["broker/broker"]["config/broker.yml"])["database"]["sslmode"] == "verify-ca"
    )


def test_without_tls_the_server_speaks_plain(tls: TlsMaterial) -> None:
    rendered = render_all_jobs(resolved(by_name("shared"), tls))
    assert "\nssl = off" in rendered["postgres/postgres"]["config/postgresql.conf"]


def test_plans_ops_file_reaches_the_broker_catalog(tls: TlsMaterial) -> None:
    rendered = render_all_jobs(resolved(by_name("shared+plans"), tls))
    catalog = yaml.safe_load(rendered["broker/broker"]["config/broker.yml"])["catalog"]
    assert [(p["name"], p["connection_limit"]) for p in catalog["plans"]] == [("small", 10), ("large", 100)]


def test_a_manifest_the_templates_reject_fails_here(tls: TlsMaterial) -> None:
    """What the render test is for: an encryption key shorter than the broker accepts (a `length`
    option lowered in `variables:`) is caught before a deploy is."""
    manifest = resolved(by_name("shared"), tls)
    short = Operation(
        "replace", "/instance_groups/name=broker/jobs/name=broker/properties/broker/encryption_key", "k" * 20
    )
    with pytest.raises(RenderError, match=r"broker\.encryption_key"):
        render_all_jobs(apply_ops(manifest, [short]))
