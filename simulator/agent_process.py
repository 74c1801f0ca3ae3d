"""Run the real ``eir`` commands as child processes: the demo and the end-to-end tests
drive the product exactly as an operator would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EIR = [sys.executable, "-m", "eir"]
LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def run_eir(registry: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``eir --registry REGISTRY ARGS...``, output captured."""
    return subprocess.run([*EIR, "--registry", registry, *args], capture_output=True, text=True,
                          timeout=timeout, check=check)


def _missing_sqlite_file(registry: str) -> bool:
    from sqlalchemy.engine import make_url

    from registry.schema import sqlite_file

    path = sqlite_file(make_url(registry))
    return path is not None and not path.exists()


class AgentProcess:
    """``eir serve`` as a child process on loopback; ``stop()`` sends SIGTERM and returns
    the exit code. Its JSON answer log and its own log go to files in ``folder``. ``config``
    is a YAML file for ``--config``; the flags given here win over it. ``eir serve`` never
    creates a registry: with ``init`` (the default) a SQLite registry file that does not
    exist yet is made first with ``eir registry init``, as an operator would once.
    ``lab_clock``: lab mode (``--lab-clock START``, "now" for the machine's now) with its
    control socket at ``control_path`` (``folder/lab-PORT.sock``; None without lab mode)."""

    def __init__(self, folder: Path, registry: str, *extra: str, port: int | None = None,
                 answer_log: bool = True, m3ua: bool = False, config: Path | None = None,
                 init: bool = True, lab_clock: str | None = None) -> None:
        if init and _missing_sqlite_file(registry):
            run_eir(registry, "registry", "init")
        self.registry = registry  # its URL
        self.port = port or free_port()
        self.m3ua_port = free_port() if m3ua else None  # MAP CheckIMEI over M3UA/TCP, when asked for
        self.answer_log = folder / f"answers-{self.port}.jsonl"
        self.stderr_path = folder / f"agent-{self.port}.log"
        self._stderr = self.stderr_path.open("w")
        command = [*EIR, "--registry", registry, "--log-level", "info", "serve", "--listen",
                   f"{LOOPBACK}:{self.port}", "--answer-log", str(self.answer_log) if answer_log else "off", *extra]
        if config is not None:
            command += ["--config", str(config)]
        if self.m3ua_port is not None:
            command += ["--m3ua-listen", f"{LOOPBACK}:{self.m3ua_port}"]
        self.control_path = None if lab_clock is None else folder / f"lab-{self.port}.sock"
        if self.control_path is not None:
            command += ["--lab-clock", lab_clock or "now", "--control", str(self.control_path)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "eir: listening on" in self.stderr_path.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"eir serve exited with {self.process.returncode}: {self.log()}")
            time.sleep(0.05)
        self.process.kill()
        raise RuntimeError(f"eir serve did not start in {timeout} s: {self.log()}")

    def log(self) -> str:
        return self.stderr_path.read_text()

    def answers(self) -> list[dict[str, Any]]:
        """The answer log so far (the agent flushes it every 0.2 s)."""
        if not self.answer_log.exists():
            return []
        return [json.loads(line) for line in self.answer_log.read_text().splitlines() if line.strip()]

    def answer_for(self, session: str, timeout: float = 3.0) -> dict[str, Any] | None:
        """The answer log line of ``session``, waiting for the agent's next flush."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.answers() if line.get("session") == session]
            if found or time.monotonic() > deadline:
                return found[-1] if found else None
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()
        return int(self.process.returncode)

    @property
    def address(self) -> tuple[str, int]:
        return LOOPBACK, self.port

    @property
    def m3ua_address(self) -> tuple[str, int]:
        if self.m3ua_port is None:
            raise RuntimeError("this agent was started without M3UA (m3ua=True)")
        return LOOPBACK, self.m3ua_port
