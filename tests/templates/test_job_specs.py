"""Every job's spec is complete and agrees with its files, its packages and the other jobs' links."""

from __future__ import annotations

import pytest

from tests.templates.job_inputs import MINIMAL
from tests.templates.rendered_checks import assert_shellcheck_clean
from tests.templates.renderer import JOBS_DIR, REPO, job_names, job_spec, render_job

EXPECTED_JOBS = {"postgres", "pg-monitor", "broker", "register-broker", "deregister-broker", "smoke-tests"}
ERRANDS = {"register-broker", "deregister-broker", "smoke-tests"}


def test_the_release_has_the_expected_jobs() -> None:
    assert set(job_names()) >= EXPECTED_JOBS


@pytest.mark.parametrize("job", sorted(EXPECTED_JOBS))
def test_spec_names_the_job_and_describes_it(job: str) -> None:
    spec = job_spec(job)
    assert spec["name"] == job
    assert isinstance(spec.get("description"), str)
    assert spec["description"].strip()


@pytest.mark.parametrize("job", sorted(EXPECTED_JOBS))
def test_every_template_in_spec_exists_and_every_template_file_is_in_spec(job: str) -> None:
    listed = set(job_spec(job)["templates"])
    templates_dir = JOBS_DIR / job / "templates"
    on_disk = {str(p.relative_to(templates_dir)) for p in templates_dir.rglob("*") if p.is_file()}
    assert listed - on_disk == set(), "listed in spec but missing"
    assert on_disk - listed == set(), "in templates/ but not listed in spec"


@pytest.mark.parametrize("job", sorted(EXPECTED_JOBS))
def test_template_destinations_are_unique_and_relative(job: str) -> None:
    destinations = list(job_spec(job)["templates"].values())
    assert len(destinations) == len(set(destinations))
    for dest in destinations:
        assert not dest.startswith("/")
        assert dest.split("/")[0] in ("bin", "config")


@pytest.mark.parametrize("job", sorted(EXPECTED_JOBS))
def test_every_property_has_a_description(job: str) -> None:
    for name, decl in job_spec(job)["properties"].items():
        assert isinstance(decl, dict), name
        assert isinstance(decl.get("description"), str), name
        assert decl["description"].strip(), name
        assert set(decl) <= {"description", "default", "example"}, name


@pytest.mark.parametrize("job", sorted(EXPECTED_JOBS))
def test_packages_named_by_the_job_exist_in_the_release(job: str) -> None:
    packages = job_spec(job)["packages"]
    assert packages
    for package in packages:
        assert (REPO / "packages" / package / "spec").is_file(), f"{job} needs package {package}"


@pytest.mark.parametrize("job", sorted(EXPECTED_JOBS))
def test_provided_link_properties_are_declared(job: str) -> None:
    spec = job_spec(job)
    for provided in spec.get("provides", []):
        for prop in provided.get("properties", []):
            assert prop in spec["properties"], f"{job} provides undeclared {prop}"


def test_every_consumed_link_has_a_provider_of_its_type() -> None:
    provided = {p["type"] for job in job_names() for p in job_spec(job).get("provides", [])}
    for job in job_names():
        for consumed in job_spec(job).get("consumes", []):
            assert consumed["type"] in provided, f"{job} consumes {consumed['type']}, which no job provides"


@pytest.mark.parametrize("job", sorted(ERRANDS))
def test_errands_have_a_run_script_and_nothing_for_monit(job: str) -> None:
    spec = job_spec(job)
    assert "bin/run" in spec["templates"].values()
    assert (JOBS_DIR / job / "monit").read_text().strip() == ""


@pytest.mark.parametrize("job", sorted(EXPECTED_JOBS - ERRANDS))
def test_service_jobs_run_under_bpm(job: str) -> None:
    # What monit starts of them, and how, is checked in test_monit_processes.py.
    assert "config/bpm.yml" in job_spec(job)["templates"].values()


@pytest.mark.parametrize(
    "job",
    [
        j
        for j in sorted(EXPECTED_JOBS)
        if any(d.startswith("bin/") for d in job_spec(j)["templates"].values())
    ],
)
def test_rendered_scripts_pass_shellcheck(job: str) -> None:
    properties, links = MINIMAL[job]
    assert_shellcheck_clean(job, render_job(job, properties, links=links))
