"""Find the PostgreSQL credentials in ``VCAP_SERVICES``, brokered or user-provided alike.

Cloud Foundry lists bound services by label: a brokered one under its offering
name (``postgres``), every user-provided one under ``user-provided``, each with
the tags its offering or ``cf cups -t`` gave it. The first rule that matches a
service with usable credentials wins, so a deliberate signal beats a guess:

1. a tag ``postgresql`` (brokered services carry it from the catalog, and
   ``ups create`` prints ``-t postgresql,relational``);
2. the label ``postgres`` / ``postgresql``, or the label ``user-provided`` with a
   ``postgres://`` URI (a user-provided service made without tags);
3. any service whose credentials hold a ``postgres://`` or ``postgresql://`` URI.

Several services matching one rule are ordered by name, so the choice never
depends on the order in which the platform happened to list them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgres", "postgresql")
TAG = "postgresql"
LABELS = ("postgres", "postgresql")


class BindingProblem(Exception):
    """No usable PostgreSQL binding; the message says why and what to do."""


@dataclass(frozen=True)
class PostgresBinding:
    name: str
    label: str
    found_by: str
    credentials: dict[str, Any]


def _uri_is_postgres(credentials: Mapping[str, Any]) -> bool:
    uri = credentials.get("uri")
    return isinstance(uri, str) and urlsplit(uri).scheme.lower() in POSTGRES_SCHEMES


def usable(credentials: Any) -> bool:
    """A postgres:// URI, or at least a host, a database and a user to connect with."""
    if not isinstance(credentials, dict):
        return False
    if _uri_is_postgres(credentials):
        return True
    required = ("hostname", "name", "username")
    return all(isinstance(credentials.get(k), str) and credentials[k] for k in required)


def _tags(entry: Mapping[str, Any]) -> list[str]:
    tags = entry.get("tags")
    return [t.lower() for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _label(entry: Mapping[str, Any], key: str) -> str:
    label = entry.get("label")
    return (label if isinstance(label, str) else key).lower()


_RULES: list[tuple[str, Callable[[Mapping[str, Any], str], bool]]] = [
    (f"tag '{TAG}'", lambda e, key: TAG in _tags(e)),
    (
        "label",
        lambda e, key: (
            _label(e, key) in LABELS
            or (_label(e, key) == "user-provided" and _uri_is_postgres(e.get("credentials") or {}))
        ),
    ),
    ("postgres:// uri", lambda e, key: _uri_is_postgres(e.get("credentials") or {})),
]


def parse_services(text: str | None) -> list[tuple[str, dict[str, Any]]]:
    """(label key, service entry) pairs; a BindingProblem if the variable is missing or malformed."""
    if text is None or not text.strip():
        raise BindingProblem(
            "VCAP_SERVICES is not set: bind a PostgreSQL service (cf bind-service APP SERVICE) and restage"
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BindingProblem(f"VCAP_SERVICES is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise BindingProblem("VCAP_SERVICES is malformed: expected a JSON object of lists of services")
    return [(key, entry) for key, entries in doc.items() for entry in entries if isinstance(entry, dict)]


def find_postgres(text: str | None) -> PostgresBinding:
    """The PostgreSQL binding to use, by tag, then label, then URI scheme (see the module doc)."""
    services = parse_services(text)
    if not services:
        raise BindingProblem("VCAP_SERVICES lists no services: bind a PostgreSQL service and restage")
    unusable: set[str] = set()
    for found_by, rule in _RULES:
        good = []
        for key, entry in services:
            if not rule(entry, key):
                continue
            if usable(entry.get("credentials")):
                good.append((key, entry))
            else:
                unusable.add(str(entry.get("name", "?")))
        if good:
            key, entry = min(good, key=lambda pair: str(pair[1].get("name", "")))
            label = _label(entry, key)
            return PostgresBinding(
                name=str(entry.get("name", "")),
                label=label,
                found_by=f"label '{label}'" if found_by == "label" else found_by,
                credentials=dict(entry["credentials"]),
            )
    names = ", ".join(sorted({str(e.get("name", "?")) for _, e in services}))
    if unusable:
        bad = ", ".join(sorted(unusable))
        raise BindingProblem(
            f"the PostgreSQL service {bad} has unusable credentials "
            "(neither a postgres:// uri nor hostname, name and username)"
        )
    raise BindingProblem(
        f"no PostgreSQL service among the bound services ({names}): none is tagged '{TAG}', "
        "labelled 'postgres' or has a postgres:// uri"
    )
