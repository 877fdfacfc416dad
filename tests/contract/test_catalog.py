"""GET /v2/catalog against the spec's tables: Service Offering, Service Plan, Schemas, Maintenance Info."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from postgres_service_broker import __version__
from tests.contract.osb_expectations import SEMVER, assert_json
from tests.support.osb_client import LARGE_PLAN, SERVICE_ID, SMALL_PLAN, OsbClient

# The spec's "CLI-friendly" names: alphanumerics, periods and hyphens, no spaces.
CLI_FRIENDLY = re.compile(r"[A-Za-z0-9.-]+")
SCHEMA_PLACES = [
    ("service_instance", "create"),
    ("service_instance", "update"),
    ("service_binding", "create"),
]


@pytest.fixture
def catalog(osb: OsbClient) -> dict[str, Any]:
    return assert_json(osb.catalog(), 200)


@pytest.fixture
def service(catalog: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(catalog["services"], list)
    assert len(catalog["services"]) == 1
    return catalog["services"][0]


def non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def test_catalog_is_200_with_a_services_array(osb: OsbClient) -> None:
    body = assert_json(osb.catalog(), 200)
    assert set(body) == {"services"}
    assert [s["id"] for s in body["services"]] == [SERVICE_ID]


def test_service_offering_has_every_required_field(service: dict[str, Any]) -> None:
    for field in ("name", "id", "description"):
        assert non_empty_string(service[field]), field
    assert CLI_FRIENDLY.fullmatch(service["name"])
    assert service["bindable"] is True
    assert isinstance(service["plans"], list)
    assert len(service["plans"]) >= 1


def test_service_offering_declares_the_features_the_broker_serves(service: dict[str, Any]) -> None:
    # Each flag promises an endpoint or a kind of request the other contract tests exercise.
    assert service["instances_retrievable"] is True
    assert service["bindings_retrievable"] is True
    assert service["allow_context_updates"] is True
    assert service["plan_updateable"] is True
    assert "requires" not in service  # no syslog drain, route service or volume mount


def test_service_tags_classify_it_as_postgresql(service: dict[str, Any]) -> None:
    assert all(non_empty_string(t) for t in service["tags"])
    assert {"postgresql", "relational"} <= set(service["tags"])


@pytest.mark.parametrize(
    "field", ["displayName", "longDescription", "providerDisplayName", "documentationUrl", "supportUrl"]
)
def test_service_metadata_has_the_cf_display_fields(service: dict[str, Any], field: str) -> None:
    value = service["metadata"][field]
    assert non_empty_string(value)
    if field.endswith("Url"):
        assert value.startswith("https://")


def test_plans_are_small_and_large_with_unique_ids_and_names(service: dict[str, Any]) -> None:
    plans = service["plans"]
    assert [p["id"] for p in plans] == [SMALL_PLAN, LARGE_PLAN]
    assert len({p["name"] for p in plans}) == len(plans)
    assert SERVICE_ID not in {p["id"] for p in plans}


def test_every_plan_has_every_required_field(service: dict[str, Any]) -> None:
    for plan in service["plans"]:
        for field in ("id", "name", "description"):
            assert non_empty_string(plan[field]), (plan["id"], field)
        assert CLI_FRIENDLY.fullmatch(plan["name"]), plan["name"]
        assert isinstance(plan["free"], bool)
        assert plan.get("bindable", True) is True


def test_every_plan_is_rotatable_and_updateable(service: dict[str, Any]) -> None:
    for plan in service["plans"]:
        assert plan["binding_rotatable"] is True, plan["id"]
        assert plan["plan_updateable"] is True, plan["id"]


def test_every_plan_has_display_metadata_and_bullets(service: dict[str, Any]) -> None:
    for plan in service["plans"]:
        metadata = plan["metadata"]
        assert non_empty_string(metadata["displayName"]), plan["id"]
        assert isinstance(metadata["bullets"], list)
        assert metadata["bullets"], plan["id"]
        assert all(non_empty_string(b) for b in metadata["bullets"]), plan["id"]


def test_every_plan_has_maintenance_info_with_the_product_version(service: dict[str, Any]) -> None:
    for plan in service["plans"]:
        info = plan["maintenance_info"]
        assert info["version"] == __version__, plan["id"]
        assert SEMVER.fullmatch(info["version"]), info["version"]
        assert non_empty_string(info["description"])


@pytest.mark.parametrize(("resource", "action"), SCHEMA_PLACES)
def test_every_plan_has_a_valid_draft4_parameters_schema(
    service: dict[str, Any], resource: str, action: str
) -> None:
    for plan in service["plans"]:
        schema = plan["schemas"][resource][action]["parameters"]
        # The spec's rules for schemas: $schema declared, no external refs, at most 64 kB.
        assert schema["$schema"].startswith("http://json-schema.org/draft-04/schema"), schema
        jsonschema.Draft4Validator.check_schema(schema)
        text = json.dumps(schema)
        assert "$ref" not in text
        assert len(text.encode()) < 64 * 1024
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert schema["properties"], "a schema should say what may be sent"


def test_instance_schema_lists_the_extensions_a_user_may_ask_for(service: dict[str, Any]) -> None:
    schema = service["plans"][0]["schemas"]["service_instance"]["create"]["parameters"]
    extensions = schema["properties"]["extensions"]
    assert extensions["type"] == "array"
    assert "citext" in extensions["items"]["enum"]


def test_binding_schema_offers_read_only_as_a_boolean(service: dict[str, Any]) -> None:
    schema = service["plans"][0]["schemas"]["service_binding"]["create"]["parameters"]
    assert schema["properties"] == {"read_only": schema["properties"]["read_only"]}
    assert schema["properties"]["read_only"]["type"] == "boolean"
