"""Walking a Concourse job plan in the order Concourse runs it, tracking which artifacts each step can see.

Steps are sequential; the children of ``in_parallel`` each see only what existed before the block, and
everything they make is there after it. Hooks (``on_success``, ``ensure``, ...) run after their step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HOOKS = ("on_success", "on_failure", "on_error", "on_abort", "ensure")


@dataclass(frozen=True)
class Origin:
    """Where an artifact of a plan comes from: a resource (get, or the fetch after a put) or a task."""

    kind: str  # "get", "put" or "task"
    name: str  # the resource, or the task step's name


Artifacts = dict[str, Origin]
# Called for each get, put, task, ... step with the artifacts it can see; returns the artifacts it makes.
Visitor = Callable[[dict[str, Any], Artifacts], Artifacts]


def walk(steps: Any, visit: Visitor) -> None:
    _walk_sequence(steps, {}, visit)


def _walk_sequence(steps: Any, available: Artifacts, visit: Visitor) -> None:
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict):
            _walk_step(step, available, visit)


def _walk_step(step: dict[str, Any], available: Artifacts, visit: Visitor) -> None:
    if "in_parallel" in step:
        block = step["in_parallel"]
        children = block.get("steps", []) if isinstance(block, dict) else block
        before = dict(available)
        for child in children if isinstance(children, list) else []:
            if isinstance(child, dict):
                branch = dict(before)
                _walk_step(child, branch, visit)
                available.update({k: v for k, v in branch.items() if before.get(k) != v})
    elif "do" in step:
        _walk_sequence(step["do"], available, visit)
    elif isinstance(step.get("try"), dict):
        _walk_step(step["try"], available, visit)
    else:
        available.update(visit(step, dict(available)))
    for hook in HOOKS:
        if isinstance(step.get(hook), dict):
            _walk_step(step[hook], dict(available), visit)
