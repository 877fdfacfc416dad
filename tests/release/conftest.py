"""A small synthetic release directory (jobs, packages, src, blobs, config) for the release tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from scripts.release.create import CreateOptions, create_release


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


class SyntheticRelease:
    """Two packages (app depends on runtime), one job using both, one pinned blob."""

    BLOB = b"pretend upstream tarball\n" * 100

    def __init__(self, root: Path) -> None:
        self.root = root
        write(
            root / "config/final.yml",
            "name: demo\nblobstore:\n  provider: s3\n  options:\n    bucket_name: b\n",
        )
        digest = hashlib.sha256(self.BLOB).hexdigest()
        write(
            root / "config/blobs.yml",
            f"runtime/runtime-1.0.tar.gz:\n  size: {len(self.BLOB)}\n  sha: sha256:{digest}\n",
        )
        (root / "blobs/runtime").mkdir(parents=True)
        (root / "blobs/runtime/runtime-1.0.tar.gz").write_bytes(self.BLOB)
        write(root / "src/broker/postgres_service_broker/__init__.py", '__version__ = "2.3.4"\n')
        write(root / "src/app/main.py", "print('hello')\n")
        write(root / "src/app/lib/util.py", "X = 1\n")
        write(root / "src/app/bin/run", "#!/bin/sh\nexec python main.py\n", 0o755)
        write(
            root / "packages/runtime/spec",
            "---\nname: runtime\ndependencies: []\nfiles:\n- runtime/*.tar.gz\n",
        )
        write(root / "packages/runtime/packaging", "set -e\ntar xzf runtime/*.tar.gz\n")
        write(
            root / "packages/app/spec",
            "---\nname: app\ndependencies:\n- runtime\nfiles:\n- app/**/*\nexcluded_files:\n- app/**/*.pyc\n",
        )
        write(root / "packages/app/packaging", "set -e\ncp -a app ${BOSH_INSTALL_TARGET}\n", 0o755)
        write(
            root / "jobs/web/spec",
            "---\nname: web\ntemplates:\n  ctl.erb: bin/ctl\n  config.yml.erb: config/config.yml\n"
            "packages:\n- app\n- runtime\n"
            "properties:\n  port:\n    description: where to listen\n    default: 8080\n",
        )
        write(root / "jobs/web/monit", "check process web\n")
        write(root / "jobs/web/templates/ctl.erb", "#!/bin/bash\nexec app\n", 0o755)
        write(root / "jobs/web/templates/config.yml.erb", "port: <%= p('port') %>\n")

    def build(self, cache: Path | None = None, **kwargs: object):
        options = CreateOptions(
            root=self.root, cache_dir=cache or self.root / "build/.release-cache", **kwargs
        )
        return create_release(options, log=lambda _line: None)


@pytest.fixture
def release(tmp_path: Path) -> SyntheticRelease:
    return SyntheticRelease(tmp_path / "demo-release")
