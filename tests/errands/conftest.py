"""Fixtures for the errands: a fresh stand-in Cloud Controller + UAA per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.errands.errand_runner import ADMIN_PASSWORD, ADMIN_USER, CLIENT_ID, CLIENT_SECRET
from tests.support.fake_cloud_controller import StandInCloudFoundry


@pytest.fixture
def stand_in() -> Iterator[StandInCloudFoundry]:
    with StandInCloudFoundry() as cf:
        cf.add_client(CLIENT_ID, CLIENT_SECRET)
        cf.add_user(ADMIN_USER, ADMIN_PASSWORD)
        yield cf
