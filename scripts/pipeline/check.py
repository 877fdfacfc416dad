"""Check a Concourse pipeline against its repository: what `fly validate-pipeline` cannot see.

Each defect is one line naming the job, step, resource or file at fault:

- every resource has a core or declared type, is used, and keeps its secrets as ((credentials));
- every get and put names a declared resource; a put's ``file:``/``repository:`` lies in an artifact;
- every task file exists in the repository, its inputs are fetched by a get or made by an earlier step,
  its image is set, and its ``run.path`` is an executable script under scripts/ in the repository;
- ``passed:`` names jobs that use the resource, forms no cycle, and gives the intended order;
- the version (the semver resource) is chosen once and reaches the final job through ``passed:``,
  from the same builds as the artifacts beside it, never bumped on the way (``bump: final`` aside).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scripts.pipeline.steps import Artifacts, Origin, walk

# Resource types every Concourse installation ships; any other must be declared in resource_types.
CORE_RESOURCE_TYPES = frozenset(
    {
        "bosh-io-release",
        "bosh-io-stemcell",
        "cf",
        "docker-image",
        "git",
        "github-release",
        "hg",
        "mock",
        "pool",
        "registry-image",
        "s3",
        "semver",
        "time",
        "tracker",
    }
)

# This product's intended order: test -> build-release -> build-tile -> ship, with ha-test beside build-tile.
PRODUCT_ORDER: tuple[tuple[str, str], ...] = (
    ("test", "build-release"),
    ("build-release", "build-tile"),
    ("build-tile", "ship"),
    ("build-release", "ha-test"),
    ("ha-test", "ship"),
)
PRODUCT_FINAL_JOB = "ship"

_SECRET_NAME = re.compile(r"(private_key|secret|password|token|access_key)", re.IGNORECASE)
_CREDENTIAL = re.compile(r"^\(\([A-Za-z0-9_.:/-]+\)\)$")


@dataclass(frozen=True)
class GetStep:
    job: str
    name: str
    resource: str
    passed: tuple[str, ...]
    params: dict[str, Any]


@dataclass
class _Checker:
    pipeline: dict[str, Any]
    repo_root: Path
    order: Sequence[tuple[str, str]]
    final_job: str | None
    version_resource: str | None
    defects: list[str] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    gets: list[GetStep] = field(default_factory=list)
    uses: dict[str, set[str]] = field(default_factory=dict)  # job -> resources it gets or puts
    puts: dict[str, set[str]] = field(default_factory=dict)  # job -> resources it puts

    def run(self) -> list[str]:
        self._resources()
        self._jobs()
        self._passed()
        self._order()
        self._version()
        used = set().union(*self.uses.values()) if self.uses else set()
        for name in self.resources:
            if name not in used:
                self.defects.append(f"resources.{name} is not used by any job")
        return self.defects

    # -- resources ---------------------------------------------------------------------------------

    def _resources(self) -> None:
        declared_types = {
            str(t.get("name")) for t in self.pipeline.get("resource_types") or [] if isinstance(t, dict)
        }
        for index, resource in enumerate(self.pipeline.get("resources") or []):
            name = resource.get("name") if isinstance(resource, dict) else None
            if not name:
                self.defects.append(f"resources[{index}] has no name")
                continue
            if name in self.resources:
                self.defects.append(f"resources.{name} is declared twice")
            self.resources[name] = resource
            kind = resource.get("type")
            if kind not in CORE_RESOURCE_TYPES and kind not in declared_types:
                self.defects.append(
                    f"resources.{name}: type '{kind}' is neither a core resource type nor in resource_types"
                )
            self._literal_secrets(f"resources.{name}.source", resource.get("source"))

    def _literal_secrets(self, where: str, values: Any) -> None:
        if not isinstance(values, dict):
            return
        for key, value in values.items():
            if isinstance(value, dict):
                self._literal_secrets(f"{where}.{key}", value)
            elif (
                _SECRET_NAME.search(str(key))
                and value not in (None, "")
                and not _CREDENTIAL.match(str(value))
            ):
                self.defects.append(f"{where}.{key} is a literal value; use a ((credential)) for secrets")

    # -- jobs and their plans -------------------------------------------------------------------------

    def _jobs(self) -> None:
        for index, job in enumerate(self.pipeline.get("jobs") or []):
            name = job.get("name") if isinstance(job, dict) else None
            if not name:
                self.defects.append(f"jobs[{index}] has no name")
                continue
            if name in self.jobs:
                self.defects.append(f"jobs.{name} is declared twice")
            self.jobs[name] = job
            self.uses.setdefault(name, set())
            self.puts.setdefault(name, set())
        for name, job in self.jobs.items():
            walk(
                job.get("plan"), lambda step, available, job_name=name: self._step(job_name, step, available)
            )

    def _step(self, job: str, step: dict[str, Any], available: Artifacts) -> Artifacts:
        if "get" in step:
            return self._get(job, step)
        if "put" in step:
            return self._put(job, step, available)
        if "task" in step:
            return self._task(job, step, available)
        return {}

    def _resource_of(self, job: str, verb: str, step: dict[str, Any]) -> str | None:
        resource = str(step.get("resource", step[verb]))
        if resource not in self.resources:
            self.defects.append(
                f"jobs.{job}: {verb} {step[verb]}: no resource named '{resource}' is declared"
            )
            return None
        self.uses[job].add(resource)
        return resource

    def _get(self, job: str, step: dict[str, Any]) -> Artifacts:
        resource = self._resource_of(job, "get", step)
        if resource is None:
            return {}
        passed = step.get("passed") or []
        params = step.get("params") or {}
        self.gets.append(GetStep(job, str(step["get"]), resource, tuple(map(str, passed)), dict(params)))
        return {str(step["get"]): Origin("get", resource)}

    def _put(self, job: str, step: dict[str, Any], available: Artifacts) -> Artifacts:
        resource = self._resource_of(job, "put", step)
        if resource is None:
            return {}
        self.puts[job].add(resource)
        params = step.get("params") or {}
        for key in ("file", "repository"):
            value = params.get(key)
            if isinstance(value, str) and value.split("/", 1)[0] not in available:
                self.defects.append(
                    f"jobs.{job}: put {step['put']}: params.{key} '{value}' is in no artifact of an "
                    "earlier step"
                )
        return {str(step["put"]): Origin("put", resource)}

    def _is_repo(self, origin: Origin | None) -> bool:
        return (
            origin is not None
            and origin.kind in ("get", "put")
            and (self.resources.get(origin.name) or {}).get("type") == "git"
        )

    def _task(self, job: str, step: dict[str, Any], available: Artifacts) -> Artifacts:
        where = f"jobs.{job}: task {step['task']}"
        config = step.get("config")
        if "file" in step:
            config = self._task_file(where, str(step["file"]), available)
            if config is None:
                return {}
        if not isinstance(config, dict):
            self.defects.append(f"{where}: has neither a task file nor a config")
            return {}
        self._literal_secrets(f"{where}: params", step.get("params"))
        if not config.get("platform"):
            self.defects.append(f"{where}: the task config has no platform")
        image = config.get("image_resource")
        if "image" not in step and not (
            isinstance(image, dict) and image.get("type") and image.get("source")
        ):
            self.defects.append(f"{where}: no image_resource with a type and source (and no image:)")

        inputs = [i for i in config.get("inputs") or [] if isinstance(i, dict)]
        names = [str(i.get("name")) for i in inputs]
        mapping = {str(k): str(v) for k, v in (step.get("input_mapping") or {}).items()}
        for key in mapping:
            if key not in names:
                self.defects.append(
                    f"{where}: input_mapping names '{key}', which is not an input of the task"
                )
        for item, name in zip(inputs, names, strict=True):
            artifact = mapping.get(name, name)
            if artifact not in available and not item.get("optional"):
                via = f" (mapped to '{artifact}')" if artifact != name else ""
                self.defects.append(
                    f"{where}: input '{name}'{via} is neither fetched by a get nor made by an earlier step"
                )
        self._run_path(where, config, names, mapping, available)

        outputs = [str(o.get("name")) for o in config.get("outputs") or [] if isinstance(o, dict)]
        out_mapping = {str(k): str(v) for k, v in (step.get("output_mapping") or {}).items()}
        for key in out_mapping:
            if key not in outputs:
                self.defects.append(
                    f"{where}: output_mapping names '{key}', which is not an output of the task"
                )
        return {out_mapping.get(o, o): Origin("task", str(step["task"])) for o in outputs}

    def _task_file(self, where: str, path: str, available: Artifacts) -> dict[str, Any] | None:
        artifact, _, rest = path.partition("/")
        if artifact not in available:
            self.defects.append(f"{where}: file {path}: '{artifact}' is not fetched by a get in this plan")
            return None
        if not self._is_repo(available[artifact]):
            self.defects.append(
                f"{where}: file {path} is not in the repository ('{artifact}' is not a git get)"
            )
            return None
        file = self.repo_root / rest
        if not file.is_file():
            self.defects.append(f"{where}: task file {path} does not exist ({rest} is not in the repository)")
            return None
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            self.defects.append(f"{where}: task file {rest} is not valid YAML: {first}")
            return None
        if not isinstance(loaded, dict):
            self.defects.append(f"{where}: task file {rest} is not a mapping")
            return None
        return loaded

    def _run_path(
        self,
        where: str,
        config: dict[str, Any],
        inputs: list[str],
        mapping: dict[str, str],
        available: Artifacts,
    ) -> None:
        path = str((config.get("run") or {}).get("path") or "")
        if not path:
            self.defects.append(f"{where}: the task config has no run.path")
            return
        first, _, rest = path.partition("/")
        if not rest or first not in inputs or not self._is_repo(available.get(mapping.get(first, first))):
            self.defects.append(f"{where}: run.path '{path}' is not a script in the repository input")
            return
        script = self.repo_root / rest
        if not rest.startswith("scripts/"):
            self.defects.append(f"{where}: run.path '{path}' is not under scripts/")
        elif not script.is_file():
            self.defects.append(
                f"{where}: run.path '{path}' does not exist ({rest} is not in the repository)"
            )
        elif not os.access(script, os.X_OK):
            self.defects.append(f"{where}: run.path '{path}' is not executable (chmod +x {rest})")

    # -- passed: constraints, order, version ------------------------------------------------------------

    def _passed(self) -> None:
        for get in self.gets:
            for upstream in get.passed:
                if upstream not in self.jobs:
                    self.defects.append(
                        f"jobs.{get.job}: get {get.name}: passed job '{upstream}' does not exist"
                    )
                elif get.resource not in self.uses[upstream]:
                    self.defects.append(
                        f"jobs.{get.job}: get {get.name}: passed job '{upstream}' neither gets nor puts "
                        f"{get.resource}"
                    )

    def _upstream(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {job: set() for job in self.jobs}
        for get in self.gets:
            graph[get.job].update(p for p in get.passed if p in self.jobs)
        return graph

    def _order(self) -> None:
        graph = self._upstream()
        cycle = _find_cycle(graph)
        if cycle:
            self.defects.append("passed: constraints form a cycle: " + " -> ".join(cycle))
        missing = sorted({job for edge in self.order for job in edge if job not in self.jobs})
        for job in missing:
            self.defects.append(f"jobs: there is no job '{job}'")
        for upstream, downstream in self.order:
            if upstream in self.jobs and downstream in self.jobs and upstream not in graph[downstream]:
                self.defects.append(
                    f"jobs.{downstream}: does not run after {upstream} (no get with passed: [{upstream}])"
                )

    def _version(self) -> None:
        name = self.version_resource
        if name is None:
            semver = [n for n, r in self.resources.items() if r.get("type") == "semver"]
            if len(semver) != 1:
                self.defects.append(
                    f"resources: expected one semver resource for the version, found {len(semver)}"
                )
                return
            name = semver[0]
        by_job: dict[str, list[GetStep]] = {}
        for get in self.gets:
            by_job.setdefault(get.job, []).append(get)
        for job, gets in by_job.items():
            for get in (g for g in gets if g.resource == name and g.passed):
                if get.params.get("pre") or get.params.get("bump") not in (None, "final"):
                    changes = ", ".join(f"{k}: {get.params[k]}" for k in ("bump", "pre") if k in get.params)
                    self.defects.append(
                        f"jobs.{job}: get {get.name} changes the version upstream jobs used ({changes}); "
                        "only bump: final may follow passed:"
                    )
                for other in gets:
                    if other is not get and other.passed and not set(get.passed) & set(other.passed):
                        self.defects.append(
                            f"jobs.{job}: get {get.name} (passed {list(get.passed)}) and get {other.name} "
                            f"(passed {list(other.passed)}) share no upstream job, so they may come from "
                            "different builds"
                        )
        if self.final_job and self.final_job in self.jobs:
            self._version_chain(name, by_job)

    def _version_chain(self, name: str, by_job: dict[str, list[GetStep]]) -> None:
        """From the final job up: each job takes the version through passed:, up to the job that puts it."""
        todo, seen = [self.final_job], set()
        while todo:
            job = str(todo.pop())
            if job in seen or job not in self.jobs:
                continue
            seen.add(job)
            gets = [g for g in by_job.get(job, []) if g.resource == name]
            passed = [p for g in gets for p in g.passed]
            if passed:
                todo.extend(passed)
            elif job == self.final_job:
                taken = "gets it without passed:" if gets else "does not get it"
                self.defects.append(
                    f"jobs.{job}: does not take the version the builds used ({name}: {taken})"
                )
            elif name not in self.puts[job]:
                self.defects.append(
                    f"jobs.{job}: gets {name} without passed: and does not put it, so the version it "
                    "hands on was chosen by no build"
                )


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                return list(reversed(cycle))  # in running order: upstream first
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def check_pipeline(
    pipeline: dict[str, Any],
    repo_root: Path,
    order: Sequence[tuple[str, str]] = (),
    final_job: str | None = None,
    version_resource: str | None = None,
) -> list[str]:
    """Every defect of a loaded pipeline whose task files and scripts live in repo_root, one line each."""
    if not isinstance(pipeline, dict):
        return ["the pipeline is not a mapping"]
    return _Checker(pipeline, repo_root, order, final_job, version_resource).run()


def check_pipeline_file(
    path: Path,
    repo_root: Path,
    order: Sequence[tuple[str, str]] = PRODUCT_ORDER,
    final_job: str | None = PRODUCT_FINAL_JOB,
) -> list[str]:
    try:
        pipeline = yaml.safe_load(path.read_text())
    except OSError as exc:
        return [f"{path}: {exc.strerror}"]
    except yaml.YAMLError as exc:
        return [f"{path} is not valid YAML: {str(exc).splitlines()[0]}"]
    return check_pipeline(pipeline, repo_root, order, final_job)
