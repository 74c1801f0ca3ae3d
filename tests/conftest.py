"""Shared fixtures: the registry URL on both databases, and the Hypothesis profiles.

``registry_url`` runs a test once on SQLite (a file in its tmp_path) and once on PostgreSQL
(a server tests/postgres.py starts once per session, or EIR_TEST_POSTGRES; emptied before
each test). Where PostgreSQL is not installed its runs skip, and fail in CI.

Hypothesis profiles: "ci" where the CI environment variable is "true", "dev" elsewhere.

The profile's ``max_examples`` is the count every fuzz test (``@pytest.mark.fuzz``) runs:
10,000 in CI. Other property tests ask for a fraction of it, e.g.
``settings(max_examples=max(100, settings.default.max_examples // 20))``.
HYPOTHESIS_PROFILE picks a profile by name, overriding both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.postgres import Cluster, reset
from tests.tools import unavailable

settings.register_profile(
    "ci",
    max_examples=10_000,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=500,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI", "").strip().lower() == "true" else "dev"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: a fuzz test; runs the profile's max_examples (10,000 in CI)")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database for this session: EIR_TEST_POSTGRES, else a throwaway cluster."""
    given = os.environ.get("EIR_TEST_POSTGRES")
    if given:
        yield given
        return
    try:
        cluster = Cluster()
    except FileNotFoundError as missing:
        unavailable(str(missing))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty registry database: a SQLite file, then an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset(url)
    return url
