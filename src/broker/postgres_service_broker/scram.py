"""SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677), as PostgreSQL stores them.

A role is created with the verifier, never the password, so the plain
password reaches neither the server nor its logs. libpq can compute one
(``PQencryptPasswordConn``), but psycopg calls it while holding Python's GIL,
and its 4,096 rounds of PBKDF2 take about 2 ms: every other thread of the
broker stalls meanwhile. ``hashlib.pbkdf2_hmac`` releases the GIL, so a bind
can compute its verifier on another thread while it settles its locks and
records, and other requests go on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# PostgreSQL's own choices (scram-common.h): 4,096 rounds, a 16-byte salt.
ITERATIONS = 4096
SALT_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_sha256_verifier(password: str, *, salt: bytes | None = None) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` for `password`.

    Only printable ASCII is accepted: there SASLprep (RFC 4013), which a
    client applies before hashing, changes nothing, so the verifier matches
    what any client will prove. Every password the product makes is such.
    """
    if not password or not all(" " <= ch <= "~" for ch in password):
        raise ValueError("a SCRAM verifier is made here only for a non-empty printable ASCII password")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("ascii"), salt, ITERATIONS)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return f"SCRAM-SHA-256${ITERATIONS}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
