"""This repository's own release: specs, blob pins and sources agree (no blobs needed)."""

from __future__ import annotations

from pathlib import Path

from scripts.release import blobs, fetch, globbing, specs

REPO = Path(__file__).resolve().parents[2]


def test_every_blob_pin_has_a_source_and_every_source_a_pin() -> None:
    assert set(blobs.load_pins(REPO)) == set(fetch.load_sources(REPO))


def test_packages_find_their_files_among_src_and_pinned_blobs() -> None:
    pinned = sorted(blobs.load_pins(REPO))
    src = globbing.list_files(REPO / "src")
    names = {"python3", "postgres", "broker"}
    packages = {p.name: p for p in (specs.read_package(d) for d in sorted((REPO / "packages").iterdir()))}
    assert names <= set(packages)
    assert packages["broker"].dependencies == ["python3"]
    used: set[str] = set()
    for package in packages.values():
        for dependency in package.dependencies:
            assert dependency in packages, (package.name, dependency)
        for pattern in package.files:
            found = globbing.matching(pattern, src) + globbing.matching(pattern, pinned)
            assert found, f"package '{package.name}': nothing matches '{pattern}'"
            used.update(globbing.matching(pattern, pinned))
    assert used == set(pinned), "pinned blobs no package ships"


def test_broker_wheels_are_for_the_release_python() -> None:
    for path in blobs.load_pins(REPO):
        if path.startswith("broker/wheels/"):
            tags = Path(path).name.removesuffix(".whl").split("-")[-3:]
            python, abi, platform = tags
            assert python in ("py3", "cp311") or python.startswith("py3"), path
            assert abi in ("none", "cp311", "abi3"), path
            assert platform == "any" or ("x86_64" in platform and "manylinux" in platform), path
