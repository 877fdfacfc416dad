"""What the built .pivotal holds: members, metadata, job types against the release, variants, errands."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.release.create import CreateOptions, create_release
from scripts.tile.build import BuildOptions, build_tile
from scripts.tile.errors import TileError
from tests.tile.conftest import REAL_BPM, REPO, BuildTile


def _metadata(pivotal: Path) -> dict[str, Any]:
    with zipfile.ZipFile(pivotal) as archive:
        return yaml.safe_load(archive.read("metadata/postgres-service.yml"))


def _release_jobs(tarball: bytes) -> set[str]:
    """Job names read straight from the packed release (not through scripts.tile)."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        handle = tar.extractfile(members["release.MF"])
        assert handle is not None
        names = {job["name"] for job in yaml.safe_load(handle.read())["jobs"]}
    assert {f"jobs/{name}.tgz" for name in names} <= set(members)
    return names


def _job_types(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["name"]: job for job in metadata["job_types"]}


def test_members_and_metadata(build: BuildTile, release_tarball: Path) -> None:
    tile = build()
    with zipfile.ZipFile(tile.path) as archive:
        names = archive.namelist()
        packed = archive.read(f"releases/{release_tarball.name}")
    assert names == sorted(names)
    assert names == [
        "metadata/",
        "metadata/postgres-service.yml",
        "releases/",
        f"releases/{release_tarball.name}",
    ]
    assert packed == release_tarball.read_bytes()

    metadata = _metadata(tile.path)
    assert metadata["name"] == "postgres-service"
    assert metadata["product_version"] == "0.1.0-dev.1"
    assert metadata["stemcell_criteria"]["os"] == "ubuntu-jammy"
    assert isinstance(metadata["stemcell_criteria"]["version"], str)
    assert metadata["releases"][0] == {
        "name": "postgres-service",
        "file": release_tarball.name,
        "version": "0.1.0+dev.1",
    }
    assert {f["name"] for f in metadata["form_types"]} == {
        "topology",
        "plans",
        "extensions",
        "tls",
        "cf_registration",
    }
    assert metadata["icon_image"].startswith("iVBORw0KGgo")  # base64 of the PNG signature


def test_every_template_names_a_job_of_a_release_in_the_tile(build: BuildTile, release_tarball: Path) -> None:
    metadata = _metadata(build().path)
    jobs_by_release = {"postgres-service": _release_jobs(release_tarball.read_bytes()), "bpm": {"bpm"}}
    assert {r["name"] for r in metadata["releases"]} == set(jobs_by_release)
    for job_type in metadata["job_types"]:
        for template in job_type["templates"]:
            assert template["name"] in jobs_by_release[template["release"]], (job_type["name"], template)
        # Every job type that runs a process under bpm also runs bpm.
        if not job_type.get("errand"):
            assert {"name": "bpm", "release": "bpm"} in job_type["templates"], job_type["name"]


def test_both_variants_instance_counts_and_placement(build: BuildTile) -> None:
    jobs = _job_types(_metadata(build().path))
    single = {"property_reference": ".properties.deployment_mode", "property_values": ["single_node"]}
    ha = {"property_reference": ".properties.deployment_mode", "property_values": ["high_availability"]}

    assert jobs["pg-monitor"]["instance_definition"]["default"] == 1
    assert jobs["pg-monitor"]["instance_definition"]["zero_if"] == single
    assert jobs["postgres"]["instance_definition"]["default"] == 2
    assert jobs["postgres"]["instance_definition"]["zero_if"] == single
    assert jobs["postgres"]["single_az_only"] is False  # the two nodes spread over the AZs
    assert jobs["postgres-single"]["instance_definition"]["default"] == 1
    assert jobs["postgres-single"]["instance_definition"]["zero_if"] == ha
    assert jobs["broker"]["instance_definition"]["default"] == 2
    assert "zero_if" not in jobs["broker"]["instance_definition"]
    assert jobs["broker"]["single_az_only"] is False
    for name in ("postgres", "postgres-single", "pg-monitor"):
        disk = next(r for r in jobs[name]["resource_definitions"] if r["name"] == "persistent_disk")
        assert disk["default"] > 0
        assert disk["configurable"] is True


def test_errands_and_no_purge_by_default(build: BuildTile) -> None:
    metadata = _metadata(build().path)
    jobs = _job_types(metadata)
    assert metadata["post_deploy_errands"] == [{"name": "register-broker"}, {"name": "smoke-tests"}]
    assert metadata["pre_delete_errands"] == [{"name": "deregister-broker"}]
    for name in ("register-broker", "smoke-tests", "deregister-broker"):
        assert jobs[name]["errand"] is True
        assert jobs[name]["instance_definition"]["configurable"] is False
    # No CF CLI anywhere: the errands are the release's own jobs, talking to the CC API.
    assert [t["name"] for t in jobs["register-broker"]["templates"]] == ["register-broker"]

    purge = yaml.safe_load(jobs["deregister-broker"]["manifest"])["purge"]
    assert purge == "(( .properties.purge_on_delete.value ))"
    blueprint = next(p for p in metadata["property_blueprints"] if p["name"] == "purge_on_delete")
    assert blueprint["default"] is False
    assert "purge_service_brokers" not in metadata or metadata["purge_service_brokers"] is False


def test_cf_settings_come_from_the_cf_tile(build: BuildTile) -> None:
    jobs = _job_types(_metadata(build().path))
    cf = yaml.safe_load(jobs["register-broker"]["manifest"])["cf"]
    assert cf["api_url"] == "https://api.(( ..cf.cloud_controller.system_domain.value ))"
    assert cf["username"] == "(( ..cf.uaa.system_services_credentials.identity ))"
    assert cf["password"] == "(( ..cf.uaa.system_services_credentials.password ))"


def test_secrets_are_generated_not_written(build: BuildTile) -> None:
    metadata = _metadata(build().path)
    broker = yaml.safe_load(_job_types(metadata)["broker"]["manifest"])["broker"]
    assert broker["encryption_key"] == "((broker_encryption_key))"
    assert broker["password"] == "(( .broker.broker_credentials.password ))"
    variables = {v["name"]: v for v in metadata["variables"]}
    assert variables["broker_encryption_key"]["options"]["length"] >= 32
    credentials = next(p for p in _job_types(metadata)["broker"]["property_blueprints"])
    assert credentials == {"name": "broker_credentials", "type": "simple_credentials", "configurable": False}


def test_without_bpm_the_tile_says_so(tmp_path: Path, release_tarball: Path) -> None:
    root = _copy_root(tmp_path)
    tile = build_tile(BuildOptions(root=root, release=release_tarball), log=lambda _line: None)
    assert tile.path.parent == root / "build"
    assert tile.path.name == "postgres-service-0.1.0-dev.1-without-bpm.pivotal"
    assert tile.missing == ("bpm",)
    metadata = _metadata(tile.path)
    assert {"name": "bpm", "file": "bpm-1.4.23.tgz", "version": "1.4.23"} in metadata["releases"]
    with zipfile.ZipFile(tile.path) as archive:
        assert "releases/bpm-1.4.23.tgz" not in archive.namelist()


def test_require_complete_refuses_a_tile_without_bpm(build: BuildTile, tmp_path: Path) -> None:
    output = tmp_path / "complete.pivotal"
    with pytest.raises(TileError, match=r"bpm.*--bpm-release"):
        build(output=output, require_complete=True)
    assert not output.exists()


def test_a_bpm_tarball_of_another_release_is_refused(
    build: BuildTile, release_tarball: Path, tmp_path: Path
) -> None:
    output = tmp_path / "t.pivotal"
    with pytest.raises(TileError, match=r"tile.yml:\d+: package 'bpm': .* holds release 'postgres-service'"):
        build(output=output, bpm_release=release_tarball)
    assert not output.exists()


def _bpm_shaped_release(dest: Path) -> Path:
    """A release named bpm at the pinned version, made by our release builder: only its packing is tested.

    No bpm release can be fetched from what the tests reach, and the tile build
    reads only release.MF and job.MF, so a release with bpm's name, version and
    job name (and nothing of bpm's function) is enough to test that the tile
    packs it and names the file as complete.
    """
    root = dest / "bpm"
    (root / "jobs" / "bpm" / "templates").mkdir(parents=True)
    spec = "---\nname: bpm\ntemplates: {}\npackages: []\nproperties: {}\n"
    (root / "jobs" / "bpm" / "spec").write_text(spec)
    (root / "jobs" / "bpm" / "monit").write_text("")
    (root / "packages").mkdir()
    (root / "config").mkdir()
    (root / "config" / "final.yml").write_text("---\nname: bpm\n")
    (root / "config" / "blobs.yml").write_text("{}\n")
    # The release builder reads a product version even when one is given; any will do here.
    version_file = root / "src" / "broker" / "postgres_service_broker" / "__init__.py"
    version_file.parent.mkdir(parents=True)
    version_file.write_text('__version__ = "1.4.23"\n')
    tarball = dest / "bpm-1.4.23.tgz"
    create_release(CreateOptions(root=root, version="1.4.23", tarball=tarball), log=lambda _l: None)
    return tarball


def test_a_bpm_release_tarball_is_packed_and_the_tile_is_complete(build: BuildTile, tmp_path: Path) -> None:
    bpm = Path(REAL_BPM) if REAL_BPM else _bpm_shaped_release(tmp_path)
    output = tmp_path / "complete" / "postgres-service-0.1.0+dev.1.pivotal"
    tile = build(bpm_release=bpm, output=output, require_complete=True)
    assert tile.missing == ()
    assert tile.path == output
    with zipfile.ZipFile(tile.path) as archive:
        assert "releases/bpm-1.4.23.tgz" in archive.namelist()
        assert archive.read("releases/bpm-1.4.23.tgz") == bpm.read_bytes()


def _copy_root(tmp_path: Path) -> Path:
    """A minimal repository root (tile.yml and config/final.yml) whose build/ the test owns."""
    root = tmp_path / "root"
    (root / "config").mkdir(parents=True)
    (root / "tile.yml").write_bytes((REPO / "tile.yml").read_bytes())
    (root / "config" / "final.yml").write_bytes((REPO / "config" / "final.yml").read_bytes())
    return root
