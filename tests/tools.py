"""Helpers shared by tests: external tools that must exist in CI, free loopback ports, and
whether this kernel has SCTP."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

from netio.sctp import SctpUnavailable, check_sctp
from simulator.agent_process import LOOPBACK, free_port


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
