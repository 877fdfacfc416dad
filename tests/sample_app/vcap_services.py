"""VCAP_SERVICES as Cloud Foundry presents it, for a user-provided and for a brokered binding.

`cf create-user-provided-service NAME -p CREDENTIALS -t TAGS` then `cf bind-service`
gives an entry under the key ``user-provided``; `cf create-service OFFERING PLAN
NAME` then `cf bind-service` gives one under the offering's name, with the
offering's tags and the credentials from the broker's bind response.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CupsCommand:
    """What `cf create-user-provided-service` was asked to make."""

    name: str
    credentials: dict[str, Any]
    tags: list[str]


def parse_cups_command(line: str) -> CupsCommand:
    """Read a printed `cf create-user-provided-service` line the way a POSIX shell and cf would."""
    argv = shlex.split(line)
    assert argv[:2] == ["cf", "create-user-provided-service"], argv
    name, options = argv[2], argv[3:]
    assert len(options) % 2 == 0, f"options must come in pairs: {options}"
    pairs = dict(zip(options[::2], options[1::2], strict=True))
    assert set(pairs) <= {"-p", "-t"}, pairs
    raw = pairs["-p"]
    # cf reads -p as JSON, or else as the path of a JSON file.
    credentials = json.loads(raw) if raw.lstrip().startswith("{") else json.loads(Path(raw).read_text())
    tags = [t.strip() for t in pairs.get("-t", "").split(",") if t.strip()]
    return CupsCommand(name=name, credentials=credentials, tags=tags)


def user_provided_entry(name: str, credentials: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    return {
        "label": "user-provided",
        "name": name,
        "tags": list(tags),
        "instance_guid": str(uuid.uuid4()),
        "instance_name": name,
        "binding_guid": str(uuid.uuid4()),
        "binding_name": None,
        "credentials": credentials,
        "syslog_drain_url": None,
        "volume_mounts": [],
    }


def brokered_entry(
    name: str,
    offering: dict[str, Any],
    plan: str,
    credentials: dict[str, Any],
    instance_tags: Sequence[str] = (),
) -> dict[str, Any]:
    """`offering` is the service from the broker's catalog; its tags come first, as in CF."""
    return {
        "label": offering["name"],
        "provider": None,
        "plan": plan,
        "name": name,
        "tags": [*offering.get("tags", []), *instance_tags],
        "instance_guid": str(uuid.uuid4()),
        "instance_name": name,
        "binding_guid": str(uuid.uuid4()),
        "binding_name": None,
        "credentials": credentials,
        "syslog_drain_url": None,
        "volume_mounts": [],
    }


def vcap_services(*entries: dict[str, Any]) -> str:
    """The variable's value: entries grouped under their label."""
    doc: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        doc.setdefault(entry["label"], []).append(entry)
    return json.dumps(doc)
