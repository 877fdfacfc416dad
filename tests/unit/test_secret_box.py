"""Sealed binding passwords: only the same key and the same binding id open them."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from postgres_service_broker.secret_box import SecretBox

KEY = "a-configuration-key-of-32-chars!!"


def test_round_trip_and_no_plaintext_in_the_sealed_form() -> None:
    box = SecretBox(KEY)
    sealed = box.seal("hunter2-password", "binding-1")
    assert b"hunter2" not in sealed
    assert box.open(sealed, "binding-1") == "hunter2-password"
    assert box.seal("same", "b") != box.seal("same", "b")  # fresh nonce each time


def test_wrong_key_or_binding_cannot_open() -> None:
    sealed = SecretBox(KEY).seal("secret", "binding-1")
    with pytest.raises(InvalidTag):
        SecretBox(KEY + "x").open(sealed, "binding-1")
    with pytest.raises(InvalidTag):
        SecretBox(KEY).open(sealed, "binding-2")
    with pytest.raises(ValueError, match="unknown sealed-secret format"):
        SecretBox(KEY).open(b"\x02" + sealed[1:], "binding-1")
