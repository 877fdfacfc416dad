"""The build needs no network: it runs in a network namespace with nothing but a down loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.tile.conftest import REPO

# The network interfaces of the namespace the probe runs in (netlink, so namespace-accurate).
PROBE = "import socket; print(' '.join(name for _, name in socket.if_nameindex()))"


def _unshare() -> str:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare --net is not permitted here: {probe.stderr.decode().strip()}")
    return unshare


def test_build_in_a_namespace_without_network(release_tarball: Path, tmp_path: Path) -> None:
    unshare = _unshare()
    # First prove the premise: inside, there is no interface but the loopback (down, as unshare leaves it).
    inside = subprocess.run([unshare, "--net", sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert inside.stdout.split() == ["lo"], inside

    output = tmp_path / "offline.pivotal"
    command = [
        unshare,
        "--net",
        sys.executable,
        "-m",
        "scripts.tile",
        "build",
        "--release",
        str(release_tarball),
        "--output",
        str(output),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"tile postgres-service 0.1.0-dev.1: {output}" in result.stdout
    with zipfile.ZipFile(output) as archive:
        assert "metadata/postgres-service.yml" in archive.namelist()
