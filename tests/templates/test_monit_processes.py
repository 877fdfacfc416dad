"""Monit starts every process bpm.yml declares, each through bpm, in every configuration a job renders in.

On a VM nothing but monit starts a job's processes, and `bpm start JOB`
starts only the process named like the job: any other process of bpm.yml
needs a check of its own that runs `bpm start JOB -p PROCESS` and watches the
pidfile bpm writes for it. Both files are templates (bpm.yml.erb and the
monit file, which the director renders as ERB too), so they are compared as
rendered, for each configuration the job's templates branch on.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml

from tests.templates.job_inputs import MINIMAL, pg_monitor_link, postgres_ha_minimal
from tests.templates.monit import (
    BpmCommand,
    MonitCheck,
    MonitSyntaxError,
    bpm_pidfile,
    parse_bpm_command,
    parse_checks,
)
from tests.templates.renderer import Link, job_names, job_spec, render_job
from tests.templates.vcap_tree import VcapTree

BPM_CONFIG = "config/bpm.yml"

# job -> configuration -> (properties, links). Every job renders with its least inputs; the
# postgres job also in HA mode (a `pg-monitor` link), where bpm.yml gains a process.
CONFIGURATIONS: dict[str, dict[str, tuple[dict[str, Any], dict[str, Link]]]] = {
    job: {"minimal": inputs} for job, inputs in MINIMAL.items()
}
CONFIGURATIONS["postgres"] = {
    "single-node": MINIMAL["postgres"],
    "ha": (postgres_ha_minimal(), {"pg-monitor": pg_monitor_link()}),
}


def bpm_jobs() -> list[str]:
    return [job for job in job_names() if BPM_CONFIG in job_spec(job)["templates"].values()]


def cases() -> list[tuple[str, str]]:
    return [(job, config) for job in bpm_jobs() for config in CONFIGURATIONS.get(job, {})]


_rendered: dict[tuple[str, str], tuple[list[str], list[MonitCheck]]] = {}


def rendered(job: str, config: str) -> tuple[list[str], list[MonitCheck]]:
    """The process names of the rendered bpm.yml and the checks of the rendered monit file."""
    if (job, config) not in _rendered:
        properties, links = CONFIGURATIONS[job][config]
        files = render_job(job, properties, links=links)
        processes = [process["name"] for process in yaml.safe_load(files[BPM_CONFIG])["processes"]]
        _rendered[job, config] = (processes, parse_checks(files["monit"]))
    return _rendered[job, config]


def bpm_commands(check: MonitCheck) -> tuple[BpmCommand, BpmCommand]:
    """The check's start and stop programs, read as bpm reads them."""
    assert check.start_program is not None, f"check {check.name} has no start program"
    assert check.stop_program is not None, f"check {check.name} has no stop program"
    return parse_bpm_command(check.start_program), parse_bpm_command(check.stop_program)


def test_every_job_under_bpm_has_configurations_here() -> None:
    assert bpm_jobs(), "no job renders a config/bpm.yml"
    assert set(bpm_jobs()) <= set(CONFIGURATIONS), "render inputs missing for a job with bpm.yml"


@pytest.mark.parametrize(("job", "config"), cases())
def test_every_bpm_process_has_exactly_one_check_starting_it(job: str, config: str) -> None:
    processes, checks = rendered(job, config)
    started = Counter(bpm_commands(check)[0].process for check in checks)
    for process in processes:
        assert started[process] == 1, f"{job} ({config}): {started[process]} monit checks start {process}"


@pytest.mark.parametrize(("job", "config"), cases())
def test_monit_names_no_process_bpm_lacks(job: str, config: str) -> None:
    processes, checks = rendered(job, config)
    for check in checks:
        for command in bpm_commands(check):
            assert command.process in processes, (
                f"{job} ({config}): check {check.name} names {command.process}, not in bpm.yml"
            )


@pytest.mark.parametrize(("job", "config"), cases())
def test_each_check_starts_stops_and_watches_its_own_process_through_bpm(job: str, config: str) -> None:
    _, checks = rendered(job, config)
    assert checks, f"{job} ({config}): monit has no check"
    for check in checks:
        start, stop = bpm_commands(check)
        # Without -p bpm acts on the process named like the job, so -p may be left out only for it.
        assert (start.action, start.job) == ("start", job), check.start_program
        assert (stop.action, stop.job, stop.process) == ("stop", job, start.process), check.stop_program
        assert check.pidfile == bpm_pidfile(job, start.process), check
        # The agent starts and stops the checks of group vcap.
        assert check.group == "vcap", check


@pytest.mark.parametrize(("job", "config"), cases())
def test_check_names_are_unique(job: str, config: str) -> None:
    _, checks = rendered(job, config)
    names = [check.name for check in checks]
    assert len(names) == len(set(names)), names


@pytest.mark.parametrize(
    ("config", "expected"), [("single-node", ["postgres"]), ("ha", ["postgres", "standby-watch"])]
)
def test_the_harnesses_start_what_the_installed_monit_file_starts(config: str, expected: list[str]) -> None:
    properties, links = CONFIGURATIONS["postgres"][config]
    tree = VcapTree.create()
    try:
        # Installed outside a mount namespace, the files name the tree's root instead of /var/vcap.
        tree.install_job("postgres", render_job("postgres", properties, links=links))
        assert tree.monit_started_processes("postgres") == expected
    finally:
        tree.destroy()


@pytest.mark.parametrize(
    "monit",
    [
        '  start program "/var/vcap/jobs/bpm/bin/bpm start job"\n',
        "check process job\n  if totalmem > 1 GB then restart\n",
        'check process job\n  start program "/var/vcap/jobs/bpm/bin/bpm start job"\n'
        '  start program "/var/vcap/jobs/bpm/bin/bpm start job -p other"\n',
    ],
)
def test_the_monit_reader_refuses_what_it_does_not_understand(monit: str) -> None:
    with pytest.raises(MonitSyntaxError):
        parse_checks(monit)


@pytest.mark.parametrize(
    "program",
    ["/usr/bin/true", "/var/vcap/jobs/bpm/bin/bpm start job -x other", "/var/vcap/jobs/bpm/bin/bpm start"],
)
def test_the_bpm_command_reader_refuses_other_commands(program: str) -> None:
    with pytest.raises(MonitSyntaxError):
        parse_bpm_command(program)


def test_the_bpm_command_reader_takes_the_process_bpm_would() -> None:
    assert parse_bpm_command("/var/vcap/jobs/bpm/bin/bpm stop job").process == "job"
    assert parse_bpm_command("/var/vcap/jobs/bpm/bin/bpm stop job -p other").process == "other"
    assert parse_bpm_command("/var/vcap/jobs/bpm/bin/bpm stop job --process=other").process == "other"
