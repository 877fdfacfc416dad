"""The release's packages, compiled once per session (or taken from the cache), and their timings.

Compiling needs root (a mount namespace) and Ruby renders the jobs; without
them these tests are skipped, naming what is missing. The terminal summary
lists how long each package's compilation took, and whether this run did it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import bosh_compile, vcap_namespace
from tests.support.bosh_compile import CompiledPackage
from tests.templates.renderer import ruby
from tests.templates.vcap_tree import VcapTree

ROOT = Path(__file__).resolve().parents[2]

# Long enough for a cold compilation of every package on two busy cores.
COMPILE_TIMEOUT_SECONDS = 3600

_compiled: dict[str, CompiledPackage] = {}


@pytest.fixture(scope="session")
def compiled_packages() -> dict[str, CompiledPackage]:
    reason = vcap_namespace.unavailable()
    if reason:
        pytest.skip(f"compiling BOSH packages {reason}")
    if not _compiled:
        cache_dir = bosh_compile.default_cache_dir(ROOT)
        compiled = bosh_compile.compile_release(ROOT, cache_dir, log=lambda line: print(line, flush=True))
        _compiled.update(compiled)
    return _compiled


@pytest.fixture
def packages_tree(compiled_packages: dict[str, CompiledPackage]) -> Iterator[VcapTree]:
    """A /var/vcap tree holding only the compiled packages, for running them where BOSH puts them."""
    tree = VcapTree.create(mount_namespace=True)
    for name, compiled in compiled_packages.items():
        tree.link_package(name, compiled.install_dir)
    yield tree
    tree.destroy()


@pytest.fixture(scope="session")
def needs_ruby() -> None:
    if ruby() is None:
        pytest.skip("ruby is not installed (apt-get install ruby); job templates are ERB")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _compiled:
        return
    terminalreporter.write_sep("-", "BOSH package compilation")
    for package in _compiled.values():
        how = "from the cache, compiled earlier in" if package.cached else "compiled in"
        terminalreporter.write_line(
            f"{package.name:<20} {how} {package.seconds:7.1f} s  (fingerprint {package.fingerprint[:12]})"
        )
