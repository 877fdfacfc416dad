"""tile.yml (tile-generator's format) translated into the product metadata Ops Manager imports.

The mapping follows what tile-generator's own translation produces for
`bosh-release` packages: forms become form_types and property_blueprints,
package jobs become job_types with resource_definitions and an
instance_definition, errands are listed in post_deploy_errands and
pre_delete_errands. It differs where tile-generator's defaults would be wrong
for this product: no purge of service brokers, no CF CLI errands (ours talk
to the Cloud Controller API), no CF-app properties (org, space, ...) added to
every tile, and the stemcell pinned instead of looked up.
"""

from __future__ import annotations

from typing import Any

import yaml

from scripts.tile.releases import Release
from scripts.tile.source import Source, plain


class _Literal(str):
    """A multi-line string written as a YAML block (manifests read better that way)."""


class _Dumper(yaml.SafeDumper):
    pass


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_Dumper.add_representer(_Literal, _literal)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16)


def _manifest(value: Any) -> _Literal:
    return _Literal(value if isinstance(value, str) else dump(value))


def _blueprint(prop: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": prop["name"], "type": prop["type"]}
    out["configurable"] = prop.get("configurable", True)
    for key in ("default", "optional", "constraints", "options", "label", "description", "placeholder"):
        if key in prop:
            out[key] = prop[key]
    if prop["type"] == "selector":
        out["option_templates"] = [
            {
                "name": option["name"],
                "select_value": option["name"],
                "named_manifests": [
                    {"name": n["name"], "manifest": _manifest(n["manifest"])}
                    for n in option.get("named_manifests", [])
                ],
                "property_blueprints": [_blueprint(p) for p in option.get("property_blueprints", [])],
            }
            for option in prop["option_templates"]
        ]
    if prop["type"] == "collection":
        out["property_blueprints"] = [_blueprint(p) for p in prop.get("property_blueprints", [])]
    return out


def _input(prefix: str, prop: dict[str, Any]) -> dict[str, Any]:
    reference = f"{prefix}.{prop['name']}"
    out: dict[str, Any] = {
        "reference": reference,
        "label": prop.get("label", prop["name"]),
        "description": prop.get("description", prop.get("label", prop["name"])),
    }
    if prop["type"] == "selector":
        out["selector_property_inputs"] = [
            {
                "reference": f"{reference}.{option['name']}",
                "label": option.get("label", option["name"]),
                "property_inputs": [
                    _input(f"{reference}.{option['name']}", p)
                    for p in option.get("property_blueprints", [])
                    if p.get("configurable", True)
                ],
            }
            for option in prop["option_templates"]
        ]
    if prop["type"] == "collection":
        out["property_inputs"] = [
            {"reference": p["name"], "label": p.get("label", p["name"])}
            for p in prop.get("property_blueprints", [])
            if p.get("configurable", True)
        ]
    return out


def _resources(job: dict[str, Any]) -> list[dict[str, Any]]:
    errand = job.get("lifecycle") == "errand"
    resources = [
        ("ram", job.get("memory", 1024), True),
        ("ephemeral_disk", job.get("ephemeral_disk", 4096), True),
        ("persistent_disk", job.get("persistent_disk", 0), not errand),
        ("cpu", job.get("cpu", 1), True),
    ]
    return [
        {
            "name": name,
            "type": "integer",
            "configurable": configurable,
            "default": default,
            "constraints": {"min": min(default, 1024) if name != "cpu" else 1},
        }
        for name, default, configurable in resources
    ]


def _instances(job: dict[str, Any]) -> dict[str, Any]:
    errand = job.get("lifecycle") == "errand"
    definition = dict(job.get("instance_definition") or {"default": 1})
    out: dict[str, Any] = {"name": "instances", "type": "integer", "configurable": not errand}
    out.update(definition)
    return out


def _job_type(job: dict[str, Any]) -> dict[str, Any]:
    errand = job.get("lifecycle") == "errand"
    templates = []
    for template in job["templates"]:
        entry: dict[str, Any] = {"name": template["name"], "release": template["release"]}
        for key in ("consumes", "provides"):
            if key in template:
                entry[key] = _manifest(template[key])
        templates.append(entry)
    out: dict[str, Any] = {
        "name": job["name"],
        "resource_label": job.get("label", job["name"]),
        "description": job.get("description", job.get("label", job["name"])),
        "static_ip": job.get("static_ip", 0),
        "dynamic_ip": job.get("dynamic_ip", 1),
        "max_in_flight": job.get("max_in_flight", 1),
        "single_az_only": job.get("single_az_only", errand),
        "templates": templates,
        "resource_definitions": _resources(job),
        "instance_definition": _instances(job),
        "property_blueprints": [_blueprint(p) for p in job.get("properties", [])],
        "manifest": _manifest(job.get("manifest") or {}),
    }
    if errand:
        out["errand"] = True
        for key in ("run_post_deploy_errand_default", "run_pre_delete_errand_default"):
            if key in job:
                out[key] = job[key]
    return out


def build_metadata(source: Source, version: str, releases: list[Release], icon_image: str) -> dict[str, Any]:
    """The metadata for a tile.yml that passed the check, with the releases packed in the tile."""
    tile = plain(source.data)
    forms = tile.get("forms", [])
    globals_ = list(tile.get("properties", [])) + [
        p for form in forms for p in form.get("properties", []) if "job" not in p
    ]
    job_props: dict[str, list[dict[str, Any]]] = {}
    for form in forms:
        for prop in form.get("properties", []):
            if "job" in prop:
                job_props.setdefault(prop["job"], []).append(prop)
    jobs = [
        {**job, "properties": job.get("properties", []) + job_props.get(job["name"], [])}
        for package in tile["packages"]
        for job in package.get("jobs", [])
    ]
    metadata: dict[str, Any] = {
        "name": tile["name"],
        "product_version": version,
        "minimum_version_for_upgrade": tile["minimum_version_for_upgrade"],
        "metadata_version": tile["metadata_version"],
        "label": tile["label"],
        "description": tile["description"],
        "icon_image": icon_image,
        "rank": tile.get("rank", 1),
        "serial": tile.get("serial", True),
        "service_broker": tile.get("service_broker", False),
        "stemcell_criteria": {
            "os": tile["stemcell_criteria"]["os"],
            "version": tile["stemcell_criteria"]["version"],
            "requires_cpi": False,
            "enable_patch_security_updates": True,
        },
        "releases": [{"name": r.name, "file": r.file_name, "version": r.version} for r in releases],
    }
    if tile.get("requires_product_versions"):
        metadata["requires_product_versions"] = tile["requires_product_versions"]
    if tile.get("update"):
        metadata["update"] = tile["update"]
    metadata["property_blueprints"] = [_blueprint(p) for p in globals_]
    metadata["form_types"] = [
        {
            "name": form["name"],
            "label": form["label"],
            "description": form.get("description", form["label"]),
            **({"markdown": form["markdown"]} if "markdown" in form else {}),
            "property_inputs": [
                _input("." + prop["job"] if "job" in prop else ".properties", prop)
                for prop in form.get("properties", [])
            ],
        }
        for form in forms
    ]
    metadata["job_types"] = [_job_type(job) for job in jobs]
    metadata["post_deploy_errands"] = [{"name": j["name"]} for j in jobs if j.get("post_deploy")]
    metadata["pre_delete_errands"] = [{"name": j["name"]} for j in jobs if j.get("pre_delete")]
    if tile.get("variables"):
        metadata["variables"] = tile["variables"]
    return metadata
