"""Tokens from UAA's ``POST /oauth/token``: the client_credentials and password grants.

The client authenticates with HTTP basic auth (RFC 6749 section 2.3.1, which
form-encodes the id and secret first); the password grant is how the cf CLI
logs in (client ``cf`` with an empty secret). Errors say which grant, client
and user were refused, never the secret or password.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote_plus, urlencode

from postgres_service_broker.cf.transport import HttpResponse, HttpTransport

# Renew a little before UAA's stated expiry, so a token does not die in flight:
# 10% of its lifetime, at most this many seconds.
MAX_EXPIRY_MARGIN_S = 30.0


class UaaError(Exception):
    """UAA refused to issue a token, or answered with something that is not one."""


@dataclass(frozen=True)
class ClientCredentialsGrant:
    client_id: str
    client_secret: str

    def form(self) -> dict[str, str]:
        return {"grant_type": "client_credentials"}

    def describe(self) -> str:
        return f"client '{self.client_id}' (client_credentials grant)"


@dataclass(frozen=True)
class PasswordGrant:
    client_id: str
    client_secret: str
    username: str
    password: str

    def form(self) -> dict[str, str]:
        return {"grant_type": "password", "username": self.username, "password": self.password}

    def describe(self) -> str:
        return f"user '{self.username}' through client '{self.client_id}' (password grant)"


Grant = ClientCredentialsGrant | PasswordGrant


@dataclass(frozen=True)
class AccessToken:
    value: str
    token_type: str
    expires_at: float

    @property
    def authorization(self) -> str:
        return f"bearer {self.value}"

    def fresh(self, now: float) -> bool:
        return now < self.expires_at


def _basic(client_id: str, client_secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass
class UaaClient:
    url: str
    transport: HttpTransport

    @property
    def token_url(self) -> str:
        return self.url.rstrip("/") + "/oauth/token"

    def fetch_token(self, grant: Grant) -> AccessToken:
        resp = self.transport.request(
            "POST",
            self.token_url,
            headers={
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": _basic(grant.client_id, grant.client_secret),
            },
            body=urlencode(grant.form()).encode(),
        )
        if resp.status != 200:
            raise UaaError(self._refusal(resp, grant))
        doc = resp.json()
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            raise UaaError(
                f"UAA at {self.url} answered {resp.status} without an access_token; "
                "is uaa.url the UAA server?"
            )
        token_type = str(doc.get("token_type") or "bearer")
        if token_type.lower() != "bearer":
            raise UaaError(f"UAA at {self.url} issued a '{token_type}' token; only bearer tokens are usable")
        expires_in = doc.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 600.0
        margin = min(MAX_EXPIRY_MARGIN_S, lifetime / 10)
        return AccessToken(doc["access_token"], token_type, time.monotonic() + lifetime - margin)

    def _refusal(self, resp: HttpResponse, grant: Grant) -> str:
        doc = resp.json()
        reason = ""
        if isinstance(doc, dict):
            parts = [str(doc[k]) for k in ("error", "error_description") if doc.get(k)]
            reason = ": " + " - ".join(parts) if parts else ""
        msg = f"UAA at {self.url} refused a token for {grant.describe()} (HTTP {resp.status}{reason})"
        if resp.status == 401:
            if isinstance(grant, PasswordGrant):
                msg += "; check uaa.username and uaa.password (and uaa.client_id/uaa.client_secret)"
            else:
                msg += "; check uaa.client_id and uaa.client_secret"
        elif resp.status == 404:
            msg += "; is uaa.url the UAA server?"
        return msg


class TokenSource:
    """Hands out a valid token, asking UAA again when it is about to expire or was rejected."""

    def __init__(self, uaa: UaaClient, grant: Grant) -> None:
        self._uaa = uaa
        self._grant = grant
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def authorization(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or not self._token.fresh(time.monotonic()):
                self._token = self._uaa.fetch_token(self._grant)
            return self._token.authorization
