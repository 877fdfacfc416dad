"""The HA variant (manifests/operations/ha.yml): its topology, and its jobs rendered from it in HA
mode. The checks every variant gets (declared properties, links, placement) are in
test_manifest_specs.py and test_manifest_templates.py, which include this variant."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.manifests.deployment import Case, cases
from tests.manifests.test_manifest_templates import generated_password, render_all_jobs, resolved
from tests.templates.renderer import ruby
from tests.templates.tls_material import make_tls

HA = next(c for c in cases() if c.name == "ha")


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return HA.render()


def group(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in manifest["instance_groups"] if g["name"] == name)


def test_monitor_and_nodes_spread_over_three_azs(manifest: dict[str, Any]) -> None:
    monitor, nodes = group(manifest, "pg-monitor"), group(manifest, "postgres")
    assert monitor["instances"] == 1
    assert nodes["instances"] == 2
    assert len(nodes["azs"]) == 2
    # Losing any one AZ leaves a majority: the monitor and a node, or both nodes.
    assert not set(monitor["azs"]) & set(nodes["azs"])
    assert set(monitor["azs"]) | set(nodes["azs"]) == {"z1", "z2", "z3"}
    assert group(manifest, "broker")["instances"] == 2


def test_the_monitor_is_deployed_before_the_nodes_one_at_a_time(manifest: dict[str, Any]) -> None:
    names = [g["name"] for g in manifest["instance_groups"]]
    assert names.index("pg-monitor") < names.index("postgres") < names.index("broker")
    # A node's drain hands over to the other node, which must be up: one instance at a time.
    assert manifest["update"]["serial"] is True
    assert manifest["update"]["max_in_flight"] == 1


def test_nodes_consume_the_monitor_and_its_secrets_are_generated(manifest: dict[str, Any]) -> None:
    postgres = next(j for j in group(manifest, "postgres")["jobs"] if j["name"] == "postgres")
    assert postgres["consumes"] == {"pg-monitor": {"from": "pg-monitor"}}
    assert (
        postgres["properties"]["postgres"]["ha"]["replication_password"]
        == "((postgres_replication_password))"
    )
    variables = {v["name"]: v["type"] for v in manifest["variables"]}
    assert variables["pg_monitor_autoctl_node_password"] == "password"
    assert variables["postgres_replication_password"] == "password"


@pytest.mark.skipif(ruby() is None, reason="ruby is not installed; job templates are ERB")
def test_jobs_render_in_ha_mode_from_the_manifest() -> None:
    rendered = render_all_jobs(resolved(Case(HA.name, HA.ops), make_tls("10.0.1.10")))
    keeper = yaml.safe_load(rendered["postgres/postgres"]["config/bpm.yml"])["processes"][0]
    assert keeper["executable"].endswith("/pg_autoctl")
    pgpass = rendered["postgres/postgres"]["config/ha/pgpass"]
    assert generated_password("pg_monitor_autoctl_node_password") in pgpass
    assert generated_password("postgres_replication_password") in pgpass
    # The brokers get both nodes' addresses and reach whichever is primary.
    broker = yaml.safe_load(rendered["broker/broker"]["config/broker.yml"])
    assert len(broker["database"]["host"].split(",")) == 2
    monitor_bpm = yaml.safe_load(rendered["pg-monitor/pg-monitor"]["config/bpm.yml"])
    assert monitor_bpm["processes"][0]["name"] == "pg-monitor"
