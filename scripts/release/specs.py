"""Reading the release directory's job and package specs, and refusing broken ones by name.

Everything a spec points at is checked before any archive is written: a job's
templates and packages, a package's `files` patterns and dependencies, and
dependency cycles. All problems are reported together, each naming the job or
package and the missing piece, so one run shows everything to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scripts.release import globbing
from scripts.release.errors import ReleaseError


@dataclass(frozen=True)
class JobSpec:
    name: str
    dir: Path
    templates: dict[str, str]
    packages: list[str]


@dataclass(frozen=True)
class PackageSpec:
    name: str
    dir: Path
    dependencies: list[str]
    files: list[str]
    excluded_files: list[str]


@dataclass(frozen=True)
class PackageFile:
    """A file a package ships: its path inside the package archive and where it is on disk."""

    name: str
    path: Path


@dataclass
class ReleaseTree:
    root: Path
    jobs: list[JobSpec] = field(default_factory=list)
    packages: list[PackageSpec] = field(default_factory=list)
    license_files: list[Path] = field(default_factory=list)

    def package(self, name: str) -> PackageSpec:
        return next(p for p in self.packages if p.name == name)


def _load_yaml(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ReleaseError(f"{what}: {path} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ReleaseError(f"{what}: {path} must be a YAML mapping")
    return data


def _string_list(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReleaseError(f"{what} must be a list of strings")
    return list(value)


def read_job(job_dir: Path) -> JobSpec:
    spec_path = job_dir / "spec"
    label = f"job '{job_dir.name}'"
    if not spec_path.is_file():
        raise ReleaseError(f"{label}: missing {spec_path}")
    spec = _load_yaml(spec_path, label)
    name = spec.get("name")
    if name != job_dir.name:
        raise ReleaseError(f"{label}: spec name '{name}' must match its directory name '{job_dir.name}'")
    templates = spec.get("templates") or {}
    if not isinstance(templates, dict):
        raise ReleaseError(f"{label}: 'templates' must map template files to their rendered paths")
    return JobSpec(
        name=name,
        dir=job_dir,
        templates={str(k): str(v) for k, v in templates.items()},
        packages=_string_list(spec.get("packages"), f"{label}: 'packages'"),
    )


def read_package(package_dir: Path) -> PackageSpec:
    spec_path = package_dir / "spec"
    label = f"package '{package_dir.name}'"
    if not spec_path.is_file():
        raise ReleaseError(f"{label}: missing {spec_path}")
    spec = _load_yaml(spec_path, label)
    name = spec.get("name")
    if name != package_dir.name:
        raise ReleaseError(f"{label}: spec name '{name}' must match its directory name '{package_dir.name}'")
    if not (package_dir / "packaging").is_file():
        raise ReleaseError(f"{label}: missing its packaging script {package_dir / 'packaging'}")
    if (package_dir / "pre_packaging").exists():
        # The CLI runs it at build time; we have no package that needs it, so refuse rather than guess.
        raise ReleaseError(f"{label}: pre_packaging scripts are not supported; do that work in packaging")
    return PackageSpec(
        name=name,
        dir=package_dir,
        dependencies=_string_list(spec.get("dependencies"), f"{label}: 'dependencies'"),
        files=_string_list(spec.get("files"), f"{label}: 'files'"),
        excluded_files=_string_list(spec.get("excluded_files"), f"{label}: 'excluded_files'"),
    )


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def read_tree(root: Path) -> ReleaseTree:
    """Read every job and package spec under root and check that each reference resolves."""
    tree = ReleaseTree(root=root)
    problems: list[str] = []
    for package_dir in _subdirs(root / "packages"):
        try:
            tree.packages.append(read_package(package_dir))
        except ReleaseError as exc:
            problems.append(str(exc))
    for job_dir in _subdirs(root / "jobs"):
        try:
            tree.jobs.append(read_job(job_dir))
        except ReleaseError as exc:
            problems.append(str(exc))
    tree.license_files = sorted(
        p for p in root.iterdir() if p.is_file() and p.name.startswith(("LICENSE", "NOTICE"))
    )
    problems.extend(_check_references(tree))
    if problems:
        raise ReleaseError("the release directory has problems:\n  - " + "\n  - ".join(problems))
    return tree


def _check_references(tree: ReleaseTree) -> list[str]:
    problems: list[str] = []
    names = {p.name for p in tree.packages}
    for job in tree.jobs:
        for template in job.templates:
            if not (job.dir / "templates" / template).is_file():
                problems.append(
                    f"job '{job.name}': spec names template '{template}', "
                    f"but {job.dir / 'templates' / template} does not exist"
                )
        for package in job.packages:
            if package not in names:
                problems.append(
                    f"job '{job.name}': spec names package '{package}', which is not in packages/"
                )
    for package in tree.packages:
        for dependency in package.dependencies:
            if dependency not in names:
                problems.append(
                    f"package '{package.name}': depends on package '{dependency}', which is not in packages/"
                )
    cycle = _find_cycle({p.name: [d for d in p.dependencies if d in names] for p in tree.packages})
    if cycle:
        problems.append("packages depend on each other in a cycle: " + " -> ".join(cycle))
    return problems


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


class SourceIndex:
    """The files under src/ and blobs/, listed once per build and shared by every package."""

    def __init__(self, root: Path) -> None:
        self.src_dir = root / "src"
        self.blobs_dir = root / "blobs"
        self.src = globbing.list_files(self.src_dir)
        self.blobs = globbing.list_files(self.blobs_dir)

    def package_files(self, package: PackageSpec) -> list[PackageFile]:
        """The files a package's `files` patterns select, src/ first as in the CLI, minus exclusions."""
        selected: dict[str, PackageFile] = {}
        for pattern in package.files:
            matched = False
            for base_dir, candidates in ((self.src_dir, self.src), (self.blobs_dir, self.blobs)):
                for rel in globbing.matching(pattern, candidates):
                    matched = True
                    selected.setdefault(rel, PackageFile(name=rel, path=base_dir / rel))
            if not matched:
                raise ReleaseError(
                    f"package '{package.name}': no file in src/ or blobs/ matches its pattern '{pattern}'"
                    " (for blobs: run `make blobs`)"
                )
        for pattern in package.excluded_files:
            for rel in globbing.matching(pattern, self.src) + globbing.matching(pattern, self.blobs):
                selected.pop(rel, None)
        for special in ("packaging", "pre_packaging"):
            if special in selected:
                raise ReleaseError(f"package '{package.name}': '{special}' must not be listed in its 'files'")
        return sorted(selected.values(), key=lambda f: f.name)
