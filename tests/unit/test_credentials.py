"""The one credentials shape, as app libraries read it."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg.conninfo

from postgres_service_broker.credentials import build_credentials, generate_password


def test_single_host_shape() -> None:
    creds = build_credentials(hosts=["db.internal"], port=5432, database="d1", username="u1", password="p1")
    assert creds["uri"] == "postgres://u1:p1@db.internal:5432/d1"
    assert creds["jdbcUrl"] == "jdbc:postgresql://db.internal:5432/d1?user=u1&password=p1"
    assert creds["hostname"] == "db.internal"
    assert creds["hosts"] == ["db.internal"]
    assert (creds["port"], creds["name"], creds["username"], creds["password"]) == (5432, "d1", "u1", "p1")
    assert "sslmode" not in creds


def test_multi_host_asks_for_the_writable_node() -> None:
    creds = build_credentials(hosts=["a", "b"], port=5432, database="d", username="u", password="p")
    assert creds["uri"] == "postgres://u:p@a:5432,b:5432/d?target_session_attrs=read-write"
    assert creds["jdbcUrl"].startswith("jdbc:postgresql://a:5432,b:5432/d?")
    assert "targetServerType=primary" in creds["jdbcUrl"]
    parsed = psycopg.conninfo.conninfo_to_dict(creds["uri"])
    assert parsed["host"] == "a,b"
    assert parsed["target_session_attrs"] == "read-write"


def test_special_characters_are_escaped_and_round_trip() -> None:
    password = "p@ss:w/rd?#&="
    creds = build_credentials(hosts=["::1"], port=5432, database="my db", username="us er", password=password)
    parts = urlsplit(creds["uri"])
    assert parts.hostname == "::1"
    parsed = psycopg.conninfo.conninfo_to_dict(creds["uri"])
    assert parsed["password"] == password
    assert parsed["user"] == "us er"
    assert parsed["dbname"] == "my db"


def test_tls_fields() -> None:
    creds = build_credentials(
        hosts=["h"],
        port=1,
        database="d",
        username="u",
        password="p",
        sslmode="verify-full",
        ca_certificate="CA",
    )
    assert creds["sslmode"] == "verify-full"
    assert creds["sslrootcert"] == "CA"
    assert creds["uri"].endswith("?sslmode=verify-full")


def test_generated_passwords_are_long_random_and_uri_safe() -> None:
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for pw in passwords:
        assert len(pw) >= 40
        assert all(c.isalnum() or c in "-_" for c in pw)
