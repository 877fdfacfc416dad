"""The parameter check built once per schema: unknown names, wrong types, and no parameters at all."""

from __future__ import annotations

import pytest

from postgres_service_broker.osb.errors import OsbError
from postgres_service_broker.osb.request_validation import ParameterCheck

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"read_only": {"type": "boolean"}, "size": {"type": "integer"}},
}


def test_no_parameters_pass_a_schema_that_accepts_none() -> None:
    ParameterCheck(SCHEMA, "thing")({})


def test_no_parameters_are_refused_where_the_schema_requires_one() -> None:
    check = ParameterCheck({**SCHEMA, "required": ["size"]}, "thing")
    with pytest.raises(OsbError) as refused:
        check({})
    assert refused.value.status == 400
    assert "size" in str(refused.value)


def test_unknown_parameters_are_named_with_the_accepted_ones() -> None:
    with pytest.raises(OsbError) as refused:
        ParameterCheck(SCHEMA, "thing")({"colour": "red"})
    assert refused.value.status == 400
    assert str(refused.value) == "unknown thing parameter(s): 'colour'; accepted: read_only, size"


def test_a_value_of_the_wrong_type_is_refused_with_its_name() -> None:
    with pytest.raises(OsbError) as refused:
        ParameterCheck(SCHEMA, "thing")({"read_only": "yes"})
    assert refused.value.status == 400
    assert "invalid thing parameter read_only" in str(refused.value)
