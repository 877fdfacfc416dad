"""The manifests as the tests see them: every variant and ops-file combination, rendered, and the
release's job specs they are checked against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.manifests.render import BASE, DEFAULTS, MANIFESTS, available, interpolate_files, load_vars

JOBS = MANIFESTS.parent / "jobs"
OPERATIONS = MANIFESTS / "operations"
INPUTS = "vars/inputs.yml"
RELEASE = "postgres-service"


def ops_files() -> list[str]:
    """Every ops-file an operator may pass to `bosh deploy -o`, relative to manifests/."""
    return sorted(f"operations/{p.name}" for p in OPERATIONS.glob("*.yml"))


@dataclass(frozen=True)
class Case:
    """One manifest to check: the base plus ops-files, interpolated with the non-secret inputs."""

    name: str
    ops: tuple[str, ...]

    def ops_paths(self) -> list[Path]:
        return [MANIFESTS / o for o in self.ops]

    def render(self, extra_vars: dict[str, Any] | None = None, strict: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = interpolate_files(
            MANIFESTS / BASE,
            self.ops_paths(),
            [MANIFESTS / DEFAULTS],
            {**example_inputs(), **(extra_vars or {})},
            strict=strict,
        )
        return doc


def cases() -> list[Case]:
    """Each variant `make manifests` writes, the base with each ops-file alone, and with all of them
    (the HA ops-file only once it exists, since the variants list includes it then)."""
    ready, _ = available()
    found = [Case(v.name, v.ops_files) for v in ready]
    singles = [o for o in ops_files() if all(o not in v.ops_files for v in ready)]
    found += [Case(f"shared+{Path(o).stem}", (o,)) for o in singles]
    found.append(Case("shared+all", tuple(singles)))
    return found


def example_inputs() -> dict[str, Any]:
    """The documented operator inputs that have an example value (nulls are secrets)."""
    return {k: v for k, v in load_vars(MANIFESTS / INPUTS).items() if v is not None}


def documented_inputs() -> set[str]:
    return set(load_vars(MANIFESTS / INPUTS))


def default_inputs() -> set[str]:
    return set(load_vars(MANIFESTS / DEFAULTS))


def job_spec(job: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((JOBS / job / "spec").read_text())
    return spec


def release_jobs() -> set[str]:
    return {p.name for p in JOBS.iterdir() if (p / "spec").is_file()}


def stores_data(job: str) -> bool:
    """A job whose templates use the persistent disk's mount point needs a persistent disk."""
    return any(
        "/var/vcap/store" in t.read_text() for t in (JOBS / job / "templates").rglob("*") if t.is_file()
    )


def is_errand(job: str) -> bool:
    return "bin/run" in job_spec(job)["templates"].values()


def undeclared(properties: dict[str, Any], declared: set[str], prefix: str = "") -> list[str]:
    """Property paths a manifest sets that the spec does not declare.

    Nested keys map to dotted spec names (`broker: {catalog: {plans: ...}}` is
    `broker.catalog.plans`); a declared name's value may itself be a map
    (postgres.additional_settings), so the walk stops there.
    """
    wrong: list[str] = []
    for key, value in properties.items():
        name = f"{prefix}{key}"
        if name in declared:
            continue
        if isinstance(value, dict) and any(d.startswith(name + ".") for d in declared):
            wrong += undeclared(value, declared, name + ".")
        else:
            wrong.append(name)
    return wrong


_ABSENT = object()


def lookup(properties: dict[str, Any], name: str) -> Any:
    """The value a manifest gives a dotted spec property, or _ABSENT."""
    node: Any = properties
    for key in name.split("."):
        if not isinstance(node, dict) or key not in node:
            return _ABSENT
        node = node[key]
    return node


def is_set(value: Any) -> bool:
    return value is not _ABSENT
