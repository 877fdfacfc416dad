"""Checks on what the platform sends, each failing with a 400 that says what to fix.

The OSB spec's field tables decide what is required and of which type;
parameters are checked against the same JSON schemas the catalog publishes.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from postgres_service_broker.osb.errors import OsbError, bad_request

# Ids end up in log lines and the broker's records; beyond this they are
# certainly not platform-generated ids, and refusing them keeps both sane.
MAX_ID_LENGTH = 1024


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise bad_request("the request body must be a JSON object; it was empty")
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise bad_request("the request body is nested too deeply") from None
    except ValueError:
        # Not a JSONDecodeError: Python refuses integers of more than 4300 digits.
        raise bad_request("the request body is not valid JSON: it holds a number too long to read") from None
    if not isinstance(doc, dict):
        raise bad_request(f"the request body must be a JSON object, not {_json_type(doc)}")
    return doc


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def check_id(value: str, what: str) -> str:
    if not value:
        raise bad_request(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise bad_request(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in value:
        raise bad_request(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{what} is not valid UTF-8") from None
    return value


def string_field(body: dict[str, Any], key: str, *, required: bool) -> str | None:
    if key not in body or body[key] is None:
        if required:
            raise bad_request(f"missing required field '{key}'")
        return None
    value = body[key]
    if not isinstance(value, str):
        raise bad_request(f"field '{key}' must be a string, not {_json_type(value)}")
    return check_id(value, f"field '{key}'")


def required_string(body: dict[str, Any], key: str) -> str:
    value = string_field(body, key, required=True)
    assert value is not None  # string_field raised otherwise
    return value


def object_field(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    if key not in body or body[key] is None:
        return None
    value = body[key]
    if not isinstance(value, dict):
        raise bad_request(f"field '{key}' must be an object, not {_json_type(value)}")
    check_storable_text(value, f"field '{key}'")
    return value


def check_storable_text(value: Any, what: str) -> None:
    """Refuse strings PostgreSQL cannot keep (NUL, lone UTF-16 surrogates) anywhere inside `value`.

    Such strings are valid JSON, so without this check an object would be
    accepted and then fail as a 500 when the broker records it (jsonb and
    text reject both). The walk is iterative: the body may be nested deeply.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise bad_request(f"{what} must not contain NUL characters (\\u0000)")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise bad_request(f"{what} holds text that is not valid Unicode (a lone surrogate)") from None


def maintenance_version(body: dict[str, Any]) -> str | None:
    info = object_field(body, "maintenance_info")
    if info is None:
        return None
    version = info.get("version")
    if not isinstance(version, str) or not version:
        raise bad_request("field 'maintenance_info.version' must be a non-empty string")
    return version


def accepts_incomplete(args: dict[str, str]) -> bool:
    raw = args.get("accepts_incomplete")
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise bad_request("query parameter 'accepts_incomplete' must be 'true' or 'false'")
    return raw == "true"


class ParameterCheck:
    """Refuses unknown parameters (listing the accepted ones) and values of the wrong type.

    Built once per schema, when the app starts: a request pays only for the
    check. Most requests send no parameters at all, and whether the schema
    accepts ``{}`` is settled here, once.
    """

    def __init__(self, schema: dict[str, Any], what: str) -> None:
        self._accepted = sorted(schema.get("properties", {}))
        self._validator = jsonschema.Draft4Validator(schema)
        self._what = what
        self._empty_is_valid = self._validator.is_valid({})

    def __call__(self, parameters: dict[str, Any]) -> None:
        if not parameters and self._empty_is_valid:
            return
        what, accepted = self._what, self._accepted
        unknown = sorted(set(parameters) - set(accepted))
        if unknown:
            raise bad_request(
                f"unknown {what} parameter(s): {', '.join(map(repr, unknown))}; "
                f"accepted: {', '.join(accepted) if accepted else 'none'}"
            )
        errors = sorted(self._validator.iter_errors(parameters), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            where = ".".join(str(p) for p in err.absolute_path) or "parameters"
            raise bad_request(f"invalid {what} parameter {where}: {_short(err.message)}")


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = [
    "OsbError",
    "ParameterCheck",
    "accepts_incomplete",
    "check_id",
    "check_storable_text",
    "maintenance_version",
    "object_field",
    "parse_json_object",
    "string_field",
]
