"""Replace and remove operations, each path form, and the errors an operator sees."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.manifests.errors import ManifestError
from scripts.manifests.opsfile import Operation, apply_ops, parse_ops
from scripts.manifests.render import dumps


def doc() -> dict[str, Any]:
    return {
        "name": "dep",
        "instance_groups": [
            {"name": "postgres", "instances": 1, "jobs": [{"name": "postgres", "properties": {}}]},
            {"name": "broker", "instances": 1, "jobs": [{"name": "bpm"}, {"name": "broker"}]},
        ],
        "variables": [{"name": "a"}],
    }


def replace(path: str, value: Any) -> Operation:
    return Operation("replace", path, value)


def remove(path: str) -> Operation:
    return Operation("remove", path)


def test_replace_a_map_key() -> None:
    assert apply_ops(doc(), [replace("/name", "other")])["name"] == "other"


def test_replace_through_a_matching_array_item() -> None:
    out = apply_ops(doc(), [replace("/instance_groups/name=broker/instances", 2)])
    assert [g["instances"] for g in out["instance_groups"]] == [1, 2]


def test_replace_by_index_and_negative_index() -> None:
    out = apply_ops(
        doc(), [replace("/variables/0", {"name": "b"}), replace("/instance_groups/-1/instances", 3)]
    )
    assert out["variables"] == [{"name": "b"}]
    assert out["instance_groups"][1]["instances"] == 3


def test_append_with_dash() -> None:
    out = apply_ops(doc(), [replace("/variables/-", {"name": "b"})])
    assert out["variables"] == [{"name": "a"}, {"name": "b"}]


def test_replace_a_matching_item_whole() -> None:
    out = apply_ops(doc(), [replace("/instance_groups/name=broker/jobs/name=bpm", {"name": "bpm", "x": 1})])
    assert out["instance_groups"][1]["jobs"][0] == {"name": "bpm", "x": 1}


def test_optional_key_creates_maps_along_the_way() -> None:
    path = "/instance_groups/name=broker/jobs/name=broker/properties?/broker/catalog/plans"
    out = apply_ops(doc(), [replace(path, [{"name": "small"}])])
    assert out["instance_groups"][1]["jobs"][1]["properties"] == {
        "broker": {"catalog": {"plans": [{"name": "small"}]}}
    }


def test_optional_match_appends_an_item_named_by_the_match() -> None:
    out = apply_ops(doc(), [replace("/instance_groups/name=errand?/instances", 1)])
    assert out["instance_groups"][-1] == {"name": "errand", "instances": 1}


def test_optional_match_as_last_segment_appends_the_value() -> None:
    out = apply_ops(doc(), [replace("/variables/name=b?", {"name": "b", "type": "password"})])
    assert out["variables"][-1] == {"name": "b", "type": "password"}


def test_replace_the_root() -> None:
    assert apply_ops(doc(), [replace("/", {"x": 1})]) == {"x": 1}


def test_operations_apply_in_order() -> None:
    # The second op reaches the item the first one appended.
    out = apply_ops(doc(), [replace("/variables/-", {"name": "b"}), replace("/variables/name=b/type?", 1)])
    assert out["variables"][1] == {"name": "b", "type": 1}


def test_a_missing_last_key_needs_the_optional_mark() -> None:
    with pytest.raises(ManifestError, match="end the segment with '\\?' to add it"):
        apply_ops(doc(), [replace("/variables/name=a/type", "password")])


def test_remove_a_key_an_item_by_match_and_by_index() -> None:
    out = apply_ops(
        doc(),
        [remove("/name"), remove("/instance_groups/name=broker/jobs/name=bpm"), remove("/variables/0")],
    )
    assert "name" not in out
    assert out["instance_groups"][1]["jobs"] == [{"name": "broker"}]
    assert out["variables"] == []


def test_optional_remove_of_something_missing_changes_nothing() -> None:
    ops = [remove("/nothing?"), remove("/instance_groups/name=absent?/jobs"), remove("/variables/name=zz?")]
    assert apply_ops(doc(), ops) == doc()


def test_the_input_document_is_not_changed() -> None:
    original = doc()
    apply_ops(original, [replace("/name", "x"), remove("/variables/0")])
    assert original == doc()


def test_a_value_used_twice_is_written_out_twice_not_as_an_alias() -> None:
    zones = ["z1", "z2"]
    out = apply_ops(
        doc(),
        [replace("/instance_groups/0/azs?", zones), replace("/instance_groups/1/azs?", zones)],
    )
    assert "&" not in dumps(out)
    assert "*" not in dumps(out)


@pytest.mark.parametrize(
    ("op", "complaint"),
    [
        (replace("/missing", 1), "no key 'missing' at /missing"),
        (replace("/missing/deeper", 1), "no key 'missing' at /missing"),
        (replace("/instance_groups/name=nope/instances", 1), "no array item with name=nope"),
        (replace("/variables/5", 1), "index 5 is out of range at /variables/5"),
        (replace("/name/x", 1), "expected a map at /name"),
        (replace("/name/0", 1), "expected an array at /name"),
        (remove("/missing"), "no key 'missing'"),
        (remove("/instance_groups/name=nope"), "no array item with name=nope"),
        (remove("/variables/-"), "names no element"),
        (remove("/"), "root cannot be removed"),
    ],
)
def test_errors_name_the_file_the_op_and_the_path(op: Operation, complaint: str) -> None:
    with pytest.raises(ManifestError) as caught:
        apply_ops(doc(), [replace("/name", "ok"), op], "ops.yml")
    message = str(caught.value)
    assert message.startswith(f"ops.yml: op 2 ({op.type} {op.path}): ")
    assert complaint in message


def test_more_than_one_match_is_an_error() -> None:
    twice = doc()
    twice["variables"] = [{"name": "a"}, {"name": "a"}]
    with pytest.raises(ManifestError, match="2 array items match name=a"):
        apply_ops(twice, [replace("/variables/name=a/type?", "password")])


def test_an_ops_error_message_replaces_ours() -> None:
    op = Operation("replace", "/missing", 1, error="enable the HA variant first")
    with pytest.raises(ManifestError, match=r"op 1 \(replace /missing\): enable the HA variant first$"):
        apply_ops(doc(), [op], "ha-extras.yml")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"type": "replace"}, "is a list of operations"),
        (["x"], "op 1 is not a map"),
        ([{"type": "test", "path": "/a"}], "op 1 has type 'test'"),
        ([{"type": "replace", "path": "/a"}], r"op 1 \(replace /a\) needs a value"),
        ([{"type": "remove", "path": "/a", "value": 1}], "must not have a value"),
        ([{"type": "remove"}], "needs a string path"),
        ([{"type": "remove", "path": "/a", "vaule": 1}], "unknown keys"),
    ],
)
def test_malformed_ops_files(data: Any, complaint: str) -> None:
    with pytest.raises(ManifestError, match=complaint):
        parse_ops(data, "bad.yml")


def test_before_and_after_insert_next_to_the_named_item() -> None:
    new = {"name": "monitor"}
    before = apply_ops(doc(), [replace("/instance_groups/name=postgres:before", new)])
    assert [g["name"] for g in before["instance_groups"]] == ["monitor", "postgres", "broker"]
    after = apply_ops(doc(), [replace("/instance_groups/name=postgres:after", new)])
    assert [g["name"] for g in after["instance_groups"]] == ["postgres", "monitor", "broker"]
    by_index = apply_ops(doc(), [replace("/instance_groups/-1:after", new)])
    assert [g["name"] for g in by_index["instance_groups"]] == ["postgres", "broker", "monitor"]


def test_inserting_next_to_a_missing_item_or_removing_a_position_fails() -> None:
    with pytest.raises(ManifestError, match=r"no array item with name=pg at .* to insert before"):
        apply_ops(doc(), [replace("/instance_groups/name=pg:before", {})], "ha.yml")
    with pytest.raises(ManifestError, match="names a position, not an item to remove"):
        apply_ops(doc(), [remove("/instance_groups/name=postgres:after")])
