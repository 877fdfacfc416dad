"""Fixtures for the test app: its manifest, a CF space stand-in, and the app staged from requirements.txt."""

from __future__ import annotations

import sys

import pytest

from tests.sample_app.cf_stand_in import (
    SAMPLE_APP_DIR,
    AppManifest,
    StagedApp,
    read_manifest,
    space,  # noqa: F401 - a fixture, used by name
    stage,
)

# The app is a program of its own (src/sample-app), not an installed package:
# the unit tests import it from its directory, as `python -m` does in the container.
if str(SAMPLE_APP_DIR) not in sys.path:
    sys.path.insert(0, str(SAMPLE_APP_DIR))


@pytest.fixture(scope="session")
def sample_manifest() -> AppManifest:
    return read_manifest(SAMPLE_APP_DIR / "manifest.yml")


@pytest.fixture(scope="session")
def staged_sample_app(tmp_path_factory: pytest.TempPathFactory) -> StagedApp:
    """The Python buildpack's work: the app's files, and its requirements.txt installed afresh."""
    return stage(SAMPLE_APP_DIR, tmp_path_factory.mktemp("sample-app-droplet"))
