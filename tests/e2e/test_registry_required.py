"""Issue 11, `eir serve`: it never creates a registry, refuses one it cannot use or write
(the sightings it records must be durable), and says which listener it cannot open, each
in one line on stderr and exit status 1, before listening. The real `eir serve` runs as a
child process on free ports, in tmp_path folders."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from registry.store import Registry
from simulator.agent_process import EIR, LOOPBACK, AgentProcess, free_port, run_eir
from tests.tools import wait_until


def serve(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``eir serve`` that must fail at start-up (a timeout here means it started)."""
    return run_eir(url, "serve", "--listen", f"{LOOPBACK}:{free_port()}", "--answer-log", "off", *args,
                   check=False, timeout=30)


def refused(done: subprocess.CompletedProcess[str], says: str) -> str:
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("eir serve: ") and says in lines[0], done.stderr
    assert "listening" not in done.stderr
    return lines[0]


def made(url: str) -> str:
    with Registry(url):
        pass
    return url


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: refused even to root, whom os.access always lets write."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this filesystem refuses chattr +i: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_serve_never_creates_a_missing_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'eir.db'}"
    line = refused(serve(url), f"cannot open registry {url}: ")
    assert "does not exist" in line and "eir registry init" in line
    assert list(tmp_path.iterdir()) == []


def test_serve_in_the_wrong_folder_with_the_default_url_refuses(tmp_path: Path) -> None:
    environment = {name: value for name, value in os.environ.items() if name != "EIR_REGISTRY"}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([*EIR, "serve", "--listen", f"{LOOPBACK}:{free_port()}"], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path, env=environment)
    refused(done, "cannot open registry sqlite:///eir.db: eir.db does not exist")
    assert not (tmp_path / "eir.db").exists()


@pytest.mark.parametrize("kind", ["no driver", "no folder", "corrupt", "unversioned"])
def test_serve_refuses_a_registry_it_cannot_use(tmp_path: Path, kind: str) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage, not a database " * 400)
    old = made(f"sqlite:///{tmp_path / 'old.db'}")
    with closing(sqlite3.connect(tmp_path / "old.db")) as raw:  # as an eir before schema versions made it
        raw.execute("DROP TABLE eir_schema")
        raw.execute("DROP TABLE alembic_version")
    url, says = {"no driver": ("nosuchdb://x", "nosuchdb"),
                 "no folder": (f"sqlite:///{tmp_path / 'no' / 'such' / 'eir.db'}", "does not exist"),
                 "corrupt": (f"sqlite:///{corrupt}", "file is not a database"),
                 "unversioned": (old, "upgrade it with `eir registry init`")}[kind]
    refused(serve(url), says)


def test_serve_refuses_a_read_only_registry(tmp_path: Path) -> None:
    path = tmp_path / "eir.db"
    made(f"sqlite:///{path}")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"  # SQLite refuses writes, even to root
    refused(serve(read_only), "it refuses writes: attempt to write a readonly database")


def test_serve_refuses_an_immutable_registry_file(tmp_path: Path) -> None:
    path = tmp_path / "eir.db"
    url = made(f"sqlite:///{path}")
    with immutable(path):
        refused(serve(url), f"{path} is not writable")


def test_serve_refuses_a_registry_in_an_immutable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    folder.mkdir()
    url = made(f"sqlite:///{folder / 'eir.db'}")
    with immutable(folder):
        refused(serve(url), f"folder {folder} is not writable")


def test_serve_names_the_diameter_listener_it_cannot_open(tmp_path: Path) -> None:
    url = made(f"sqlite:///{tmp_path / 'eir.db'}")
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_eir(url, "serve", "--listen", f"{LOOPBACK}:{port}", "--answer-log", "off", check=False,
                       timeout=30)
    assert refused(done, "cannot listen") == \
        f"eir serve: cannot listen on {LOOPBACK}:{port} (S13 Diameter, tcp): Address already in use"


def test_serve_names_the_m3ua_listener_it_cannot_open(tmp_path: Path) -> None:
    url = made(f"sqlite:///{tmp_path / 'eir.db'}")
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve(url, "--m3ua-listen", f"{LOOPBACK}:{free_port()}", "--m3ua-listen", f"{LOOPBACK}:{port}")
    assert refused(done, "cannot listen") == \
        f"eir serve: cannot listen on {LOOPBACK}:{port} (M3UA, tcp): Address already in use"


def test_serve_config_yaml_error_names_the_file(tmp_path: Path) -> None:
    url = made(f"sqlite:///{tmp_path / 'eir.db'}")
    config = tmp_path / "agent.yaml"
    config.write_text("origin_host: eir.localdomain\nlisten: [127.0.0.1:3868\n")
    line = refused(serve(url, "--config", str(config)), f"cannot read {config}: line 3, column 1: ")
    assert "<unicode string>" not in line


def test_an_answer_log_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    url = made(f"sqlite:///{tmp_path / 'eir.db'}")
    done = run_eir(url, "serve", "--listen", f"{LOOPBACK}:{free_port()}", "--answer-log",
                   str(tmp_path / "no" / "answers.jsonl"), check=False, timeout=30)
    refused(done, "cannot open the answer log")


def test_agent_process_inits_a_new_registry_then_serves(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    agent = AgentProcess(tmp_path, url, answer_log=False)
    try:
        assert "eir: listening on" in agent.log()
    finally:
        assert agent.stop() == 0
    with pytest.raises(RuntimeError, match="does not exist"):
        AgentProcess(tmp_path, f"sqlite:///{tmp_path / 'other.db'}", init=False)


def test_a_registry_file_deleted_under_the_running_agent_is_noticed(tmp_path: Path) -> None:
    """SQLite goes on with the file it opened, so answers go on; but what the agent records
    would be lost at the next start: it says so in its log (once a minute), and counts it."""
    import asyncio

    from simulator.mme import send_ecr

    path = tmp_path / "eir.db"
    url = made(f"sqlite:///{path}")
    agent = AgentProcess(tmp_path, url, answer_log=False)
    try:
        for name in ("eir.db", "eir.db-wal", "eir.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        answer = asyncio.run(send_ecr(*agent.address, "35209900176148", imsi="436011234567890"))
        assert answer.equipment_status == "GREYLISTED"  # it keeps serving
        wait_until(lambda: "was deleted while the agent runs" in agent.log(), 5.0, "the agent's log line")
        assert f"registry file {path} was deleted while the agent runs" in agent.log(), agent.log()
    finally:
        assert agent.stop() == 0
    assert agent.log().count("was deleted while the agent runs") == 1  # not a line every 0.2 s
    assert f"registry file {path} was deleted or replaced 1 time(s)" in agent.log()
