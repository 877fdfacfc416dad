"""Ids no Cloud Controller sends but any client can: SQL, quotes, unicode, 1000 characters, NUL, 10 KB.

The spec puts "no restriction on the set of characters" in ids, so every one
of these must either work end to end - with a database and role named by a
hash, never by the id - or be refused with a 400 that leaves nothing behind.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from postgres_service_broker.backends.shared_names import InstanceNames, binding_role
from postgres_service_broker.local_cluster import LocalCluster
from postgres_service_broker.osb.request_validation import MAX_ID_LENGTH
from tests.contract.osb_expectations import (
    ClusterProbe,
    assert_empty_object,
    assert_json,
    assert_osb_error,
    bind_body,
    binding_path,
    can_connect,
    deprovision,
    instance_path,
    provision_body,
    put_binding,
    put_instance,
    unbind,
)
from tests.support.broker_process import BROKER_PASSWORD, BROKER_USER, BrokerProcess
from tests.support.osb_client import OsbClient, new_id

HASHED_DATABASE = re.compile(r"cf_h[0-9a-f]{40}")
HASHED_ROLE = re.compile(r"cf_b_h[0-9a-f]{40}")


def unique(text: str) -> str:
    """The hostile text with a short random tail, so reruns and parallel tests never share an id."""
    return f"{text}-{uuid.uuid4().hex[:8]}"


HOSTILE = {
    "sql-injection": "x'; DROP DATABASE postgres; --",
    "double-quotes": '"quoted" "ident"',
    "backslashes": "a\\b\\\\c\\'",
    "emoji": "🐘💥🔥",
    "right-to-left": "\u202eevil\u05d0\u05d1\u0627\u0644",
    "combining-marks": "e\u0301\u0308\u20dd\u0336",
    "zero-width": "a\u200bb\u200dc\ufeff",
    "url-reserved": "a?c#d&e=f%20g;h+i:j@k[l]",
    "newline-and-tab": "line1\nline2\ttab\r",
    "whitespace": "   ",
    "looks-like-a-guid-but-upper": str(uuid.uuid4()).upper(),
}


def lifecycle(osb: OsbClient, probe: ClusterProbe, instance: str, binding: str) -> None:
    """Provision, fetch, poll, bind, use, fetch the binding, unbind, deprovision - and nothing left."""
    assert_json(put_instance(osb, instance, json=provision_body()), 201)
    assert_json(put_instance(osb, instance, json=provision_body()), 200)
    assert assert_json(osb.request("GET", instance_path(instance)), 200)["parameters"] == {}
    assert assert_json(osb.request("GET", instance_path(instance) + "/last_operation"), 200) == {
        "state": "succeeded"
    }

    creds = assert_json(put_binding(osb, instance, binding, json=bind_body()), 201)["credentials"]
    names = InstanceNames.for_instance(instance)
    assert creds["name"] == names.database
    assert creds["username"] == binding_role(binding)
    assert can_connect(creds)
    fetched = assert_json(osb.request("GET", binding_path(instance, binding)), 200)
    assert fetched["credentials"] == creds
    polled = osb.request("GET", binding_path(instance, binding) + "/last_operation")
    assert assert_json(polled, 200) == {"state": "succeeded"}

    assert_empty_object(unbind(osb, instance, binding), 200)
    assert not can_connect(creds)
    assert_empty_object(deprovision(osb, instance), 200)
    assert_empty_object(deprovision(osb, instance), 410)
    probe.assert_no_instance(instance)
    probe.assert_no_binding(binding)


# Instance ids get the whole lifecycle (each costs a CREATE and a DROP DATABASE) ...
INSTANCE_CASES = [
    "sql-injection",
    "double-quotes",
    "emoji",
    "right-to-left",
    "combining-marks",
    "newline-and-tab",
    "looks-like-a-guid-but-upper",
]


@pytest.mark.parametrize("case", INSTANCE_CASES)
def test_hostile_instance_and_binding_ids_work_end_to_end(
    osb: OsbClient, pg_cluster: LocalCluster, case: str
) -> None:
    instance, binding = unique(HOSTILE[case]), unique(HOSTILE[case] + "-binding")
    probe = ClusterProbe(pg_cluster)
    lifecycle(osb, probe, instance, binding)
    # The id reached no identifier: the names are hashes of it.
    assert HASHED_DATABASE.fullmatch(InstanceNames.for_instance(instance).database)
    assert HASHED_ROLE.fullmatch(binding_role(binding))
    assert probe.database_exists("postgres")


@pytest.fixture(scope="module")
def instance(broker: BrokerProcess) -> Iterator[str]:
    client = OsbClient(broker.url, BROKER_USER, BROKER_PASSWORD)
    ident = new_id()
    assert put_instance(client, ident, json=provision_body()).status_code == 201
    yield ident
    assert deprovision(client, ident).status_code == 200


# ... and every hostile text is a binding id on one instance.
@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_binding_ids_work_end_to_end(
    osb: OsbClient, pg_cluster: LocalCluster, instance: str, text: str
) -> None:
    binding = unique(text)
    creds = assert_json(put_binding(osb, instance, binding, json=bind_body()), 201)["credentials"]
    assert creds["username"] == binding_role(binding)
    assert HASHED_ROLE.fullmatch(creds["username"])
    assert can_connect(creds)
    assert assert_json(put_binding(osb, instance, binding, json=bind_body()), 200)["credentials"] == creds
    assert assert_json(osb.request("GET", binding_path(instance, binding)), 200)["credentials"] == creds
    polled = osb.request("GET", binding_path(instance, binding) + "/last_operation")
    assert assert_json(polled, 200) == {"state": "succeeded"}
    assert_empty_object(unbind(osb, instance, binding), 200)
    assert_empty_object(unbind(osb, instance, binding), 410)
    assert not can_connect(creds)
    ClusterProbe(pg_cluster).assert_no_binding(binding)


def test_a_hostile_id_in_the_broker_log_is_escaped(osb: OsbClient, broker: BrokerProcess) -> None:
    # A newline in an id must not forge a second log line.
    marker = uuid.uuid4().hex
    instance = f"x\n2099-01-01 INFO postgres_service_broker.audit: forged {marker}"
    assert_osb_error(osb.request("GET", instance_path(instance)), 404, "NotFound")
    lines = [line for line in broker.wait_for_log(marker).splitlines() if marker in line]
    assert len(lines) == 1
    assert "\\n2099-01-01" in lines[0]


@pytest.mark.parametrize("length", [1000, MAX_ID_LENGTH], ids=["1000", "max"])
def test_long_ids_work_end_to_end(osb: OsbClient, pg_cluster: LocalCluster, length: int) -> None:
    tail = uuid.uuid4().hex
    instance = ("ж" * length)[: length - len(tail)] + tail
    binding = ("b" * length)[: length - len(tail)] + tail
    assert len(instance) == len(binding) == length
    lifecycle(osb, ClusterProbe(pg_cluster), instance, binding)


# -- refused ids ---------------------------------------------------------------------

REFUSED = {
    "10-kilobytes": "i" * 10 * 1024,
    "one-over-the-limit": "i" * (MAX_ID_LENGTH + 1),
    "nul": "abc\x00def",
    "only-nul": "\x00",
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_instance_id_is_400_and_creates_nothing(
    osb: OsbClient, pg_cluster: LocalCluster, text: str
) -> None:
    error = assert_osb_error(put_instance(osb, text, json=provision_body()), 400, "BadRequest")
    assert "instance_id" in error["description"]
    ClusterProbe(pg_cluster).assert_no_instance(text)


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_binding_id_is_400_and_creates_nothing(
    osb: OsbClient, pg_cluster: LocalCluster, instance: str, text: str
) -> None:
    error = assert_osb_error(put_binding(osb, instance, text, json=bind_body()), 400, "BadRequest")
    assert "binding_id" in error["description"]
    ClusterProbe(pg_cluster).assert_no_binding(text)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/last_operation"), ("PATCH", ""), ("DELETE", "")],
    ids=["fetch", "last-operation", "update", "deprovision"],
)
def test_a_nul_in_the_id_is_400_on_every_instance_route(osb: OsbClient, method: str, suffix: str) -> None:
    path = "/v2/service_instances/abc%00def" + suffix
    resp = osb.request(method, path, json={"service_id": "x"}, params={"service_id": "s", "plan_id": "p"})
    assert "NUL" in assert_osb_error(resp, 400, "BadRequest")["description"]


def test_an_id_with_a_slash_is_400_and_creates_nothing(osb: OsbClient, pg_cluster: LocalCluster) -> None:
    # The WSGI server decodes %2F before routing; the broker says why rather than "no such endpoint".
    instance = unique("tenant/db")
    resp = put_instance(osb, instance, json=provision_body())
    assert "'/'" in assert_osb_error(resp, 400, "BadRequest")["description"]
    ClusterProbe(pg_cluster).assert_no_instance(instance)


@pytest.mark.parametrize(
    "encoded", ["abc%FFdef", "%C3", "%ED%A0%80", "%C0%AF"], ids=["ff", "truncated", "surrogate", "overlong"]
)
def test_an_id_that_is_not_utf8_is_400_and_creates_nothing(
    osb: OsbClient, pg_cluster: LocalCluster, encoded: str
) -> None:
    # Decoding these bytes leniently would give U+FFFD, so different ids would name one instance.
    resp = osb.request("PUT", f"/v2/service_instances/{encoded}", json=provision_body())
    assert "UTF-8" in assert_osb_error(resp, 400, "BadRequest")["description"]
    probe = ClusterProbe(pg_cluster)
    for lenient in ("abc\ufffddef", "\ufffd", "\ufffd\ufffd\ufffd", "\ufffd\ufffd"):
        probe.assert_no_instance(lenient)
