"""Stage 2: the broker staged as the Python buildpack stages it, and a CF space stand-in for apps."""

from __future__ import annotations

import pytest

from tests.sample_app.cf_stand_in import (
    BROKER_DIR,
    StagedApp,
    space,  # noqa: F401 - a fixture, used by name
    stage,
)


@pytest.fixture(scope="session")
def staged_broker(tmp_path_factory: pytest.TempPathFactory) -> StagedApp:
    """src/broker as pushed: its files, and `pip install -r requirements.txt` in a fresh environment."""
    return stage(BROKER_DIR, tmp_path_factory.mktemp("broker-droplet"))
