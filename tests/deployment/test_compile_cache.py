"""Compilation and its cache, on a small release of two packages whose packaging scripts really run."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.release import specs
from tests.support import bosh_compile, vcap_namespace
from tests.support.bosh_compile import CompileError, compile_order

BASE_PACKAGING = """\
set -euo pipefail
cp base/greeting.txt "$BOSH_INSTALL_TARGET/greeting.txt"
"""

# What a compilation VM offers a dependent: its dependency's output at /var/vcap/packages,
# its own files in the compile dir, and the BOSH_* variables.
APP_PACKAGING = """\
set -euo pipefail
[[ $PWD == /var/vcap/data/compile/app && $BOSH_COMPILE_TARGET == "$PWD" ]]
[[ $BOSH_INSTALL_TARGET == /var/vcap/packages/app && $BOSH_PACKAGE_NAME == app ]]
cat /var/vcap/packages/base/greeting.txt app/name.txt > "$BOSH_INSTALL_TARGET/out.txt"
echo "$BOSH_PACKAGE_VERSION" > "$BOSH_INSTALL_TARGET/version.txt"
"""


@pytest.fixture(autouse=True)
def _needs_namespace() -> None:
    reason = vcap_namespace.unavailable()
    if reason:
        pytest.skip(f"compiling BOSH packages {reason}")


def write_package(root: Path, name: str, packaging: str, files: list[str], deps: list[str]) -> None:
    package_dir = root / "packages" / name
    package_dir.mkdir(parents=True, exist_ok=True)
    (package_dir / "spec").write_text(f"---\nname: {name}\ndependencies: {deps}\nfiles: {files}\n")
    (package_dir / "packaging").write_text(packaging)


@pytest.fixture
def release(tmp_path: Path) -> Path:
    root = tmp_path / "release"
    (root / "src" / "base").mkdir(parents=True)
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "base" / "greeting.txt").write_text("hello\n")
    (root / "src" / "app" / "name.txt").write_text("world\n")
    write_package(root, "base", BASE_PACKAGING, ["base/*"], [])
    write_package(root, "app", APP_PACKAGING, ["app/*"], ["base"])
    return root


def compile_all(release: Path) -> dict[str, bosh_compile.CompiledPackage]:
    return bosh_compile.compile_release(release, release.parent / "cache", log=lambda _: None)


def test_a_dependent_compiles_against_its_dependency_at_var_vcap_packages(release: Path) -> None:
    compiled = compile_all(release)
    assert [p.cached for p in compiled.values()] == [False, False]
    app = compiled["app"]
    assert (app.install_dir / "out.txt").read_text() == "hello\nworld\n"
    assert (app.install_dir / "version.txt").read_text().strip() == app.fingerprint
    assert "+ cat /var/vcap/packages/base/greeting.txt" in app.log_file.read_text()
    assert not Path("/var/vcap").exists(), "the host must not get a /var/vcap"


def test_unchanged_packages_come_from_the_cache(release: Path) -> None:
    first = compile_all(release)
    second = compile_all(release)
    assert all(p.cached for p in second.values())
    assert {n: p.install_dir for n, p in second.items()} == {n: p.install_dir for n, p in first.items()}


def test_a_changed_package_rebuilds_and_its_dependency_does_not(release: Path) -> None:
    first = compile_all(release)
    (release / "src" / "app" / "name.txt").write_text("there\n")
    second = compile_all(release)
    assert second["base"].cached
    assert second["base"].cache_key == first["base"].cache_key
    assert not second["app"].cached
    assert (second["app"].install_dir / "out.txt").read_text() == "hello\nthere\n"
    # The earlier result stays, for a switch back.
    assert (first["app"].install_dir / "out.txt").read_text() == "hello\nworld\n"


def test_a_changed_dependency_rebuilds_its_dependents(release: Path) -> None:
    first = compile_all(release)
    (release / "src" / "base" / "greeting.txt").write_text("goodbye\n")
    second = compile_all(release)
    assert not second["base"].cached
    assert not second["app"].cached
    # The dependent's own fingerprint did not change; only its dependency's did.
    assert second["app"].fingerprint == first["app"].fingerprint
    assert (second["app"].install_dir / "out.txt").read_text() == "goodbye\nworld\n"


def test_a_failing_packaging_script_names_the_package_and_leaves_nothing(release: Path) -> None:
    write_package(release, "app", "echo 'no compiler for this' >&2\nexit 3\n", ["app/*"], ["base"])
    with pytest.raises(
        CompileError, match=r"package 'app': packaging exited with 3 .*no compiler for this"
    ) as excinfo:
        compile_all(release)
    assert list((release.parent / "cache" / "app").iterdir()) == []
    # The full log is kept outside the cache proper, and the message says where.
    [log] = (release.parent / "cache" / "failed").glob("app-*.log")
    assert str(log) in str(excinfo.value)
    assert "no compiler for this" in log.read_text()
    # Its dependency compiled fine and is kept.
    assert len(list((release.parent / "cache" / "base").iterdir())) == 1


def test_compile_order_puts_dependencies_first() -> None:
    def spec(name: str, deps: list[str]) -> specs.PackageSpec:
        return specs.PackageSpec(name=name, dir=Path(name), dependencies=deps, files=[], excluded_files=[])

    packages = [spec("broker", ["python3"]), spec("monitor", ["postgres", "broker"]), spec("postgres", [])]
    packages.append(spec("python3", []))
    assert [p.name for p in compile_order(packages)] == ["python3", "broker", "postgres", "monitor"]
