"""Encryption of the binding passwords the broker keeps.

The broker must answer a repeated bind (or a fetch of a binding) with the
credentials it first gave, yet PostgreSQL keeps only a SCRAM verifier. So the
broker keeps each password itself, sealed with AES-256-GCM under a key from its
configuration that never sits beside the data; the binding id is bound in as
associated data, so a sealed password cannot be moved to another binding.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"


class SecretBox:
    def __init__(self, key_material: str) -> None:
        # The configured key is a passphrase of at least 32 characters; derive
        # exactly 32 bytes from it with a domain-separating label.
        self._aead = AESGCM(hashlib.sha256(b"postgres-service-broker/v1\0" + key_material.encode()).digest())

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        if sealed[:1] != _VERSION:
            raise ValueError("unknown sealed-secret format")
        nonce, body = sealed[1:13], sealed[13:]
        return self._aead.decrypt(nonce, body, context.encode()).decode()
