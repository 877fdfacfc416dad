"""GET /v2/service_instances/:instance_id - the spec's Fetching a Service Instance table.

The 404 for "a provisioning operation is still in progress" and the 422
ConcurrencyError for "being updated" need a broker mid-operation, so they are
in test_concurrency.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postgres_service_broker import __version__
from tests.contract.osb_expectations import (
    assert_json,
    assert_osb_error,
    deprovision,
    instance_path,
    provisioned,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import LARGE_PLAN, SERVICE_ID, OsbClient, new_id


@pytest.fixture(scope="module")
def instance(broker: BrokerProcess) -> Iterator[str]:
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    ident = provisioned(client, new_id(), plan_id=LARGE_PLAN, parameters={"extensions": ["citext"]})
    yield ident
    assert deprovision(client, ident).status_code == 200


def test_fetch_is_200_with_what_was_provisioned(osb: OsbClient, instance: str) -> None:
    body = assert_json(osb.request("GET", instance_path(instance)), 200)
    assert body["service_id"] == SERVICE_ID
    assert body["plan_id"] == LARGE_PLAN
    assert body["parameters"] == {"extensions": ["citext"]}
    assert body["maintenance_info"] == {"version": __version__}
    assert "dashboard_url" not in body  # the shared plan has no dashboard


def test_fetch_accepts_the_query_hints(osb: OsbClient, instance: str) -> None:
    params = {"service_id": SERVICE_ID, "plan_id": LARGE_PLAN}
    assert (
        assert_json(osb.request("GET", instance_path(instance), params=params), 200)["plan_id"] == LARGE_PLAN
    )


@pytest.mark.parametrize("hint", ["service_id", "plan_id"])
def test_an_empty_query_hint_is_400(osb: OsbClient, instance: str, hint: str) -> None:
    # "If present, MUST be a non-empty string."
    resp = osb.request("GET", instance_path(instance), params={hint: ""})
    assert hint in assert_osb_error(resp, 400, "BadRequest")["description"]


def test_fetch_of_an_unknown_instance_is_404(osb: OsbClient) -> None:
    assert_osb_error(osb.request("GET", instance_path(new_id())), 404, "NotFound")


def test_fetch_of_a_deprovisioned_instance_is_404(osb: OsbClient) -> None:
    gone = provisioned(osb, new_id())
    assert deprovision(osb, gone).status_code == 200
    assert_osb_error(osb.request("GET", instance_path(gone)), 404, "NotFound")


def test_fetch_shows_an_update(osb: OsbClient) -> None:
    ident = provisioned(osb, new_id())
    assert osb.update(ident, plan_id=LARGE_PLAN, parameters={"extensions": ["hstore"]}).status_code == 200
    body = assert_json(osb.request("GET", instance_path(ident)), 200)
    assert (body["plan_id"], body["parameters"]) == (LARGE_PLAN, {"extensions": ["hstore"]})
    assert deprovision(osb, ident).status_code == 200
