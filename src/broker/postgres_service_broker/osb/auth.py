"""HTTP basic authentication against every configured credential, in constant time.

Each request is compared with *all* credentials, without stopping at the first
match or mismatch, so the time taken says nothing about which usernames exist
or how much of a password was right. Several credentials are valid at once so
an operator can rotate them without downtime.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence

from postgres_service_broker.config import BrokerCredential


class BasicAuth:
    def __init__(self, credentials: Sequence[BrokerCredential]) -> None:
        self._pairs = [(c.username.encode(), c.password.get_secret_value().encode()) for c in credentials]

    def check(self, authorization: str | None) -> str | None:
        """Return the authenticated username, or None."""
        if not authorization:
            return None
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(b":")
        if not sep:
            return None
        matched: bytes | None = None
        for want_user, want_password in self._pairs:
            user_ok = hmac.compare_digest(user, want_user)
            password_ok = hmac.compare_digest(password, want_password)
            if user_ok & password_ok:
                matched = want_user
        return matched.decode() if matched is not None else None
