"""Boot a User-Mode Linux guest whose kernel has SCTP, to run a test inside it.

The host kernel has no SCTP; Debian's UML kernel ships sctp.ko and boots as an ordinary
process with the host's file system as its root (see /work/shared/INTEROP.md), so the
guest runs the project's own Python and the Debian tools unchanged. ``boot`` writes
nothing outside ``folder``: the guest's ``init.sh`` runs ``folder/run.sh`` and leaves its
exit status in ``folder/status`` and its output in ``folder/run.log``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.tools import require_tool, unavailable

INIT = Path(__file__).with_name("init.sh")
UML_MODULES = Path("/usr/lib/uml/modules")
MEMORY = "512M"


@dataclass(frozen=True)
class GuestRun:
    status: int | None  # run.sh's exit status; None when the guest never got that far
    log: str  # run.sh's output
    console: str  # the kernel's and init's
    seconds: float


# A host whose CPU saves more extended state than UML's buffer holds (AMX tiles: Intel
# Sapphire Rapids and later) refuses UML's PTRACE_SETREGSET NT_X86_XSTATE with EFAULT, and
# the guest's first process dies at once. Debian's UML 6.1 (bookworm) and 6.12 (trixie)
# both do this; nothing the tests can change on the host fixes it.
HOST_XSTATE_REFUSED = "ptrace set fp regs failed, errno = 14"
_host_check: list[str] = []  # the probe's verdict, once per test session ("" = UML runs)


def require_uml() -> str:
    """The UML kernel; skips the test where user-mode-linux is absent, fails in CI. Where
    the host cannot run UML at all (HOST_XSTATE_REFUSED), skips, in CI too, saying why."""
    kernel = require_tool("linux.uml")
    if not _module_versions():
        unavailable(f"no UML kernel modules under {UML_MODULES} (apt-get install -y user-mode-linux kmod)")
    if shutil.which("modprobe", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
        unavailable("modprobe is not installed (apt-get install -y kmod)")
    if not _host_check:
        _host_check.append(_probe(kernel))
    if _host_check[0]:
        pytest.skip(_host_check[0])
    return kernel


def _probe(kernel: str) -> str:
    """Boot a guest that only says hello: "" when it does, else why this host cannot run UML."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="eir-uml-probe-") as name:
        run = _boot(kernel, Path(name), "echo hello\n", 60.0)
    if run.status == 0 or HOST_XSTATE_REFUSED not in run.console:
        return ""
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    amx = " (the CPU has AMX: " + ", ".join(f for f in flags.split() if f.startswith("amx")) + ")" if "amx" in flags \
        else ""
    return (f"this host cannot run User-Mode Linux: its guest's first process dies with '{HOST_XSTATE_REFUSED}' "
            f"(the host kernel refuses UML's extended-state buffer as too small{amx}); the SCTP tests need a "
            "host whose CPU UML supports")


def _module_versions() -> list[Path]:
    return sorted(p for p in UML_MODULES.glob("*") if (p / "kernel").is_dir()) if UML_MODULES.is_dir() else []


def boot(folder: Path, script: str, timeout: float = 60.0) -> GuestRun:
    """Run the shell ``script`` inside a fresh guest, in ``folder`` (on the host's file system)."""
    return _boot(require_uml(), folder, script, timeout)


def _boot(kernel: str, folder: Path, script: str, timeout: float) -> GuestRun:
    folder = folder.resolve()
    (folder / "run.sh").write_text(script)
    modules = folder / "modules" / "lib" / "modules"
    modules.mkdir(parents=True, exist_ok=True)
    for version in _module_versions():
        link = modules / version.name
        if not link.exists():
            link.symlink_to(version)
    command = [kernel, f"mem={MEMORY}", "root=/dev/root", "rootfstype=hostfs", "rootflags=/", "rw",
               "con=null", "con0=fd:0,fd:1", f"uml_dir={folder}", f"EIR_UML_DIR={folder}", "init=/bin/sh", "--",
               str(INIT)]
    started = time.monotonic()
    try:
        console = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 errors="replace", timeout=timeout).stdout
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout
        console = (out.decode(errors="replace") if isinstance(out, bytes) else out or "") + "\n[timed out]"
    seconds = time.monotonic() - started
    status_file, log_file = folder / "status", folder / "run.log"
    status = int(status_file.read_text()) if status_file.exists() and status_file.read_text().strip() else None
    return GuestRun(status, log_file.read_text(errors="replace") if log_file.exists() else "", console, seconds)


# --- the project's guest driver -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
DRIVER = "tests.uml.guest_sctp"


@dataclass(frozen=True)
class Guest:
    """One boot of the guest driver: how it went, what it reported, and its capture."""

    run: GuestRun
    result: dict[str, Any]
    folder: Path

    @property
    def capture(self) -> Path:
        return self.folder / "sctp.pcapng"


def run_driver(folder: Path, setup: dict[str, Any], timeout: float = 120.0, driver: str = DRIVER) -> Guest:
    """Boot a guest that runs the module ``driver`` (tests/uml/guest_sctp.py unless told) with
    ``setup`` (its guest.json); fails the test, with the guest's output, unless the driver
    finished and reported no error. A driver writes result.json in the folder it is given."""
    (folder / "guest.json").write_text(json.dumps(setup))
    run = boot(folder, f"cd {ROOT} && exec {sys.executable} -m {driver} {folder.resolve()}\n", timeout)
    result_file = folder / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {"error": "no result.json"}
    if run.status != 0 or "error" in result:
        pytest.fail(f"guest failed after {run.seconds:.1f} s: {result.get('error')}\n{run.log}\n"
                    f"{run.console[-3000:]}", pytrace=False)
    return Guest(run, result, folder)
