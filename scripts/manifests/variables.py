"""((variable)) placeholders substituted from a vars mapping, as `bosh interpolate -l/-v` does.

A placeholder that is a whole value takes the variable's value with its type
(a list, a map, a number); one inside a longer string is spliced in as text.
`((name.key))` reads `key` of a structured variable (a certificate's `ca`).
Placeholders with no value stay as they are, so secrets a config server
(CredHub) generates at deploy time survive rendering; `strict` turns them
into one error naming every missing variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scripts.manifests.errors import ManifestError

# The BOSH CLI's placeholder: letters, digits, _ - . / (absolute CredHub names), an optional leading `!`.
PLACEHOLDER = re.compile(r"\(\((!?[-\w./:]+)\)\)")

_UNSET = object()


def _lookup(vars: Mapping[str, Any], reference: str) -> Any:
    name, *keys = reference.lstrip("!").split(".")
    value: Any = vars.get(name, _UNSET)
    for key in keys:
        if value is _UNSET:
            break
        if not isinstance(value, Mapping) or key not in value:
            raise ManifestError(f"variable {name!r} has no key {key!r} (for (({reference})))")
        value = value[key]
    return value


def variable_name(reference: str) -> str:
    """The variable a placeholder reads: `postgres_tls` for ((postgres_tls.ca))."""
    return reference.lstrip("!").split(".", 1)[0]


def references(node: Any) -> set[str]:
    """Every variable name a document's placeholders (in keys and values) read."""
    found: set[str] = set()
    if isinstance(node, str):
        found.update(variable_name(m) for m in PLACEHOLDER.findall(node))
    elif isinstance(node, Mapping):
        for key, value in node.items():
            found |= references(key) | references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def _substitute_string(text: str, vars: Mapping[str, Any], missing: set[str]) -> Any:
    whole = PLACEHOLDER.fullmatch(text)
    if whole:
        value = _lookup(vars, whole.group(1))
        if value is _UNSET:
            missing.add(variable_name(whole.group(1)))
            return text
        return value

    def splice(match: re.Match[str]) -> str:
        value = _lookup(vars, match.group(1))
        if value is _UNSET:
            missing.add(variable_name(match.group(1)))
            return match.group(0)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ManifestError(
                f"variable (({match.group(1)})) is inside the string {text!r}, "
                "so it must be a string or number"
            )
        return str(value)

    return PLACEHOLDER.sub(splice, text)


def _walk(node: Any, vars: Mapping[str, Any], missing: set[str]) -> Any:
    if isinstance(node, str):
        return _substitute_string(node, vars, missing)
    if isinstance(node, Mapping):
        return {_walk(k, vars, missing): _walk(v, vars, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(item, vars, missing) for item in node]
    return node


def interpolate(doc: Any, vars: Mapping[str, Any], strict: bool = False) -> Any:
    """A new document with every placeholder that `vars` can answer replaced by its value.

    Values are not interpolated again, as in BOSH: a variable whose value
    contains `((x))` is taken literally.
    """
    missing: set[str] = set()
    result = _walk(doc, vars, missing)
    if strict and missing:
        raise ManifestError(f"no value for variables: {', '.join(sorted(missing))}")
    return result
