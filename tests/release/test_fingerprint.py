"""Fingerprints: the BOSH CLI's algorithm, stable for one tree, changing exactly when an input changes."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from scripts.release import builder
from scripts.release.fingerprint import FingerprintFile, fingerprint
from tests.release.conftest import SyntheticRelease, write


def _fps(root: Path) -> dict[str, str]:
    jobs, packages, _license = builder.collect(root, log=lambda _line: None)
    return {f"{r.kind}/{r.name}": r.fingerprint() for r in [*jobs, *packages]}


def test_matches_the_documented_algorithm(tmp_path: Path) -> None:
    # Oracle written from the CLI's description, independently of the module under test:
    # "v2" + per file (sorted by path): path + "sha256:<hex>" + mode token, + sorted deps joined by ",".
    packaging = write(tmp_path / "packaging", "make\n", 0o755)
    tool = write(tmp_path / "b/tool.sh", "echo\n", 0o755)
    data = write(tmp_path / "a/data.txt", "x\n")

    def sha(p: Path) -> str:
        return "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()

    expected_text = (
        "v2"
        + "a/data.txt" + sha(data) + "100644"
        + "b/tool.sh" + sha(tool) + "100755"
        + "packaging" + sha(packaging)
        + "golang,python3"
    )  # fmt: skip
    files = [
        FingerprintFile("packaging", packaging, include_mode=False),
        FingerprintFile("b/tool.sh", tool),
        FingerprintFile("a/data.txt", data),
    ]
    assert fingerprint(files, ["python3", "golang"]) == hashlib.sha256(expected_text.encode()).hexdigest()


def test_symlinks_fingerprint_their_target_path(tmp_path: Path) -> None:
    os.symlink("elsewhere/file", tmp_path / "link")
    expected = "v2" + "link" + "sha256:" + hashlib.sha256(b"elsewhere/file").hexdigest() + "symlink"
    assert (
        fingerprint([FingerprintFile("link", tmp_path / "link")])
        == hashlib.sha256(expected.encode()).hexdigest()
    )


def test_same_tree_same_fingerprints_wherever_it_lives(release: SyntheticRelease, tmp_path: Path) -> None:
    first = _fps(release.root)
    assert _fps(release.root) == first
    copy = tmp_path / "elsewhere"
    shutil.copytree(release.root, copy)
    assert _fps(copy) == first


def test_file_content_changes_only_its_own_package(release: SyntheticRelease) -> None:
    before = _fps(release.root)
    write(release.root / "src/app/lib/util.py", "X = 2\n")
    after = _fps(release.root)
    assert after["packages/app"] != before["packages/app"]
    assert after["packages/runtime"] == before["packages/runtime"]
    assert after["jobs/web"] == before["jobs/web"]


def test_execute_bit_changes_the_fingerprint_other_mode_bits_do_not(release: SyntheticRelease) -> None:
    main = release.root / "src/app/main.py"
    before = _fps(release.root)["packages/app"]
    os.chmod(main, 0o600)  # git would not see this change, and neither does BOSH
    assert _fps(release.root)["packages/app"] == before
    os.chmod(main, 0o700)  # an execute bit: 100755
    assert _fps(release.root)["packages/app"] != before


def test_packaging_mode_is_not_fingerprinted_but_its_content_is(release: SyntheticRelease) -> None:
    packaging = release.root / "packages/runtime/packaging"
    before = _fps(release.root)["packages/runtime"]
    os.chmod(packaging, 0o700)
    assert _fps(release.root)["packages/runtime"] == before
    write(packaging, "set -e\necho changed\n")
    assert _fps(release.root)["packages/runtime"] != before


def test_dependencies_count_by_name_as_in_the_cli(release: SyntheticRelease) -> None:
    before = _fps(release.root)
    # A dependency's own change leaves dependents alone: BOSH recompiles them through the
    # director's dependency key, not through the dependent's fingerprint.
    write(release.root / "packages/runtime/packaging", "set -e\necho v2\n")
    after = _fps(release.root)
    assert after["packages/runtime"] != before["packages/runtime"]
    assert after["packages/app"] == before["packages/app"]
    # Adding or removing a dependency does change it.
    write(release.root / "packages/extra/spec", "name: extra\nfiles: []\n")
    write(release.root / "packages/extra/packaging", "true\n")
    spec = release.root / "packages/app/spec"
    write(spec, spec.read_text().replace("- runtime\n", "- runtime\n- extra\n", 1))
    assert _fps(release.root)["packages/app"] != after["packages/app"]


def test_job_fingerprint_covers_spec_monit_and_templates(release: SyntheticRelease) -> None:
    seen = {_fps(release.root)["jobs/web"]}
    for path, text in [
        ("jobs/web/templates/config.yml.erb", "port: 1\n"),
        ("jobs/web/monit", "check process web2\n"),
        ("jobs/web/spec", (release.root / "jobs/web/spec").read_text() + "# comment\n"),
    ]:
        write(release.root / path, text)
        fp = _fps(release.root)["jobs/web"]
        assert fp not in seen, path
        seen.add(fp)
    # A file in the job directory that the spec does not name is not part of the job.
    write(release.root / "jobs/web/templates/unused.erb", "x\n")
    assert _fps(release.root)["jobs/web"] in seen
