"""The stand-in Cloud Controller + UAA answers as the documented v3 API does, so tests on it count."""

from __future__ import annotations

import requests

from tests.errands.errand_runner import CLIENT_ID, CLIENT_SECRET
from tests.support.fake_cloud_controller import StandInCloudFoundry


def token(cf: StandInCloudFoundry) -> str:
    resp = requests.post(
        cf.uaa_url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["token_type"] == "bearer"
    assert doc["expires_in"] > 0
    return doc["access_token"]


def test_uaa_refuses_a_wrong_secret_with_its_error_body(stand_in: StandInCloudFoundry) -> None:
    resp = requests.post(
        stand_in.uaa_url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, "x"),
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json() == {"error": "unauthorized", "error_description": "Bad credentials"}


def test_v3_calls_need_a_valid_bearer_token(stand_in: StandInCloudFoundry) -> None:
    url = stand_in.api_url + "/v3/service_brokers"
    missing = requests.get(url, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["errors"][0] == {
        "code": 10002,
        "title": "CF-NotAuthenticated",
        "detail": "Authentication error",
    }
    bad = requests.get(url, headers={"Authorization": "bearer nonsense"}, timeout=10)
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["title"] == "CF-InvalidAuthToken"
    valid = {"Authorization": f"bearer {token(stand_in)}"}
    assert requests.get(url, headers=valid, timeout=10).status_code == 200
    stand_in.expire_tokens()
    expired = requests.get(url, headers=valid, timeout=10)
    assert expired.status_code == 401
    assert expired.json()["errors"][0]["title"] == "CF-InvalidAuthToken"


def test_lists_paginate_with_next_hrefs_and_check_query_parameters(stand_in: StandInCloudFoundry) -> None:
    for n in range(5):
        stand_in.add_organization(f"org-{n}")
    headers = {"Authorization": f"bearer {token(stand_in)}"}
    url: str | None = stand_in.api_url + "/v3/organizations?per_page=2"
    names, pages = [], []
    while url:
        doc = requests.get(url, headers=headers, timeout=10).json()
        names += [o["name"] for o in doc["resources"]]
        pages.append(doc["pagination"])
        url = doc["pagination"]["next"] and doc["pagination"]["next"]["href"]
    assert names == [f"org-{n}" for n in range(5)]
    assert [p["total_results"] for p in pages] == [5, 5, 5]
    assert pages[0]["total_pages"] == 3
    assert pages[0]["previous"] is None
    assert pages[-1]["next"] is None

    unknown = requests.get(stand_in.api_url + "/v3/organizations?colour=red", headers=headers, timeout=10)
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["title"] == "CF-BadQueryParameter"
    too_many = requests.get(stand_in.api_url + "/v3/organizations?per_page=5001", headers=headers, timeout=10)
    assert too_many.status_code == 400


def test_unknown_routes_and_bad_broker_bodies_get_v3_errors(stand_in: StandInCloudFoundry) -> None:
    headers = {"Authorization": f"bearer {token(stand_in)}"}
    nothing = requests.get(stand_in.api_url + "/v3/no_such_thing", headers=headers, timeout=10)
    assert nothing.status_code == 404
    assert nothing.json()["errors"][0]["title"] == "CF-NotFound"
    bad = requests.post(
        stand_in.api_url + "/v3/service_brokers", json={"name": "x"}, headers=headers, timeout=10
    )
    assert bad.status_code == 422
    error = bad.json()["errors"][0]
    assert error["title"] == "CF-UnprocessableEntity"
    assert "Url can't be blank" in error["detail"]
