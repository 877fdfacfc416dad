"""Run a task of ci/tasks/ on this machine the way `fly execute` runs it on a worker.

`fly execute -c ci/tasks/X.yml -i source=. -i version=... -o tile=...` uploads each input directory,
creates each output as an empty directory beside them, sets the task's params as environment variables
(the task file's values, overridden by the step's), and runs ``run.path`` with the working directory
holding all of them. This does the same in a temporary directory, without the container: the tasks'
scripts are written to run the same on a laptop. What fly execute adds (the image) is not here; the
scripts use what this machine has (CI_VENV points them at the dev environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class TaskRun:
    workdir: Path
    returncode: int
    stdout: str
    stderr: str

    def output(self, name: str) -> Path:
        return self.workdir / name


def run_task(
    task_file: Path,
    workdir: Path,
    inputs: dict[str, Path],
    params: dict[str, str] | None = None,
    base_env: dict[str, str] | None = None,
    timeout: float = 900,
) -> TaskRun:
    config = yaml.safe_load(task_file.read_text())
    workdir.mkdir(parents=True)
    for item in config.get("inputs") or []:
        name = item["name"]
        if name not in inputs:
            if item.get("optional"):
                continue
            raise ValueError(f"{task_file.name}: input '{name}' was not given")
        # fly execute uploads a copy: the task may change its inputs without touching the originals.
        shutil.copytree(inputs[name], workdir / name, symlinks=True)
    for item in config.get("outputs") or []:
        (workdir / item["name"]).mkdir()
    for item in config.get("caches") or []:
        (workdir / item["path"]).mkdir(parents=True, exist_ok=True)

    env = dict(base_env if base_env is not None else os.environ)
    for key, value in (config.get("params") or {}).items():
        if value is not None:
            env[key] = str(value)
    env.update(params or {})
    run = config["run"]
    result = subprocess.run(
        [str(workdir / run["path"]), *run.get("args", [])],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return TaskRun(workdir, result.returncode, result.stdout, result.stderr)
