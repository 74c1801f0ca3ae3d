"""Hypothesis profiles: "ci" where the CI environment variable is "true", "dev" elsewhere.

The profile's ``max_examples`` is the count every fuzz test (``@pytest.mark.fuzz``) runs:
10,000 in CI. Other property tests ask for a fraction of it, e.g.
``settings(max_examples=max(100, settings.default.max_examples // 20))``.
HYPOTHESIS_PROFILE picks a profile by name, overriding both.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

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
