"""Helpers shared by tests: external tools that must exist in CI, free loopback ports,
whether this kernel has SCTP, and waiting for something to happen (``wait_until``,
``wait_until_async``) instead of sleeping for a guess."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from netio.sctp import SctpUnavailable, check_sctp
from registry.profile import PROFILES
from simulator.agent_process import LOOPBACK, AgentProcess, free_port


def in_ci() -> bool:
    """True where the CI environment variable says so: interop tests must run, never skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_tool(name: str) -> str:
    """The path of executable ``name``; skips the test where it is absent, fails in CI."""
    path = shutil.which(name)
    if path is not None:
        return path
    unavailable(f"{name} is not installed (see /work/shared/INTEROP.md for how to install it)")


def unavailable(message: str) -> NoReturn:
    """Skip the test for a missing prerequisite, or fail it in CI, where nothing may be missing."""
    if in_ci():
        pytest.fail(f"{message}; CI must run every interop test", pytrace=False)
    pytest.skip(message)


MakeAgent = Callable[..., AgentProcess]  # the make_agent fixture (tests/e2e/conftest.py)
T = TypeVar("T")
POLL = 0.02  # seconds between two looks at a condition


def wait_until(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """The first true value ``predicate()`` returns, looking every ``POLL`` seconds; fails
    the test with "``what`` did not happen within ``timeout`` s" when none comes."""
    deadline = time.monotonic() + timeout
    while (value := _look(predicate, deadline, timeout, what)) is None:
        time.sleep(POLL)
    return value


async def wait_until_async(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """``wait_until`` inside an event loop: the loop runs on between two looks."""
    deadline = time.monotonic() + timeout
    while (value := _look(predicate, deadline, timeout, what)) is None:
        await asyncio.sleep(POLL)
    return value


def _look(predicate: Callable[[], T], deadline: float, timeout: float, what: str) -> T | None:
    """``predicate()`` when true, None when false and there is time left; past ``deadline``, fail."""
    value = predicate()
    if value:
        return value
    if time.monotonic() >= deadline:
        pytest.fail(f"{what} did not happen within {timeout} s")
    return None


def unknown_tac_profile(folder: Path) -> Path:
    """A profile file in ``folder``: tj, with unknown TACs answered "unknown" (S13 5422,
    MAP returnError unknownEquipment) instead of a grace period."""
    profile = folder / "profile.yaml"
    profile.write_text((PROFILES / "tj.yaml").read_text().replace("unknown_tac: grace", "unknown_tac: unknown"))
    return profile


def free_tcp_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now; bind it soon after."""
    return free_port(host)


def kernel_has_sctp() -> bool:
    try:
        check_sctp()
    except SctpUnavailable:
        return False
    return True


# The host tests of what happens without SCTP; where the kernel has it, tests/uml covers SCTP.
without_sctp = pytest.mark.skipif(kernel_has_sctp(), reason="this kernel has SCTP; tests/uml covers it")
