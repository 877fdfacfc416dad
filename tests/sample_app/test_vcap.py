"""How the test app picks its PostgreSQL credentials out of VCAP_SERVICES: tag, then label, then URI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_sample_app.rows import conninfo_from_credentials
from postgres_sample_app.vcap import BindingProblem, find_postgres

from tests.sample_app.vcap_services import brokered_entry, user_provided_entry, vcap_services

PG_URI = "postgres://u:p@db.example:5432/d"


def creds(uri: str = PG_URI) -> dict[str, Any]:
    return {"uri": uri}


def other(label: str, name: str, credentials: dict[str, Any], tags: list[str] | None = None) -> dict:
    return brokered_entry(name, {"name": label, "tags": tags or []}, "basic", credentials)


TAGGED = user_provided_entry("c-tagged", creds("postgres://t:p@tagged:5432/d"), ["postgresql"])
LABELLED = other("postgres", "b-labelled", creds("postgresql://l:p@labelled:5432/d"))
UPS_UNTAGGED = user_provided_entry("d-ups", creds("postgres://n:p@ups:5432/d"), [])
BY_URI = other("elephants", "a-by-uri", creds("postgres://x:p@uri:5432/d"))
MYSQL = user_provided_entry("my-mysql", creds("mysql://u:p@mysql:3306/d"), ["mysql"])


@pytest.mark.parametrize(
    ("entries", "name", "found_by"),
    [
        ([BY_URI, UPS_UNTAGGED, LABELLED, TAGGED, MYSQL], "c-tagged", "tag 'postgresql'"),
        ([BY_URI, UPS_UNTAGGED, LABELLED, MYSQL], "b-labelled", "label 'postgres'"),
        ([BY_URI, UPS_UNTAGGED, MYSQL], "d-ups", "label 'user-provided'"),
        ([BY_URI, MYSQL], "a-by-uri", "postgres:// uri"),
    ],
)
def test_tag_then_label_then_uri(entries: list[dict], name: str, found_by: str) -> None:
    found = find_postgres(vcap_services(*entries))
    assert (found.name, found.found_by) == (name, found_by)


def test_the_order_of_the_listing_does_not_matter() -> None:
    one = user_provided_entry("zeta", creds(), ["postgresql"])
    two = user_provided_entry("alpha", creds(), ["PostgreSQL"])  # tags match in any case
    assert find_postgres(vcap_services(one, two)).name == "alpha"
    assert find_postgres(vcap_services(two, one)).name == "alpha"


def test_a_tagged_service_without_usable_credentials_is_passed_over() -> None:
    broken = user_provided_entry("broken", {"note": "no uri here"}, ["postgresql"])
    assert find_postgres(vcap_services(broken, BY_URI)).name == "a-by-uri"
    with pytest.raises(BindingProblem, match="broken has unusable credentials"):
        find_postgres(vcap_services(broken))


def test_credentials_without_uri_but_with_fields() -> None:
    fields = {"hostname": "db", "port": 5433, "name": "d", "username": "u", "password": "p w'\\"}
    found = find_postgres(vcap_services(user_provided_entry("fields", fields, ["postgresql"])))
    info = psycopg.conninfo.conninfo_to_dict(conninfo_from_credentials(found.credentials))
    assert info == {"host": "db", "port": "5433", "dbname": "d", "user": "u", "password": "p w'\\"}


def test_uri_and_multi_host_credentials_become_a_conninfo() -> None:
    uri = "postgres://u:p@h1:5432,h2:5432/d?target_session_attrs=read-write"
    info = psycopg.conninfo.conninfo_to_dict(conninfo_from_credentials({"uri": uri}))
    assert info["host"] == "h1,h2"
    assert info["target_session_attrs"] == "read-write"
    fields = {"hosts": ["h1", "h2"], "hostname": "h1", "port": 5432, "name": "d", "username": "u"}
    assert psycopg.conninfo.conninfo_to_dict(conninfo_from_credentials(fields))["host"] == "h1,h2"


def test_a_ca_certificate_in_the_credentials_is_written_to_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the file lands in this test's directory
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    info = psycopg.conninfo.conninfo_to_dict(conninfo_from_credentials({"uri": PG_URI, "sslrootcert": pem}))
    assert Path(info["sslrootcert"]).read_text() == pem
    assert Path(info["sslrootcert"]).is_relative_to(tmp_path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "VCAP_SERVICES is not set"),
        ("", "VCAP_SERVICES is not set"),
        ("{not json", "VCAP_SERVICES is not valid JSON"),
        ("[]", "VCAP_SERVICES is malformed"),
        ('{"postgres": {"name": "x"}}', "VCAP_SERVICES is malformed"),
        ("{}", "VCAP_SERVICES lists no services"),
        (json.dumps({"user-provided": [MYSQL]}), r"no PostgreSQL service among .* \(my-mysql\)"),
    ],
)
def test_problems_are_named(value: str | None, message: str) -> None:
    with pytest.raises(BindingProblem, match=message):
        find_postgres(value)
