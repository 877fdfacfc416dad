"""The ops-file path language: each segment form, and paths the BOSH CLI would refuse."""

from __future__ import annotations

import pytest

from scripts.manifests.errors import ManifestError
from scripts.manifests.opspath import AppendToken, IndexToken, KeyToken, MatchToken, parse


def test_root_is_no_tokens() -> None:
    assert parse("/") == []


def test_each_segment_form() -> None:
    assert parse("/instance_groups/name=broker/jobs/0/-") == [
        KeyToken("instance_groups", optional=False),
        MatchToken("name", "broker", optional=False),
        KeyToken("jobs", optional=False),
        IndexToken(0),
        AppendToken(),
    ]


def test_negative_index_counts_from_the_end() -> None:
    assert parse("/a/-1") == [KeyToken("a", False), IndexToken(-1)]


def test_optional_marks_the_rest_of_the_path() -> None:
    # As in the BOSH CLI: after one `?`, every later segment may be created or skipped too.
    assert parse("/a/b?/c/name=x") == [
        KeyToken("a", False),
        KeyToken("b", True),
        KeyToken("c", True),
        MatchToken("name", "x", True),
    ]


def test_value_of_a_match_may_contain_equals_signs() -> None:
    assert parse("/list/url=a=b") == [KeyToken("list", False), MatchToken("url", "a=b", False)]


def test_escapes_for_slash_and_tilde() -> None:
    assert parse("/a~1b/c~0d") == [KeyToken("a/b", False), KeyToken("c~d", False)]


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("a/b", "must start with '/'"),
        ("/a//b", "empty segment"),
        ("/a/-/b", "may only be the last segment"),
    ],
)
def test_bad_paths(path: str, complaint: str) -> None:
    with pytest.raises(ManifestError, match=complaint):
        parse(path)


def test_before_and_after_mark_an_insertion_next_to_an_item() -> None:
    assert parse("/list/name=x:before") == [KeyToken("list", False), MatchToken("name", "x", False, "before")]
    assert parse("/list/2:after") == [KeyToken("list", False), IndexToken(2, "after")]


def test_before_is_a_plain_key_where_it_names_no_item() -> None:
    assert parse("/map/key:before") == [KeyToken("map", False), KeyToken("key:before", False)]


def test_before_only_ends_a_path() -> None:
    with pytest.raises(ManifestError, match="may only end the last segment"):
        parse("/list/name=x:before/jobs")
