"""Names derived from OSB ids: readable for GUIDs, hashed otherwise, always valid identifiers."""

from __future__ import annotations

import pytest

from postgres_service_broker.backends.shared_names import InstanceNames, binding_role, id_token


def test_guid_keeps_a_readable_name() -> None:
    names = InstanceNames.for_instance("1b9c2a4e-0000-4d6e-8f00-123456789abc")
    assert names.database == "cf_1b9c2a4e_0000_4d6e_8f00_123456789abc"
    assert names.owner_role == names.database + "_owner"
    assert names.reader_role == names.database + "_reader"


@pytest.mark.parametrize(
    "ident",
    ["x'; DROP DATABASE postgres; --", '"quoted"', "é" * 500, "🐘" * 100, "a" * 10_000, "UPPER-CASE-ID"],
)
def test_other_ids_are_hashed_into_short_safe_names(ident: str) -> None:
    names = InstanceNames.for_instance(ident)
    for name in (names.database, names.owner_role, names.reader_role, binding_role(ident)):
        assert len(name.encode()) <= 63
        assert name.replace("_", "").isalnum()
        assert name.isascii()


def test_distinct_ids_give_distinct_names() -> None:
    ids = [
        "a",
        "b",
        "A",
        "a ",
        "1b9c2a4e-0000-4d6e-8f00-123456789abc",
        "1b9c2a4e_0000_4d6e_8f00_123456789abc",
    ]
    assert len({id_token(i) for i in ids}) == len(ids)
