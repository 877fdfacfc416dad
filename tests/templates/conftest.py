"""Template tests need Ruby (BOSH's templates are ERB); `make test` installs it."""

from __future__ import annotations

import pytest

from tests.templates.renderer import ruby


@pytest.fixture(autouse=True)
def _needs_ruby() -> None:
    if ruby() is None:
        pytest.skip("ruby is not installed (apt-get install ruby); job templates are ERB")
