"""Basic auth: several credentials, exact matches only."""

from __future__ import annotations

import base64

import pytest

from postgres_service_broker.config import BrokerCredential
from postgres_service_broker.osb.auth import BasicAuth


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = BasicAuth(
    [
        BrokerCredential(username="old", password="old-password"),
        BrokerCredential(username="new", password="new-password"),
    ]
)


@pytest.mark.parametrize(("user", "password"), [("old", "old-password"), ("new", "new-password")])
def test_every_configured_credential_is_accepted(user: str, password: str) -> None:
    assert AUTH.check(header(user, password)) == user


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        header("old", "new-password"),
        header("new", "old-password"),
        header("old", "old-password-and-more"),
        header("ol", "old-password"),
        header("OLD", "old-password"),
        "Bearer abc",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
)
def test_everything_else_is_refused(value: str | None) -> None:
    assert AUTH.check(value) is None


def test_password_may_contain_colons() -> None:
    auth = BasicAuth([BrokerCredential(username="u", password="a:b:c:d:e")])
    assert auth.check(header("u", "a:b:c:d:e")) == "u"
