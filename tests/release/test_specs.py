"""The builder refuses broken specs before writing anything, naming the job or package and what is missing."""

from __future__ import annotations

import pytest

from scripts.release import ReleaseError, globbing
from tests.release.conftest import SyntheticRelease, write


def _error(release: SyntheticRelease) -> str:
    with pytest.raises(ReleaseError) as info:
        release.build()
    assert not (release.root / "build" / "demo-2.3.4+dev.1.tgz").exists()
    return str(info.value)


def test_job_naming_a_missing_template(release: SyntheticRelease) -> None:
    (release.root / "jobs/web/templates/ctl.erb").unlink()
    message = _error(release)
    assert "job 'web'" in message
    assert "template 'ctl.erb'" in message


def test_job_naming_a_missing_package(release: SyntheticRelease) -> None:
    spec = release.root / "jobs/web/spec"
    write(spec, spec.read_text().replace("- runtime\n", "- runtime\n- pgbouncer\n"))
    message = _error(release)
    assert "job 'web'" in message
    assert "package 'pgbouncer'" in message


def test_package_naming_a_missing_dependency(release: SyntheticRelease) -> None:
    write(release.root / "packages/app/spec", "name: app\ndependencies: [golang]\nfiles: [app/**/*]\n")
    message = _error(release)
    assert "package 'app'" in message
    assert "'golang'" in message


def test_package_pattern_matching_nothing(release: SyntheticRelease) -> None:
    write(release.root / "packages/app/spec", "name: app\nfiles: [app/**/*, vendor/*.whl]\n")
    message = _error(release)
    assert "package 'app'" in message
    assert "'vendor/*.whl'" in message


def test_package_missing_packaging_and_every_problem_reported_at_once(release: SyntheticRelease) -> None:
    (release.root / "packages/app/packaging").unlink()
    (release.root / "jobs/web/templates/config.yml.erb").unlink()
    message = _error(release)
    assert "package 'app'" in message
    assert "packaging" in message
    assert "template 'config.yml.erb'" in message


def test_dependency_cycle(release: SyntheticRelease) -> None:
    write(
        release.root / "packages/runtime/spec",
        "name: runtime\ndependencies: [app]\nfiles: [runtime/*.tar.gz]\n",
    )
    assert "cycle: app -> runtime -> app" in _error(release)


def test_spec_name_must_match_directory(release: SyntheticRelease) -> None:
    spec = release.root / "jobs/web/spec"
    write(spec, spec.read_text().replace("name: web", "name: website"))
    assert "'website' must match its directory name 'web'" in _error(release)


def test_blob_differing_from_its_pin_is_refused(release: SyntheticRelease) -> None:
    (release.root / "blobs/runtime/runtime-1.0.tar.gz").write_bytes(b"tampered")
    message = _error(release)
    assert "runtime/runtime-1.0.tar.gz" in message
    assert "config/blobs.yml pins" in message


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("app/**/*", "app/main.py", True),
        ("app/**/*", "app/a/b/c.py", True),
        ("app/*", "app/a/b.py", False),
        ("**/*.whl", "x.whl", True),
        ("**/*.whl", "a/b/x.whl", True),
        ("app/*.py", "app/.hidden.py", True),
        ("app/{lib,bin}/*", "app/bin/run", True),
        ("app/{lib,bin}/*", "app/doc/x", False),
        ("app/[a-c]*.py", "app/b.py", True),
        ("app/[!a-c]*.py", "app/b.py", False),
        ("app/?.py", "app/ab.py", False),
        ("app/**", "app/a/b", True),
    ],
)
def test_spec_patterns_follow_doublestar(pattern: str, path: str, matches: bool) -> None:
    assert bool(globbing.compile_pattern(pattern).match(path)) is matches
