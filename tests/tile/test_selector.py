"""The topology selector, as Ops Manager resolves it (tests/tile/opsman_stand_in.py): each mode runs its
instance groups and no others, and the broker consumes the PostgreSQL nodes of the chosen mode."""

from __future__ import annotations

import zipfile
from typing import Any

import pytest
import yaml

from tests.tile.conftest import BuildTile
from tests.tile.opsman_stand_in import StagedProduct


@pytest.fixture
def metadata(build: BuildTile) -> dict[str, Any]:
    with zipfile.ZipFile(build().path) as archive:
        return yaml.safe_load(archive.read("metadata/postgres-service.yml"))


def _provider_of(product: StagedProduct, alias: str) -> str:
    """The job type whose postgres template provides the link under this alias."""
    for job in product.metadata["job_types"]:
        for template in job["templates"]:
            if "provides" in template and product.resolve(template["provides"])["postgres"]["as"] == alias:
                return str(job["name"])
    raise AssertionError(f"no job type provides a postgres link as '{alias}'")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("single_node", {"pg-monitor": 0, "postgres": 0, "postgres-single": 1, "broker": 2}),
        ("high_availability", {"pg-monitor": 1, "postgres": 2, "postgres-single": 0, "broker": 2}),
    ],
)
def test_each_mode_runs_its_instance_groups(
    metadata: dict[str, Any], mode: str, expected: dict[str, int]
) -> None:
    product = StagedProduct(metadata, {"deployment_mode": mode})
    assert {name: product.instances(name) for name in expected} == expected


@pytest.mark.parametrize("mode", ["single_node", "high_availability"])
def test_the_broker_consumes_the_nodes_of_the_chosen_mode(metadata: dict[str, Any], mode: str) -> None:
    product = StagedProduct(metadata, {"deployment_mode": mode})
    broker = next(j for j in metadata["job_types"] if j["name"] == "broker")
    template = next(t for t in broker["templates"] if t["name"] == "broker")
    alias = product.resolve(template["consumes"])["postgres"]["from"]
    provider = _provider_of(product, alias)
    assert product.instances(provider) > 0
    # The HA nodes find the monitor, which runs in this mode; the single node is told there is none.
    postgres = next(j for j in metadata["job_types"] if j["name"] == provider)
    consumes = product.resolve(next(t for t in postgres["templates"] if t["name"] == "postgres")["consumes"])
    if mode == "high_availability":
        assert consumes == {"pg-monitor": {"from": "pg-monitor"}}
        assert product.instances("pg-monitor") == 1
    else:
        assert consumes == {"pg-monitor": "nil"}


@pytest.mark.parametrize(
    ("tls", "certificate"),
    [
        ("generated", "((postgres_tls.certificate))"),
        ("disabled", ""),
        ("provided", "(( .properties.tls.provided.certificate.cert_pem ))"),
    ],
)
def test_the_tls_selector_fills_the_postgres_tls_properties(
    metadata: dict[str, Any], tls: str, certificate: str
) -> None:
    product = StagedProduct(metadata, {"deployment_mode": "high_availability", "tls": tls})
    postgres = next(j for j in metadata["job_types"] if j["name"] == "postgres")
    assert product.resolve(postgres["manifest"])["postgres"]["tls"]["certificate"] == certificate


def test_an_unknown_option_is_refused(metadata: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'both' is not an option of deployment_mode"):
        StagedProduct(metadata, {"deployment_mode": "both"})
