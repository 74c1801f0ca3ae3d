"""Shared fixtures: the registry on both databases, the country profiles, and the
Hypothesis profiles. The end-to-end fixtures (running agents) are in tests/e2e/conftest.py.

``registry_url`` runs a test once on SQLite (a file in its tmp_path) and once on PostgreSQL
(a server tests/postgres.py starts once per session, or EIR_TEST_POSTGRES; emptied before
each test). Where PostgreSQL is not installed its runs skip, and fail in CI. ``registry``
is an open ``Registry`` on that URL; ``sqlite_registry`` one on a SQLite file alone, for
what only SQLite has (its lock modes, its lookup connection). ``tj`` and ``kg`` are the
profiles of registry/profiles.

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

from registry.profile import Profile, load_profile
from registry.store import Registry
from tests.postgres import Cluster, drop_databases, new_database, reset
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
        try:  # pytest-xdist workers run at once: each gets a database of its own on that server
            yield new_database(given) if os.environ.get("PYTEST_XDIST_WORKER") else given
        finally:
            drop_databases()
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


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The URL of a SQLite registry file in the test's tmp_path (not made yet)."""
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    """An empty registry, open, on each database in turn."""
    with Registry(registry_url) as store:
        yield store


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Iterator[Registry]:
    """An empty registry, open, on a SQLite file in the test's tmp_path."""
    with Registry(f"sqlite:///{tmp_path / 'r.db'}") as store:
        yield store


@pytest.fixture(scope="session")
def tj() -> Profile:
    return load_profile("tj")


@pytest.fixture(scope="session")
def kg() -> Profile:
    return load_profile("kg")
