"""Each rendered manifest checked against the release's job specs, as the director would check it
at deploy time (and a few things it would only find out when the VMs misbehave)."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.manifests.opsfile import Operation, apply_ops
from scripts.manifests.render import MANIFESTS, load_yaml
from scripts.manifests.variables import PLACEHOLDER, references
from tests.manifests.deployment import (
    RELEASE,
    Case,
    cases,
    default_inputs,
    documented_inputs,
    is_errand,
    is_set,
    job_spec,
    lookup,
    ops_files,
    release_jobs,
    stores_data,
    undeclared,
)

CASES = cases()


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    chosen: Case = request.param
    return chosen


@pytest.fixture
def manifest(case: Case) -> dict[str, Any]:
    return case.render()


def our_jobs(manifest: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(instance group, job) for every job of this release in the manifest."""
    return [(g, j) for g in manifest["instance_groups"] for j in g["jobs"] if j["release"] == RELEASE]


def test_every_job_comes_from_a_listed_release(manifest: dict[str, Any]) -> None:
    releases = {r["name"] for r in manifest["releases"]}
    for group in manifest["instance_groups"]:
        for job in group["jobs"]:
            assert job["release"] in releases, (
                f"{group['name']}/{job['name']}: release {job['release']} not listed"
            )
    assert {r["name"] for r in manifest["releases"]} == {
        j["release"] for g in manifest["instance_groups"] for j in g["jobs"]
    }


def test_jobs_of_this_release_exist(manifest: dict[str, Any]) -> None:
    for group, job in our_jobs(manifest):
        assert job["name"] in release_jobs(), f"{group['name']}: no job {job['name']} in jobs/"


def test_every_property_set_is_declared_in_the_jobs_spec(manifest: dict[str, Any]) -> None:
    for group, job in our_jobs(manifest):
        declared = set(job_spec(job["name"]).get("properties") or {})
        wrong = undeclared(job.get("properties") or {}, declared)
        assert not wrong, f"{group['name']}/{job['name']} sets properties its spec lacks: {wrong}"


def test_only_release_jobs_carry_properties(manifest: dict[str, Any]) -> None:
    # bpm's spec is not in this repository, and it needs no properties here.
    for group in manifest["instance_groups"]:
        for job in group["jobs"]:
            if job["release"] != RELEASE:
                assert not job.get("properties"), f"{group['name']}/{job['name']}"


def test_secret_properties_are_placeholders(manifest: dict[str, Any]) -> None:
    """A property whose spec example is a ((variable)) is a secret: the manifest may only
    reference it, never hold it, whatever ops-files an operator adds."""
    for group, job in our_jobs(manifest):
        for name, decl in (job_spec(job["name"]).get("properties") or {}).items():
            example = (decl or {}).get("example")
            value = lookup(job.get("properties") or {}, name)
            if isinstance(example, str) and example.startswith("((") and is_set(value):
                where = f"{group['name']}/{job['name']}: {name} must be a ((variable))"
                assert isinstance(value, str), where
                assert PLACEHOLDER.fullmatch(value), where


def providers(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(link name as provided, link type, instance group) for every link the deployment provides."""
    found: list[tuple[str, str, str]] = []
    for group, job in our_jobs(manifest):
        for provided in job_spec(job["name"]).get("provides") or []:
            alias = ((job.get("provides") or {}).get(provided["name"]) or {}).get("as", provided["name"])
            found.append((alias, provided["type"], group["name"]))
    return found


def test_every_consumed_link_has_a_provider(manifest: dict[str, Any]) -> None:
    available = providers(manifest)
    for group, job in our_jobs(manifest):
        consumes = job_spec(job["name"]).get("consumes") or []
        configured = job.get("consumes") or {}
        unknown = set(configured) - {c["name"] for c in consumes}
        assert not unknown, (
            f"{group['name']}/{job['name']} configures links its spec does not consume: {unknown}"
        )
        for link in consumes:
            wanted = (configured.get(link["name"]) or {}).get("from")
            matching = [p for p in available if p[1] == link["type"] and (wanted is None or p[0] == wanted)]
            if wanted is None:
                # Implicit linking needs exactly one provider of the type.
                ok = len(matching) == 1 or (not matching and link.get("optional", False))
            else:
                ok = len(matching) == 1
            assert ok, (
                f"{group['name']}/{job['name']} consumes {link['name']} ({link['type']}): "
                f"providers {matching}"
            )


def test_instance_groups_have_placement_and_resources(manifest: dict[str, Any]) -> None:
    stemcells = {s["alias"] for s in manifest["stemcells"]}
    for group in manifest["instance_groups"]:
        name = group["name"]
        assert isinstance(group["azs"], list), f"{name}: azs"
        assert group["azs"], f"{name}: azs"
        assert all(isinstance(z, str) and z for z in group["azs"]), f"{name}: azs {group['azs']}"
        assert group["networks"], f"{name}: networks"
        assert all(n.get("name") for n in group["networks"]), f"{name}: networks"
        assert isinstance(group.get("vm_type"), str), f"{name}: vm_type"
        assert group["vm_type"], f"{name}: vm_type"
        assert group.get("stemcell") in stemcells, f"{name}: stemcell"
        assert isinstance(group.get("instances"), int), f"{name}: instances"
        assert group["instances"] >= 1, f"{name}: instances"
        if any(stores_data(j["name"]) for g, j in our_jobs(manifest) if g is group):
            assert group.get("persistent_disk_type"), (
                f"{name}: a job keeps data, so it needs persistent_disk_type"
            )


def test_errand_jobs_run_only_in_errand_groups(manifest: dict[str, Any]) -> None:
    for group, job in our_jobs(manifest):
        errand_group = group.get("lifecycle") == "errand"
        assert is_errand(job["name"]) == errand_group, f"{group['name']}/{job['name']}"
        if not errand_group:
            # Our long-running processes run under bpm, which must be colocated.
            assert any(j["name"] == "bpm" for j in group["jobs"]), f"{group['name']} lacks bpm"


def test_deployment_wide_settings(manifest: dict[str, Any]) -> None:
    assert manifest["name"] == "postgres-service"
    assert [s["os"] for s in manifest["stemcells"]] == ["ubuntu-jammy"]
    for key in ("canaries", "max_in_flight", "canary_watch_time", "update_watch_time"):
        assert key in manifest["update"], key
    names = [g["name"] for g in manifest["instance_groups"]]
    assert len(names) == len(set(names))
    # With serial updates the order is the deploy order: PostgreSQL before the broker that needs it.
    assert names.index("postgres") < names.index("broker")


def test_every_variable_is_generated_or_a_documented_input(manifest: dict[str, Any]) -> None:
    # Defaults and example inputs are resolved; what remains must be generated or a secret input.
    generated = {v["name"] for v in manifest.get("variables") or []}
    unresolved = references(manifest)
    known = generated | default_inputs() | documented_inputs()
    assert unresolved <= known, f"undocumented variables: {sorted(unresolved - known)}"


def test_no_input_is_left_unused() -> None:
    used: set[str] = set()
    for path in [MANIFESTS / "postgres-service.yml", *(MANIFESTS / o for o in ops_files())]:
        used |= references(load_yaml(path))
    assert (default_inputs() | documented_inputs()) <= used


def test_generated_variables_are_well_formed(manifest: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in manifest.get("variables") or []}
    assert len(variables) == len(manifest.get("variables") or [])
    used = references({k: v for k, v in manifest.items() if k != "variables"})
    for name, var in variables.items():
        assert var["type"] in {"password", "certificate", "ssh", "rsa"}, f"{name}: type {var['type']}"
        if var["type"] == "certificate":
            options = var["options"]
            assert options.get("is_ca") or options.get("ca") in variables, f"{name}: signed by an unknown CA"
            if options.get("ca"):
                assert variables[options["ca"]]["options"].get("is_ca"), (
                    f"{name}: {options['ca']} is not a CA"
                )
        # A CA is used through the certificates it signs; anything else must be read by a job.
        assert name in used or var.get("options", {}).get("is_ca"), f"variable {name} is never used"


@pytest.mark.parametrize("ops", ops_files())
def test_each_ops_file_applies_alone_without_inputs(ops: str) -> None:
    # As `bosh deploy -o` would apply it to the base: no path error, even before variables.
    Case(ops, (ops,)).render()


def test_ops_files_fail_loudly_on_a_renamed_group() -> None:
    """The ops-files address groups by name without `?`: if the base renamed one, they must fail
    rather than silently add an empty instance group."""
    for ops in ops_files():
        for op in load_yaml(MANIFESTS / ops):
            path = op["path"]
            if path.startswith("/instance_groups/"):
                assert not path.split("/")[2].endswith("?"), f"{ops}: {path}"


# The checks above, shown to fail on manifests with the mistakes they exist to catch.


def broken(*ops: Operation) -> dict[str, Any]:
    return apply_ops(Case("shared", ()).render(), list(ops))


def set_op(path: str, value: Any) -> Operation:
    return Operation("replace", path, value)


BROKER_JOB = "/instance_groups/name=broker/jobs/name=broker"


@pytest.mark.parametrize(
    ("check", "op", "complaint"),
    [
        (
            test_every_property_set_is_declared_in_the_jobs_spec,
            set_op(f"{BROKER_JOB}/properties/broker/database?/sslmod", "require"),
            "broker.database.sslmod",
        ),
        (
            test_every_property_set_is_declared_in_the_jobs_spec,
            set_op("/instance_groups/name=postgres/jobs/name=postgres/properties/postgres/tls?", "on"),
            "postgres.tls",
        ),
        (
            test_secret_properties_are_placeholders,
            set_op(f"{BROKER_JOB}/properties/broker/password", "hunter2"),
            "broker.password",
        ),
        (
            test_every_consumed_link_has_a_provider,
            set_op(f"{BROKER_JOB}/consumes/postgres/from", "pg"),
            "postgres",
        ),
        (
            test_every_consumed_link_has_a_provider,
            Operation("remove", "/instance_groups/name=postgres"),
            "consumes postgres",
        ),
        (test_instance_groups_have_placement_and_resources, set_op("/instance_groups/0/azs", []), "azs"),
        (
            test_instance_groups_have_placement_and_resources,
            Operation("remove", "/instance_groups/name=postgres/persistent_disk_type"),
            "persistent_disk_type",
        ),
        (
            test_instance_groups_have_placement_and_resources,
            set_op("/instance_groups/1/stemcell", "x"),
            "stemcell",
        ),
        (test_every_job_comes_from_a_listed_release, Operation("remove", "/releases/name=bpm"), "bpm"),
        (
            test_errand_jobs_run_only_in_errand_groups,
            Operation("remove", "/instance_groups/name=smoke-tests/lifecycle"),
            "smoke-tests",
        ),
        (
            test_errand_jobs_run_only_in_errand_groups,
            Operation("remove", "/instance_groups/name=broker/jobs/name=bpm"),
            "bpm",
        ),
        (
            test_every_variable_is_generated_or_a_documented_input,
            set_op("/name", "((deployment))"),
            "deployment",
        ),
        (
            test_generated_variables_are_well_formed,
            set_op("/variables/-", {"name": "x", "type": "pw"}),
            "type pw",
        ),
        (
            test_generated_variables_are_well_formed,
            set_op("/variables/-", {"name": "unused", "type": "password"}),
            "never used",
        ),
    ],
)
def test_the_checks_catch_what_they_are_for(check: Any, op: Operation, complaint: str) -> None:
    manifest = broken(op)
    with pytest.raises(AssertionError, match=complaint):
        check(manifest)
