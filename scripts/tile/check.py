"""The metadata check: tile.yml proven against itself and the releases it packs, before a tile is written.

Ops Manager finds most mistakes in a tile only when an operator imports or
deploys it; this finds them at build time and names the line in tile.yml:

- required top-level fields present and of the right type, and no unknown ones;
- every form field of a known Ops Manager type, with defaults among its options;
- every `(( ... ))` accessor resolves: to a property blueprint (global, a
  job type's, or a selector option's), to the CF tile's properties this tile
  reads, or to an Ops Manager built-in; every ((variable)) is declared;
- every job type's templates name a release of the tile and a job inside
  that release (read from its tarball), and its manifest sets only properties
  that those jobs' specs declare;
- errands are errands, zero_if names a selector's options, and nothing
  defaults to purging service instances.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from scripts.tile import accessors
from scripts.tile.errors import TileError
from scripts.tile.releases import Release
from scripts.tile.source import Source, line_of

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PRODUCT_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
JOB_TYPE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")

# Top-level fields: required ones and their types, then optional ones.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "label": str,
    "description": str,
    "metadata_version": str,
    "minimum_version_for_upgrade": str,
    "stemcell_criteria": dict,
    "packages": list,
    "forms": list,
}
OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "rank": int,
    "serial": bool,
    "service_broker": bool,
    "purge_service_brokers": bool,
    "requires_product_versions": list,
    "update": dict,
    "variables": list,
    "properties": list,
    "icon_file": str,
}
JOB_KEYS = frozenset(
    {
        "name",
        "label",
        "description",
        "instance_definition",
        "single_az_only",
        "max_in_flight",
        "memory",
        "ephemeral_disk",
        "persistent_disk",
        "cpu",
        "templates",
        "properties",
        "manifest",
        "lifecycle",
        "post_deploy",
        "pre_delete",
        "run_post_deploy_errand_default",
        "run_pre_delete_errand_default",
        "static_ip",
        "dynamic_ip",
    }
)

PROPERTY_KEYS = frozenset(
    {
        "name", "type", "label", "description", "default", "configurable", "optional", "constraints",
        "options", "option_templates", "property_blueprints", "placeholder", "job",
    }
)  # fmt: skip
FORM_KEYS = frozenset({"name", "label", "description", "markdown", "properties"})


@dataclass
class Blueprint:
    name: str
    type: str
    line: int | None
    options: dict[str, Option] = field(default_factory=dict)  # a selector's option templates


@dataclass
class Option:
    name: str
    named_manifests: dict[str, tuple[str, int | None]]
    blueprints: dict[str, Blueprint]


class CheckFailed(TileError):
    """Every problem found, one per line, the first one's line as the error's line."""

    def __init__(self, problems: list[TileError]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, first.source, first.line)

    def __str__(self) -> str:
        return "\n".join(TileError.__str__(p) for p in self.problems)


class _Checker:
    def __init__(self, source: Source, releases: Mapping[str, Release]) -> None:
        self.source = source
        self.data = source.data
        self.releases = releases
        self.problems: list[TileError] = []
        self.globals: dict[str, Blueprint] = {}
        self.job_types: dict[str, CommentedMap] = {}
        self.job_blueprints: dict[str, dict[str, Blueprint]] = {}
        self.variables: set[str] = set()

    def problem(self, message: str, node: Any, key: str | int | None = None) -> None:
        self.problems.append(self.source.error(message, line_of(node, key)))

    # -- top level ---------------------------------------------------------------------------

    def top_level(self) -> None:
        for key, kind in REQUIRED.items():
            if key not in self.data:
                self.problem(f"required field '{key}' is missing", self.data)
            elif not _is(self.data[key], kind):
                self.problem(f"'{key}' must be a {_kind(kind)}", self.data, key)
        for key in self.data:
            if key in REQUIRED:
                continue
            if key not in OPTIONAL:
                self.problem(f"unknown top-level field '{key}'", self.data, key)
            elif not _is(self.data[key], OPTIONAL[key]):
                self.problem(f"'{key}' must be a {_kind(OPTIONAL[key])}", self.data, key)
        name = self.data.get("name")
        if isinstance(name, str) and not PRODUCT_NAME.match(name):
            self.problem(f"name '{name}': lower-case letters, digits and '-'", self.data, "name")
        stemcell = self.data.get("stemcell_criteria")
        if isinstance(stemcell, dict):
            for key in ("os", "version"):
                if not isinstance(stemcell.get(key), str):
                    self.problem(
                        f"stemcell_criteria.{key} must be a string (pinned: no look-up)", stemcell, key
                    )
        if self.data.get("purge_service_brokers") is True:
            self.problem(
                "purge_service_brokers must not be true: deleting the tile must not purge",
                self.data,
                "purge_service_brokers",
            )
        for index, variable in enumerate(_list(self.data.get("variables"))):
            if not isinstance(variable, dict) or not isinstance(variable.get("name"), str):
                self.problem("each variable needs a name", self.data["variables"], index)
            elif not isinstance(variable.get("type"), str):
                self.problem(f"variable '{variable['name']}' needs a type", variable, "name")
            else:
                self.variables.add(variable["name"])

    # -- property blueprints -----------------------------------------------------------------

    def blueprint(self, prop: Any, parent: Any, index: int, scope: dict[str, Blueprint]) -> None:
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
            self.problem("each property needs a name", parent, index)
            return
        name, kind = prop["name"], prop.get("type")
        for key in prop:
            if key not in PROPERTY_KEYS:
                self.problem(f"property '{name}': unknown field '{key}'", prop, key)
        if not NAME.match(name):
            self.problem(f"property name '{name}': lower-case letters, digits and '_'", prop, "name")
        if kind not in accessors.PROPERTY_TYPES:
            self.problem(
                f"property '{name}' has unknown type '{kind}'", prop, "type" if "type" in prop else "name"
            )
            return
        if name in scope:
            self.problem(
                f"property '{name}' is defined twice (first at line {scope[name].line})", prop, "name"
            )
        blueprint = Blueprint(name=name, type=kind, line=line_of(prop, "name"))
        scope[name] = blueprint
        default = prop.get("default")
        if "purge" in name and default is True:
            self.problem(
                f"property '{name}' must not default to true: purging is never a default", prop, "default"
            )
        if kind in ("dropdown_select", "multi_select_options"):
            options = [o.get("name") for o in _list(prop.get("options")) if isinstance(o, dict)]
            if not options:
                self.problem(f"property '{name}' ({kind}) needs options", prop, "name")
            chosen = default if isinstance(default, list) else ([] if default is None else [default])
            for value in chosen:
                if value not in options:
                    self.problem(
                        f"property '{name}': default '{value}' is not one of its options", prop, "default"
                    )
        elif kind == "collection":
            inner: dict[str, Blueprint] = {}
            for i, sub in enumerate(_list(prop.get("property_blueprints"))):
                self.blueprint(sub, prop["property_blueprints"], i, inner)
            for row in _list(default):
                for key in row if isinstance(row, dict) else []:
                    if key not in inner:
                        self.problem(
                            f"property '{name}': default entry has '{key}', not a field of it", row, key
                        )
        elif kind == "selector":
            self.selector(prop, blueprint)

    def selector(self, prop: CommentedMap, blueprint: Blueprint) -> None:
        templates = prop.get("option_templates")
        if not isinstance(templates, list) or not templates:
            self.problem(f"selector '{blueprint.name}' needs option_templates", prop, "name")
            return
        for i, option in enumerate(templates):
            if not isinstance(option, dict) or not isinstance(option.get("name"), str):
                self.problem(f"selector '{blueprint.name}': each option needs a name", templates, i)
                continue
            manifests = {}
            for j, named in enumerate(_list(option.get("named_manifests"))):
                if not isinstance(named, dict) or not isinstance(named.get("name"), str):
                    self.problem(
                        "each named manifest needs a name and a manifest", option["named_manifests"], j
                    )
                    continue
                manifests[named["name"]] = (str(named.get("manifest", "")), line_of(named, "manifest"))
            inner: dict[str, Blueprint] = {}
            for j, sub in enumerate(_list(option.get("property_blueprints"))):
                self.blueprint(sub, option["property_blueprints"], j, inner)
            blueprint.options[option["name"]] = Option(option["name"], manifests, inner)
        if prop.get("default") not in blueprint.options:
            self.problem(
                f"selector '{blueprint.name}': default '{prop.get('default')}' is not one of its options "
                f"({', '.join(blueprint.options)})",
                prop,
                "default" if "default" in prop else "name",
            )
        names = [set(o.named_manifests) for o in blueprint.options.values()]
        if names and any(n != names[0] for n in names):
            self.problem(
                f"selector '{blueprint.name}': every option must have the same named manifests",
                prop,
                "option_templates",
            )

    def properties(self) -> None:
        for i, prop in enumerate(_list(self.data.get("properties"))):
            self.blueprint(prop, self.data["properties"], i, self.globals)
        for i, form in enumerate(_list(self.data.get("forms"))):
            if not isinstance(form, dict) or not isinstance(form.get("name"), str):
                self.problem("each form needs a name", self.data["forms"], i)
                continue
            for key in form:
                if key not in FORM_KEYS:
                    self.problem(f"form '{form['name']}': unknown field '{key}'", form, key)
            if not isinstance(form.get("label"), str):
                self.problem(f"form '{form['name']}' needs a label", form, "name")
            for j, prop in enumerate(_list(form.get("properties"))):
                job = prop.get("job") if isinstance(prop, dict) else None
                if job is None:
                    self.blueprint(prop, form["properties"], j, self.globals)
                elif job not in self.job_types:
                    self.problem(
                        f"form field '{prop.get('name')}' names job type '{job}', which does not exist",
                        prop,
                        "job",
                    )
                else:
                    self.blueprint(prop, form["properties"], j, self.job_blueprints[job])

    # -- job types ---------------------------------------------------------------------------

    def collect_job_types(self) -> None:
        for i, package in enumerate(_list(self.data.get("packages"))):
            if not isinstance(package, dict) or not isinstance(package.get("name"), str):
                self.problem("each package needs a name", self.data["packages"], i)
                continue
            if package.get("type") != "bosh-release":
                self.problem(
                    f"package '{package['name']}': type '{package.get('type')}' is not supported; "
                    "this build packs bosh-release packages only",
                    package,
                    "type" if "type" in package else "name",
                )
                continue
            if package["name"] not in self.releases:
                self.problem(f"package '{package['name']}': no release tarball for it", package, "name")
            for j, job in enumerate(_list(package.get("jobs"))):
                if not isinstance(job, dict) or not isinstance(job.get("name"), str):
                    self.problem("each job type needs a name", package["jobs"], j)
                    continue
                if not JOB_TYPE_NAME.match(job["name"]):
                    self.problem(
                        f"job type name '{job['name']}': lower-case letters, digits and '-'", job, "name"
                    )
                if job["name"] in self.job_types:
                    self.problem(f"job type '{job['name']}' is defined twice", job, "name")
                self.job_types[job["name"]] = job
                scope: dict[str, Blueprint] = {}
                for k, prop in enumerate(_list(job.get("properties"))):
                    self.blueprint(prop, job["properties"], k, scope)
                self.job_blueprints[job["name"]] = scope

    def job_type(self, job: CommentedMap) -> None:
        name = job["name"]
        for key in job:
            if key not in JOB_KEYS:
                self.problem(f"job type '{name}': unknown field '{key}'", job, key)
        errand = job.get("lifecycle") == "errand"
        if "lifecycle" in job and not errand:
            self.problem(f"job type '{name}': lifecycle must be 'errand' when given", job, "lifecycle")
        for key in (
            "post_deploy",
            "pre_delete",
            "run_post_deploy_errand_default",
            "run_pre_delete_errand_default",
        ):
            if key in job and not errand:
                self.problem(f"job type '{name}': '{key}' is only for errands (lifecycle: errand)", job, key)
        if errand and not (job.get("post_deploy") or job.get("pre_delete")):
            self.problem(f"errand '{name}' runs neither post_deploy nor pre_delete", job, "name")
        if job.get("pre_delete") and job.get("post_deploy"):
            self.problem(f"errand '{name}' cannot be both post_deploy and pre_delete", job, "pre_delete")
        for key in ("memory", "ephemeral_disk", "persistent_disk", "cpu", "max_in_flight"):
            if key in job and (not isinstance(job[key], int) or isinstance(job[key], bool) or job[key] < 0):
                self.problem(f"job type '{name}': {key} must be a whole number", job, key)
        self.instance_definition(job)
        self.templates(job)

    def instance_definition(self, job: CommentedMap) -> None:
        definition = job.get("instance_definition")
        if definition is None:
            return
        if not isinstance(definition, dict) or not _is(definition.get("default"), int):
            self.problem(
                f"job type '{job['name']}': instance_definition needs an integer default",
                job,
                "instance_definition",
            )
            return
        zero_if = definition.get("zero_if")
        if zero_if is None:
            return
        reference = str(zero_if.get("property_reference", "")) if isinstance(zero_if, dict) else ""
        selector = self.globals.get(reference.removeprefix(".properties."))
        if not reference.startswith(".properties.") or selector is None or selector.type != "selector":
            self.problem(
                f"job type '{job['name']}': zero_if.property_reference '{reference}' is not a selector",
                zero_if if isinstance(zero_if, dict) else definition,
                "property_reference",
            )
            return
        for value in _list(zero_if.get("property_values")):
            if value not in selector.options:
                self.problem(
                    f"job type '{job['name']}': zero_if value '{value}' is not an option of "
                    f"'{selector.name}'",
                    zero_if,
                    "property_values",
                )

    def templates(self, job: CommentedMap) -> None:
        templates = job.get("templates")
        if not isinstance(templates, list) or not templates:
            self.problem(f"job type '{job['name']}' needs templates (the release jobs it runs)", job, "name")
            return
        known_properties: set[str] = set()
        checkable = True
        for i, template in enumerate(templates):
            if not isinstance(template, dict) or not isinstance(template.get("name"), str):
                self.problem("each template needs a name and a release", templates, i)
                continue
            release_name = template.get("release")
            release = self.releases.get(str(release_name))
            if release is None:
                self.problem(
                    f"job type '{job['name']}': release '{release_name}' is not in the tile "
                    f"(its releases: {', '.join(sorted(self.releases)) or 'none'})",
                    template,
                    "release" if "release" in template else "name",
                )
                checkable = False
                continue
            release_job = release.jobs.get(template["name"])
            if release_job is None:
                self.problem(
                    f"job type '{job['name']}': release {release.name}/{release.version} has no job "
                    f"'{template['name']}' (it has: {', '.join(sorted(release.jobs))})",
                    template,
                    "name",
                )
                checkable = False
                continue
            if release.declared_only:
                # Its jobs' specs are unknown; the manifest may set no property for them (bpm takes none).
                continue
            known_properties |= release_job.properties
            for key in ("consumes", "provides"):
                links = template.get(key)
                if links is None:
                    continue
                if not isinstance(links, dict):
                    self.problem(
                        f"job type '{job['name']}': {key} of '{template['name']}' must be a mapping of links",
                        template,
                        key,
                    )
                    continue
                declared = release_job.consumes if key == "consumes" else release_job.provides
                for link in links:
                    if link not in declared:
                        self.problem(
                            f"job type '{job['name']}': job '{template['name']}' {key} no link '{link}' "
                            f"(its spec {key}: {', '.join(sorted(declared)) or 'none'})",
                            links,
                            link,
                        )
                self.strings(links, template, key)
        manifest = job.get("manifest")
        if manifest is None:
            return
        if not isinstance(manifest, dict):
            self.problem(
                f"job type '{job['name']}': manifest must be a mapping of job properties", job, "manifest"
            )
            return
        if checkable:
            self.manifest_keys(manifest, "", known_properties, job["name"])
        self.strings(manifest, job, "manifest")

    def manifest_keys(self, node: CommentedMap, prefix: str, known: set[str], job_name: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in known:
                continue
            deeper = any(p.startswith(path + ".") for p in known)
            if deeper and isinstance(value, dict):
                self.manifest_keys(value, path + ".", known, job_name)
            elif not deeper:
                self.problem(
                    f"job type '{job_name}': no job of its templates has a property '{path}'", node, key
                )
            elif not (isinstance(value, str) and "((" in value):
                self.problem(
                    f"job type '{job_name}': '{path}' holds properties; give it a mapping", node, key
                )

    # -- accessors ---------------------------------------------------------------------------

    def strings(self, node: Any, parent: Any, key: str | int) -> None:
        """Check every accessor in every string under parent[key]."""
        if isinstance(node, dict):
            for k, v in node.items():
                self.strings(v, node, k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.strings(v, node, i)
        elif isinstance(node, str):
            base = line_of(parent, key) or 0
            block = 1 if "\n" in node.rstrip("\n") or node.endswith("\n") else 0
            for match in accessors.ACCESSOR.finditer(node):
                line = base + block + node[: match.start()].count("\n")
                self.accessor(match.group("expr").strip(), line)

    def accessor(self, expr: str, line: int) -> None:
        message = self.resolve(expr)
        if message:
            self.problems.append(self.source.error(message, line))

    def resolve(self, expr: str) -> str | None:
        """None when the accessor resolves, otherwise why not."""
        if not expr.startswith((".", "$")):
            if accessors.BOSH_VARIABLE.fullmatch(f"(({expr}))"):
                name = expr.split(".", 1)[0]
                if name not in self.variables:
                    return f"'(({expr}))': '{name}' is not a declared variable (see variables:)"
                return None
            return f"'(( {expr} ))' is not an accessor Ops Manager knows"
        if expr.startswith(".."):
            return (
                None
                if expr in accessors.CF_TILE
                else f"'(( {expr} ))' is not a CF tile property this build knows"
            )
        if expr.startswith("$"):
            return None if expr in accessors.BUILT_INS else f"'(( {expr} ))' is not an Ops Manager built-in"
        selected = accessors.SELECTED_MANIFEST.match(expr)
        if selected:
            path = selected.group("path")
            prop = (
                self.globals.get(path.removeprefix(".properties."))
                if path.startswith(".properties.")
                else None
            )
            if prop is None or prop.type != "selector":
                return f"'(( {expr} ))': '{path}' is not a selector property"
            if any(selected.group("name") not in o.named_manifests for o in prop.options.values()):
                return (
                    f"'(( {expr} ))': not every option of '{prop.name}' has a named manifest "
                    f"'{selected.group('name')}'"
                )
            return None
        parts = expr[1:].split(".")
        if parts[0] == "properties":
            scope, rest, where = self.globals, parts[1:], "a property of the tile"
        elif parts[0] in self.job_blueprints:
            scope, rest, where = (
                self.job_blueprints[parts[0]],
                parts[1:],
                f"a property of job type '{parts[0]}'",
            )
        else:
            return f"'(( {expr} ))': '{parts[0]}' is neither 'properties' nor a job type"
        if len(rest) < 2:
            return f"'(( {expr} ))' names no field (.value, .identity, ...)"
        prop = scope.get(rest[0])
        if prop is None:
            return f"'(( {expr} ))': '{rest[0]}' is not {where}"
        if prop.type == "selector" and len(rest) == 4:
            option = prop.options.get(rest[1])
            if option is None:
                return f"'(( {expr} ))': '{rest[1]}' is not an option of selector '{prop.name}'"
            prop = option.blueprints.get(rest[2])
            if prop is None:
                return f"'(( {expr} ))': option '{rest[1]}' has no property '{rest[2]}'"
        elif len(rest) != 2:
            return f"'(( {expr} ))' has too many parts"
        if rest[-1] not in accessors.fields_of(prop.type):
            fields = ", ".join(sorted(accessors.fields_of(prop.type)))
            return f"'(( {expr} ))': a {prop.type} property has no field '{rest[-1]}' (it has: {fields})"
        return None

    def selector_manifests(self) -> None:
        for prop in self.globals.values():
            for option in prop.options.values():
                for text, line in option.named_manifests.values():
                    for match in accessors.ACCESSOR.finditer(text):
                        offset = text[: match.start()].count("\n") + (1 if "\n" in text else 0)
                        self.accessor(match.group("expr").strip(), (line or 0) + offset)

    def run(self) -> None:
        self.top_level()
        self.collect_job_types()
        self.properties()
        for job in self.job_types.values():
            self.job_type(job)
        self.selector_manifests()
        if self.problems:
            self.problems.sort(key=lambda p: p.line or 0)
            raise CheckFailed(self.problems)


def check(source: Source, releases: Mapping[str, Release]) -> None:
    """Raise CheckFailed naming every problem (and its line) unless tile.yml is sound."""
    _Checker(source, releases).run()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, (list, CommentedSeq)) else []


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and kind is not bool:
        return False
    return isinstance(value, kind)


def _kind(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "whole number", bool: "boolean", list: "list", dict: "mapping"}
    return names.get(kind, str(kind)) if isinstance(kind, type) else " or ".join(names[k] for k in kind)
