"""A job's rendered monit file, read for what it makes monit start: which bpm processes, and how.

On a VM, monit is what starts a job's processes: each `check process` runs
its `start program`, which for this release's jobs is bpm (`bpm start JOB`
starts the process named like the job, `bpm start JOB -p PROCESS` any
other). The local harnesses start exactly what these checks would, so a
process that bpm.yml declares but no check starts does not run there either.

Only what the release's monit files use is understood: one statement a
line, `#` comments, and the statements `with pidfile`, `start program`,
`stop program` and `group` inside a `check process`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

BPM = "/var/vcap/jobs/bpm/bin/bpm"


class MonitSyntaxError(ValueError):
    """The monit file says something this reader does not understand; the message quotes it."""


@dataclass(frozen=True)
class MonitCheck:
    """One `check process` block, with the statements the release's monit files use."""

    name: str
    pidfile: str | None = None
    start_program: str | None = None
    stop_program: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class BpmCommand:
    """`bpm ACTION JOB [-p PROCESS]`; `process` is what bpm acts on (the job's name without -p)."""

    action: str
    job: str
    process: str


def bpm_pidfile(job: str, process: str) -> str:
    """Where bpm writes the pid of a job's process, which monit's check must watch."""
    return f"/var/vcap/sys/run/bpm/{job}/{process}.pid"


def parse_checks(text: str) -> list[MonitCheck]:
    """The `check process` blocks of a monit file, in order."""
    blocks: list[dict[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[:2] == ["check", "process"] and len(words) == 3:
            blocks.append({"name": words[2]})
            continue
        if not blocks:
            raise MonitSyntaxError(f"line {number} is outside a check process: {line!r}")
        key, value = _statement(words, number, line)
        if key in blocks[-1]:
            raise MonitSyntaxError(f"line {number} repeats {key} in check {blocks[-1]['name']}: {line!r}")
        blocks[-1][key] = value
    return [MonitCheck(**block) for block in blocks]


def _statement(words: list[str], number: int, line: str) -> tuple[str, str]:
    if words[:2] == ["with", "pidfile"] and len(words) == 3:
        return "pidfile", words[2]
    if words[:2] == ["start", "program"] and len(words) == 3:
        return "start_program", words[2]
    if words[:2] == ["stop", "program"] and len(words) == 3:
        return "stop_program", words[2]
    if words[0] == "group" and len(words) == 2:
        return "group", words[1]
    raise MonitSyntaxError(f"line {number} is not a statement this reader knows: {line!r}")


def parse_bpm_command(program: str) -> BpmCommand:
    """A start or stop program that calls bpm, as bpm reads its arguments (`-p`/`--process`)."""
    words = shlex.split(program)
    if len(words) < 3 or words[0] != BPM:
        raise MonitSyntaxError(f"not a `{BPM} ACTION JOB` command: {program!r}")
    action, job, *options = words[1:]
    process = job
    match options:
        case []:
            pass
        case ["-p" | "--process", name]:
            process = name
        case [option] if option.startswith("--process="):
            process = option.removeprefix("--process=")
        case _:
            raise MonitSyntaxError(f"options other than one -p PROCESS: {program!r}")
    return BpmCommand(action=action, job=job, process=process)


def started_bpm_processes(text: str, job: str) -> list[str]:
    """The processes of `job` that the monit file's checks start through bpm, in the file's order.

    A check that starts something other than one of this job's bpm processes
    is an error: the harnesses could not start it as monit would.
    """
    processes: list[str] = []
    for check in parse_checks(text):
        if check.start_program is None:
            raise MonitSyntaxError(f"check {check.name} has no start program")
        command = parse_bpm_command(check.start_program)
        if command.action != "start" or command.job != job:
            raise MonitSyntaxError(f"check {check.name} does not start a bpm process of {job}: {command}")
        processes.append(command.process)
    return processes
