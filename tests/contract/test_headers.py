"""The spec's headers and authentication: basic auth first, then X-Broker-API-Version, identities echoed.

Order matters: an unauthenticated caller learns nothing (not even which API
versions are served or which paths exist), so 401 wins over 412 and 404.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import requests

from postgres_service_broker.local_cluster import LocalCluster
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_json,
    assert_osb_error,
    instance_path,
    provision_body,
)
from tests.support.broker_process import (
    BROKER_PASSWORD,
    BROKER_USER,
    SECOND_PASSWORD,
    SECOND_USER,
    BrokerProcess,
)
from tests.support.osb_client import SERVICE_ID, SMALL_PLAN, OsbClient, new_id

VERSION = {"X-Broker-API-Version": "2.17"}
HINTS = {"service_id": SERVICE_ID, "plan_id": SMALL_PLAN}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# Every OSB endpoint, an unknown path and a wrong method; {i} and {b} become fresh ids.
ROUTES: dict[str, tuple[str, str]] = {
    "catalog": ("GET", "/v2/catalog"),
    "provision": ("PUT", "/v2/service_instances/{i}"),
    "update": ("PATCH", "/v2/service_instances/{i}"),
    "deprovision": ("DELETE", "/v2/service_instances/{i}"),
    "fetch-instance": ("GET", "/v2/service_instances/{i}"),
    "instance-last-operation": ("GET", "/v2/service_instances/{i}/last_operation"),
    "bind": ("PUT", "/v2/service_instances/{i}/service_bindings/{b}"),
    "unbind": ("DELETE", "/v2/service_instances/{i}/service_bindings/{b}"),
    "fetch-binding": ("GET", "/v2/service_instances/{i}/service_bindings/{b}"),
    "binding-last-operation": ("GET", "/v2/service_instances/{i}/service_bindings/{b}/last_operation"),
    "unknown-path": ("GET", "/v2/no-such-endpoint"),
    "root": ("GET", "/"),
    "wrong-method": ("POST", "/v2/catalog"),
}


def send(
    broker: BrokerProcess, method: str, path: str, headers: dict[str, str], **kw: Any
) -> requests.Response:
    return requests.request(method, broker.url + path, headers=headers, timeout=30, **kw)


def send_route(broker: BrokerProcess, route: str, headers: dict[str, str]) -> requests.Response:
    method, template = ROUTES[route]
    path = template.format(i=new_id(), b=new_id())
    return send(
        broker,
        method,
        path,
        headers,
        params=HINTS if method == "DELETE" else None,
        # A body a broker would refuse with 400 if it got that far.
        data=b"[]" if method in ("PUT", "PATCH") else None,
    )


# -- authentication -----------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("with_version", [True, False], ids=["version-sent", "version-missing"])
def test_no_authorization_is_401_with_a_challenge_on_every_route(
    broker: BrokerProcess, route: str, with_version: bool
) -> None:
    resp = send_route(broker, route, dict(VERSION) if with_version else {})
    assert_osb_error(resp, 401, "Unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")


def test_unauthenticated_provision_creates_nothing(broker: BrokerProcess, pg_cluster: LocalCluster) -> None:
    instance = new_id()
    resp = send(broker, "PUT", instance_path(instance), dict(VERSION), json=provision_body())
    assert_osb_error(resp, 401, "Unauthorized")
    ClusterProbe(pg_cluster).assert_no_instance(instance)


BAD_AUTHORIZATION = {
    "wrong-password": basic(BROKER_USER, "not-the-password"),
    "wrong-user": basic("someone-else", BROKER_PASSWORD),
    "password-of-the-other-credential": basic(BROKER_USER, SECOND_PASSWORD),
    "password-prefix": basic(BROKER_USER, BROKER_PASSWORD[:-1]),
    "password-with-extra": basic(BROKER_USER, BROKER_PASSWORD + "x"),
    "empty-user-and-password": basic("", ""),
    "not-base64": "Basic !!!not*base64!!!",
    "base64-without-colon": "Basic " + base64.b64encode(BROKER_USER.encode()).decode(),
    "scheme-only": "Basic",
    "bearer-scheme": "Bearer " + base64.b64encode(f"{BROKER_USER}:{BROKER_PASSWORD}".encode()).decode(),
    "digest-scheme": f'Digest username="{BROKER_USER}", realm="x", response="y"',
    "empty-header": "",
    "invalid-utf8-credentials": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
def test_bad_credentials_are_401(broker: BrokerProcess, authorization: str) -> None:
    resp = send(broker, "GET", "/v2/catalog", {**VERSION, "Authorization": authorization})
    body = assert_osb_error(resp, 401, "Unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    # Nothing of what was sent comes back: the error says what is needed, not what was wrong.
    assert BROKER_PASSWORD[:-1] not in json.dumps(body)
    assert "not-the-password" not in resp.text


@pytest.mark.parametrize(
    ("user", "password"),
    [(BROKER_USER, BROKER_PASSWORD), (SECOND_USER, SECOND_PASSWORD)],
    ids=["first", "second"],
)
def test_every_configured_credential_is_accepted(broker: BrokerProcess, user: str, password: str) -> None:
    resp = send(broker, "GET", "/v2/catalog", {**VERSION, "Authorization": basic(user, password)})
    assert assert_json(resp, 200)["services"]


def test_the_second_credential_can_provision(broker: BrokerProcess, pg_cluster: LocalCluster) -> None:
    client = OsbClient(broker.url, SECOND_USER, SECOND_PASSWORD)
    instance = new_id()
    assert_json(client.provision(instance), 201)
    ClusterProbe(pg_cluster).assert_instance_ready(instance)
    assert_json(client.deprovision(instance), 200)


def test_the_scheme_name_is_case_insensitive(broker: BrokerProcess) -> None:
    # RFC 9110 section 11.1: auth-scheme names are case-insensitive.
    authorization = basic(BROKER_USER, BROKER_PASSWORD).replace("Basic", "bAsIc", 1)
    resp = send(broker, "GET", "/v2/catalog", {**VERSION, "Authorization": authorization})
    assert_json(resp, 200)


def test_health_needs_no_credentials(broker: BrokerProcess) -> None:
    # The one unauthenticated path: load balancers and monit probe it. It reveals no catalog.
    body = assert_json(requests.get(broker.url + "/health", timeout=10), 200)
    assert body["status"] == "ok"
    assert "services" not in body


# -- X-Broker-API-Version -----------------------------------------------------


@pytest.mark.parametrize("version", ["2.12", "3.0", "1.0", "abc", "", "2", "2.", "2.17.1", "v2.17", "2.x"])
def test_unsupported_version_is_412(osb: OsbClient, version: str) -> None:
    resp = osb.request("GET", "/v2/catalog", headers={"X-Broker-API-Version": version})
    body = assert_osb_error(resp, 412, "PreconditionFailed")
    assert "2.17" in body["description"]  # tells the operator what to send instead


def test_missing_version_is_412(broker: BrokerProcess) -> None:
    # The spec allows 400 here; the project chose 412 so every version problem reads the same.
    resp = send(broker, "GET", "/v2/catalog", {"Authorization": basic(BROKER_USER, BROKER_PASSWORD)})
    body = assert_osb_error(resp, 412, "PreconditionFailed")
    assert "missing" in body["description"]


def test_a_request_refused_after_authentication_is_audited_with_its_user(broker: BrokerProcess) -> None:
    # Credentials are checked first, so the audit line of a 412 names who sent it.
    instance = new_id()
    auth = {"Authorization": basic(SECOND_USER, SECOND_PASSWORD)}
    assert_osb_error(send(broker, "DELETE", instance_path(instance), auth), 412, "PreconditionFailed")
    lines = [line for line in broker.wait_for_log(instance).splitlines() if instance in line]
    assert len(lines) == 1
    assert "-> 412" in lines[0]
    assert f'broker_user="{SECOND_USER}"' in lines[0]


def test_version_is_checked_before_the_request_is_acted_on(osb: OsbClient, pg_cluster: LocalCluster) -> None:
    instance = new_id()
    resp = osb.request(
        "PUT", instance_path(instance), json=provision_body(), headers={"X-Broker-API-Version": "2.12"}
    )
    assert_osb_error(resp, 412, "PreconditionFailed")
    ClusterProbe(pg_cluster).assert_no_instance(instance)


@pytest.mark.parametrize("version", ["2.13", "2.14", "2.15", "2.16", "2.17"])
def test_supported_versions_are_served(osb: OsbClient, version: str) -> None:
    resp = osb.request("GET", "/v2/catalog", headers={"X-Broker-API-Version": version})
    assert assert_json(resp, 200)["services"]


@pytest.mark.parametrize("version", ["2.18", "2.99"])
def test_newer_minor_versions_are_served(osb: OsbClient, version: str) -> None:
    # "minor API revisions will always be additive": a platform on a newer 2.x still speaks 2.17.
    resp = osb.request("GET", "/v2/catalog", headers={"X-Broker-API-Version": version})
    assert assert_json(resp, 200)["services"]


# -- X-Broker-API-Request-Identity --------------------------------------------


# (expected status, send credentials, send version header, route)
IDENTITY_CASES: dict[str, tuple[int, bool, bool, str]] = {
    "200-catalog": (200, True, True, "catalog"),
    "404-unknown-instance": (404, True, True, "fetch-instance"),
    "400-bad-body": (400, True, True, "provision"),
    "410-unknown-binding": (410, True, True, "unbind"),
    "401-no-credentials": (401, False, True, "catalog"),
    "412-no-version": (412, True, False, "catalog"),
    "404-unknown-path": (404, True, True, "unknown-path"),
    "405-wrong-method": (405, True, True, "wrong-method"),
}


@pytest.mark.parametrize("case", IDENTITY_CASES)
def test_request_identity_is_echoed_on_success_and_error(broker: BrokerProcess, case: str) -> None:
    status, with_auth, with_version, route = IDENTITY_CASES[case]
    identity = str(uuid.uuid4())
    headers = {"X-Broker-API-Request-Identity": identity}
    if with_auth:
        headers["Authorization"] = basic(BROKER_USER, BROKER_PASSWORD)
    if with_version:
        headers.update(VERSION)
    resp = send_route(broker, route, headers)
    assert resp.status_code == status, resp.text
    assert resp.headers["X-Broker-API-Request-Identity"] == identity


def test_no_request_identity_is_invented_when_none_was_sent(osb: OsbClient) -> None:
    resp = osb.catalog()
    assert resp.status_code == 200
    assert "X-Broker-API-Request-Identity" not in resp.headers


def test_an_overlong_request_identity_is_echoed_truncated(osb: OsbClient) -> None:
    identity = "r" * 5000
    resp = osb.request("GET", "/v2/catalog", headers={"X-Broker-API-Request-Identity": identity})
    assert resp.status_code == 200
    echoed = resp.headers["X-Broker-API-Request-Identity"]
    assert identity.startswith(echoed)
    assert 0 < len(echoed) <= 256


# -- X-Broker-API-Originating-Identity -----------------------------------------


def test_originating_identity_user_is_in_the_audit_log(osb: OsbClient, broker: BrokerProcess) -> None:
    user_id = str(uuid.uuid4())
    value = base64.b64encode(json.dumps({"user_id": user_id}).encode()).decode()
    resp = osb.request(
        "GET", instance_path(new_id()), headers={"X-Broker-API-Originating-Identity": f"cloudfoundry {value}"}
    )
    assert_osb_error(resp, 404, "NotFound")
    broker.wait_for_log(f"cloudfoundry user={user_id}")


@pytest.mark.parametrize(
    "header",
    [
        "cloudfoundry !!!not-base64",
        "cloudfoundry " + base64.b64encode(b"[1, 2]").decode(),
        "cloudfoundry",
        "x",
    ],
    ids=["not-base64", "not-an-object", "platform-only", "garbage"],
)
def test_an_unreadable_originating_identity_does_not_fail_the_request(osb: OsbClient, header: str) -> None:
    # The header is for auditing only; a platform bug there must not block users.
    resp = osb.request("GET", "/v2/catalog", headers={"X-Broker-API-Originating-Identity": header})
    assert assert_json(resp, 200)["services"]
