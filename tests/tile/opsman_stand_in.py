"""A stand-in for the part of Ops Manager that turns a tile's metadata and a chosen selector option into
instance counts and manifest text (Ops Manager itself cannot run on one machine).

It follows Ops Manager's documented product-template behaviour, for the
features this tile uses only: a job type's ``instance_definition.default``
becomes its instance count, or 0 when the property named by
``zero_if.property_reference`` has one of ``zero_if.property_values``; and
``(( .properties.<selector>.selected_option.parsed_manifest(<name>) ))``
becomes the chosen option's named manifest of that name, parsed as YAML.
Any other accessor is left as written.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_SELECTED = re.compile(
    r"\(\(\s*\.properties\.(?P<prop>\w+)\.selected_option\.parsed_manifest\((?P<name>[\w-]+)\)\s*\)\)"
)


class StagedProduct:
    def __init__(self, metadata: dict[str, Any], selections: dict[str, str]) -> None:
        self.metadata = metadata
        self.blueprints = {p["name"]: p for p in metadata["property_blueprints"]}
        self.values = {name: p.get("default") for name, p in self.blueprints.items()}
        for name, value in selections.items():
            options = [o["select_value"] for o in self.blueprints[name]["option_templates"]]
            if value not in options:
                raise ValueError(f"'{value}' is not an option of {name} ({', '.join(options)})")
            self.values[name] = value

    def instances(self, job_type: str) -> int:
        job = next(j for j in self.metadata["job_types"] if j["name"] == job_type)
        definition = job["instance_definition"]
        zero_if = definition.get("zero_if")
        if zero_if:
            name = zero_if["property_reference"].removeprefix(".properties.")
            if self.values[name] in zero_if["property_values"]:
                return 0
        return int(definition["default"])

    def _named_manifest(self, match: re.Match[str]) -> str:
        selector = self.blueprints[match.group("prop")]
        option = next(
            o for o in selector["option_templates"] if o["select_value"] == self.values[selector["name"]]
        )
        manifest = next(m["manifest"] for m in option["named_manifests"] if m["name"] == match.group("name"))
        return yaml.safe_dump(yaml.safe_load(manifest), default_flow_style=True).strip()

    def resolve(self, text: str) -> Any:
        """Text of the metadata (a manifest, consumes) with selector accessors replaced, parsed."""
        return yaml.safe_load(_SELECTED.sub(self._named_manifest, text))
