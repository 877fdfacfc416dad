"""`make manifests`: the variants written to build/manifests/, deterministic and without secrets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from scripts.manifests.cli import main
from scripts.manifests.render import MANIFESTS, render_all
from scripts.manifests.variables import references


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    """A copy of manifests/, so a test can add an ops-file without touching the repository."""
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    return copy


def test_shared_is_written_and_ha_is_reported_missing(manifests: Path, tmp_path: Path) -> None:
    (manifests / "operations" / "ha.yml").unlink(missing_ok=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "ha.yml").write_text("stale: true\n")
    report = render_all(out, manifests)
    assert sorted(p.name for p in out.iterdir()) == ["shared.yml"]
    assert any(line.startswith("skipped ha.yml") and "operations/ha.yml" in line for line in report)


def test_rendering_twice_gives_the_same_bytes(manifests: Path, tmp_path: Path) -> None:
    render_all(tmp_path / "a", manifests)
    render_all(tmp_path / "b", manifests)
    first = (tmp_path / "a" / "shared.yml").read_bytes()
    assert first == (tmp_path / "b" / "shared.yml").read_bytes()
    assert first.startswith(b"# The shared variant")


def test_defaults_are_resolved_and_secrets_are_not(manifests: Path, tmp_path: Path) -> None:
    render_all(tmp_path, manifests)
    rendered = yaml.safe_load((tmp_path / "shared.yml").read_text())
    generated = {v["name"] for v in rendered["variables"]}
    left = references(rendered)
    defaults = yaml.safe_load((manifests / "vars" / "defaults.yml").read_text())
    assert generated <= left
    assert not left & set(defaults)
    assert "cf_admin_client_secret" in left
    assert rendered["releases"][0] == {"name": "postgres-service", "version": "latest"}


def test_an_ha_ops_file_adds_the_ha_variant(manifests: Path, tmp_path: Path) -> None:
    (manifests / "operations" / "ha.yml").write_text(
        "- type: replace\n  path: /instance_groups/name=postgres/instances\n  value: 2\n"
    )
    render_all(tmp_path, manifests)
    ha = yaml.safe_load((tmp_path / "ha.yml").read_text())
    assert ha["instance_groups"][0]["instances"] == 2
    assert (tmp_path / "ha.yml").read_text().startswith("# The ha variant")


def test_a_broken_ops_file_fails_the_render_naming_it(
    manifests: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = manifests / "operations" / "broken.yml"
    bad.write_text("- type: replace\n  path: /instance_groups/name=postgress/instances\n  value: 2\n")
    code = main(["interpolate", str(manifests / "postgres-service.yml"), "-o", str(bad)])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.yml: op 1 (replace /instance_groups/name=postgress/instances)" in err


def test_interpolate_command_like_bosh(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "interpolate",
            str(manifests / "postgres-service.yml"),
            "-o",
            str(manifests / "operations" / "scale-broker.yml"),
            "-l",
            str(manifests / "vars" / "defaults.yml"),
            "-l",
            str(manifests / "vars" / "inputs.yml"),
            "-v",
            "cf_api_url=https://api.sys.test.internal",
        ]
    )
    assert code == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    groups = {g["name"]: g for g in doc["instance_groups"]}
    assert groups["broker"]["instances"] == 2
    # A later -v wins over the vars files, as with the BOSH CLI.
    assert (
        groups["register-broker"]["jobs"][0]["properties"]["cf"]["api_url"] == "https://api.sys.test.internal"
    )


def test_var_errs_fails_on_unresolved_inputs(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["interpolate", str(manifests / "postgres-service.yml"), "--var-errs"])
    assert code == 1
    assert "cf_api_url" in capsys.readouterr().err
