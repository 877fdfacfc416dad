"""The metadata check: each kind of broken tile.yml stops the build, naming the line, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.tile.check import CheckFailed
from scripts.tile.errors import TileError
from tests.tile.conftest import BuildTile

PURGE_DEFAULT = "Off: deleting the tile stops while instances exist.\n    default: false"


def _break(tile_yml: Path, old: str, new: str) -> int:
    """Replace the first `old` by `new`; the 1-based line where `new` starts."""
    text = tile_yml.read_text()
    at = text.index(old)
    tile_yml.write_text(text[:at] + new + text[at + len(old) :])
    return text[:at].count("\n") + 1 + new[: len(new) - len(new.lstrip("\n"))].count("\n")


CASES = [
    # (id, old, new, line offset inside `new`, message)
    ("typo in a property accessor", "(( .properties.max_connections.value ))",
     "(( .properties.max_conections.value ))", 0, "'max_conections' is not a property of the tile"),
    ("typo in a job property", "        max_connections: (( .properties",
     "        max_conections: (( .properties", 0,
     "no job of its templates has a property 'postgres.max_conections'"),
    ("missing release", "      release: postgres-service\n      consumes:\n        broker",
     "      release: postgres-servce\n      consumes:\n        broker", 0,
     "release 'postgres-servce' is not in the tile"),
    ("job not in the release", "    - name: smoke-tests\n", "    - name: smoke-test\n", 0,
     "has no job 'smoke-test'"),
    ("unknown form type", "    type: dropdown_select", "    type: dropdown", 0, "unknown type 'dropdown'"),
    ("wrongly typed top-level field", 'metadata_version: "2.7"', "metadata_version: 2.7", 0,
     "'metadata_version' must be a string"),
    ("unknown top-level field", "serial: false", "serail: false", 0, "unknown top-level field 'serail'"),
    ("unknown CF tile property", "..cf.cloud_controller.system_domain.value",
     "..cf.cloud_controller.sys_domain.value", 0, "not a CF tile property"),
    ("unknown built-in", "$ops_manager.ca_certificate", "$ops_manager.ca_cert", 0,
     "not an Ops Manager built-in"),
    ("undeclared variable", "((broker_encryption_key))", "((broker_encryption_keys))", 0,
     "'broker_encryption_keys' is not a declared variable"),
    ("unknown named manifest", "parsed_manifest(postgres_link)", "parsed_manifest(postgres_links)", 0,
     "named manifest 'postgres_links'"),
    ("wrong credential field", ".broker.broker_credentials.identity",
     ".broker.broker_credentials.username", 0, "no field 'username'"),
    ("typo inside a selector's named manifest", ".properties.tls.provided.certificate.cert_pem",
     ".properties.tls.provided.cert.cert_pem", 0, "option 'provided' has no property 'cert'"),
    ("zero_if value not an option", "property_values: [high_availability]",
     "property_values: [highly_available]", 0, "zero_if value 'highly_available'"),
    ("selector default not an option", "    default: single_node", "    default: single", 0,
     "default 'single' is not one of its options"),
    ("purge by default", PURGE_DEFAULT, PURGE_DEFAULT.replace("false", "true"), 1,
     "purging is never a default"),
    ("purge_service_brokers", "purge_service_brokers: false", "purge_service_brokers: true", 0,
     "purge_service_brokers must not be true"),
    ("errand setting on a job that is no errand", "  - name: broker\n    label: Service broker\n",
     "  - name: broker\n    label: Service broker\n    post_deploy: true\n", 2, "only for errands"),
    ("link the job does not consume", "        broker: {from: broker}", "        brokr: {from: broker}", 0,
     "consumes no link 'brokr'"),
    ("form field naming a job type that does not exist", "  - name: broker_name\n",
     "  - name: broker_name\n    job: brokr\n", 1, "names job type 'brokr', which does not exist"),
    ("misspelt property field", "    type: boolean\n", "    typ: boolean\n", 0, "unknown field 'typ'"),
    ("misspelt form field", "  markdown: >-", "  markdwn: >-", 0, "unknown field 'markdwn'"),
    ("package of another type", "- name: bpm\n  type: bosh-release", "- name: bpm\n  type: app", 1,
     "type 'app' is not supported"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "offset", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_broken_tile_yml_names_its_line(
    build: BuildTile, tile_yml: Path, tmp_path: Path, old: str, new: str, offset: int, message: str
) -> None:
    line = _break(tile_yml, old, new) + offset
    output = tmp_path / "broken.pivotal"
    with pytest.raises(TileError) as caught:
        build(tile=tile_yml, output=output)
    text = str(caught.value)
    assert any(f"tile.yml:{line}: " in row and message in row for row in text.splitlines()), text
    assert not output.exists()
    assert not list(tmp_path.glob("*.partial"))


def test_the_unchanged_tile_yml_passes(build: BuildTile, tile_yml: Path) -> None:
    assert build(tile=tile_yml).path.is_file()


def test_a_missing_required_field(build: BuildTile, tile_yml: Path) -> None:
    tile_yml.write_text(tile_yml.read_text().replace("label: PostgreSQL for Cloud Foundry\n", "", 1))
    with pytest.raises(TileError, match=r"tile.yml:\d+: required field 'label' is missing"):
        build(tile=tile_yml)


def test_every_problem_is_reported_in_line_order(build: BuildTile, tile_yml: Path) -> None:
    second = _break(tile_yml, "$ops_manager.ca_certificate", "$ops_manager.ca")
    first = _break(tile_yml, "    type: dropdown_select", "    type: dropdown")
    with pytest.raises(CheckFailed) as caught:
        build(tile=tile_yml)
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)
    assert {first, second} <= set(lines)


def test_invalid_yaml_names_its_line(build: BuildTile, tile_yml: Path) -> None:
    line = _break(tile_yml, "rank: 90", "rank: [90")
    # The parser notices the unclosed list where the next key starts, one line on.
    with pytest.raises(TileError, match=rf"tile.yml:{line + 1}: not valid YAML"):
        build(tile=tile_yml)
