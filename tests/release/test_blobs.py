"""Blob fetching: pinned by size and SHA-256, a wrong file refused and removed, a good one kept.

These fetch one small real wheel from the package index with pip, the way
`make blobs` fetches every wheel.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scripts.release import ReleaseError, blobs
from scripts.release.fetch import _fetch_debian_pool, deb_src_entries, debian_archive_uris, fetch_blobs
from tests.release.conftest import write

WHEEL = "broker/wheels/werkzeug-3.1.9-py3-none-any.whl"


def _real_pin(repo_root: Path) -> blobs.BlobPin:
    return blobs.load_pins(repo_root)[WHEEL]


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    root = tmp_path / "rel"
    write(root / "config/blob-sources.yml", f"{WHEEL}:\n  pypi: werkzeug==3.1.9\n")
    return root


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wrong_blob_present_is_removed_and_fetched_again(blob_dir: Path) -> None:
    pin = _real_pin(REPO)
    blobs.save_pins(blob_dir, {WHEEL: pin})
    local = blob_dir / "blobs" / WHEEL
    local.parent.mkdir(parents=True)
    local.write_bytes(b"not the wheel")
    lines: list[str] = []

    report = fetch_blobs(blob_dir, log=lines.append)

    assert report.removed == [WHEEL]
    assert report.fetched == [WHEEL]
    assert any("removed it" in line and WHEEL in line for line in lines)
    assert hashlib.sha256(local.read_bytes()).hexdigest() == pin.sha256
    # A second run finds it present and correct, and fetches nothing.
    again = fetch_blobs(blob_dir, log=lines.append)
    assert (again.present, again.fetched) == ([WHEEL], [])


@pytest.mark.slow
def test_download_not_matching_its_pin_is_refused_and_not_kept(blob_dir: Path) -> None:
    pin = _real_pin(REPO)
    blobs.save_pins(blob_dir, {WHEEL: blobs.BlobPin(WHEEL, pin.size, "0" * 64)})

    with pytest.raises(ReleaseError) as info:
        fetch_blobs(blob_dir, log=lambda _line: None)

    assert WHEEL in str(info.value)
    assert "refused" in str(info.value)
    assert not (blob_dir / "blobs" / WHEEL).exists()


def test_unpinned_source_is_refused_without_pin_flag(blob_dir: Path) -> None:
    blobs.save_pins(blob_dir, {})
    with pytest.raises(ReleaseError, match="no pin"):
        fetch_blobs(blob_dir, log=lambda _line: None)


def test_pins_round_trip_in_the_clis_format(tmp_path: Path) -> None:
    pins = {
        "a/x.tgz": blobs.BlobPin("a/x.tgz", 3, "ab" * 32),
        "b/y.tgz": blobs.BlobPin("b/y.tgz", 5, "cd" * 32, object_id="6f1c0b0e-1111-4222-8333-944455556666"),
    }
    blobs.save_pins(tmp_path, pins)
    assert (tmp_path / "config/blobs.yml").read_text() == (
        f"a/x.tgz:\n  size: 3\n  sha: sha256:{'ab' * 32}\n"
        f"b/y.tgz:\n  size: 5\n  object_id: 6f1c0b0e-1111-4222-8333-944455556666\n  sha: sha256:{'cd' * 32}\n"
    )
    assert blobs.load_pins(tmp_path) == pins


def test_deb_src_entries_are_derived_from_both_apt_source_formats() -> None:
    one_line = "deb [signed-by=/k.gpg] http://archive.example/debian bookworm main\n# deb http://x y z\n"
    assert (
        deb_src_entries(one_line, ".list")
        == "deb-src [signed-by=/k.gpg] http://archive.example/debian bookworm main"
    )
    deb822 = "Types: deb\nURIs: http://archive.example/debian\nSuites: bookworm\n\nTypes: deb-src\nURIs: http://o\n"
    assert deb_src_entries(deb822, ".sources").splitlines() == [
        "Types: deb-src",
        "URIs: http://archive.example/debian",
        "Suites: bookworm",
        "",
        "Types: deb-src",
        "URIs: http://o",
    ]


def test_debian_archive_uris_come_from_both_apt_source_formats_security_last() -> None:
    one_line = "deb http://security.example/debian-security bookworm-security main\n# deb http://x y z\n"
    deb822 = "Types: deb\nURIs: http://archive.example/debian/\nSuites: bookworm\n"
    assert debian_archive_uris([one_line, deb822]) == [
        "http://archive.example/debian",
        "http://security.example/debian-security",
    ]


@pytest.mark.parametrize("bad", ["dists/bookworm/Release", "pool/../etc/passwd", "/pool/x"])
def test_a_debian_pool_source_outside_the_pool_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="must be a path under pool/"):
        _fetch_debian_pool(bad, tmp_path / "pool", print)
    assert not (tmp_path / "pool").exists()
