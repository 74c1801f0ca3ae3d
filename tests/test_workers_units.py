"""agent/workers.py without processes: the worker's role on its command line, its answer
log's name, the parent's exit status, and the ports the parent reserves (real sockets)."""

from __future__ import annotations

import errno
import signal
import socket
from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, GatewayLink, Listen, load_config
from agent.server import UNWRITTEN_EXIT, StartError
from agent.workers import (
    WorkerRole,
    as_worker,
    check_shareable,
    exit_status,
    how_it_ended,
    reserve_ports,
    worker_answer_log,
)

LOOPBACK = "127.0.0.1"


def test_a_role_goes_through_its_command_line_text() -> None:
    role = WorkerRole(2, 4711, (3868, 2905))
    assert role.text() == "2:4711:3868,2905"
    assert WorkerRole.parse(role.text()) == role
    assert WorkerRole.parse("1:9:") == WorkerRole(1, 9, ())
    for bad in ("", "1:2", "a:2:3", "1:2:3,x", "1:2:3:4"):
        with pytest.raises(ValueError, match="is not K:PARENT:PORT"):
            WorkerRole.parse(bad)


def test_each_worker_has_its_own_answer_log() -> None:
    assert worker_answer_log("/var/log/eir/answers.jsonl", 1) == "/var/log/eir/answers.w1.jsonl"
    assert worker_answer_log("answers", 12) == "answers.w12"
    assert worker_answer_log("-", 2) == "-"
    assert worker_answer_log("off", 2) == "off"


def test_a_worker_takes_the_reserved_ports_in_order() -> None:
    config = AgentConfig(listen=[Listen(LOOPBACK, 0)], answer_log="a.jsonl")
    config.m3ua.listen = [Listen(LOOPBACK, 0), Listen("::1", 2905)]
    as_worker(config, WorkerRole(3, 1, (41000, 42000, 43000)))
    assert [item.port for item in config.listen] == [41000]
    assert [item.port for item in config.m3ua.listen] == [42000, 43000]
    assert config.answer_log == "a.w3.jsonl"
    with pytest.raises(ConfigError, match=r"reserved 2 port\(s\) for 1 listening address"):
        as_worker(AgentConfig(), WorkerRole(1, 1, (1, 2)))


def test_workers_refuse_sctp_and_a_named_asp() -> None:
    check_shareable(AgentConfig(workers=2))
    with pytest.raises(ConfigError, match="needs TCP listeners"):
        check_shareable(AgentConfig(workers=2, listen=[Listen(LOOPBACK, 3868, "sctp")]))
    config = AgentConfig(workers=2)
    config.m3ua.connect = [GatewayLink(Listen("10.0.0.5", 2905), asp_identifier=7)]
    with pytest.raises(ConfigError, match="asp_identifier 7"):
        check_shareable(config)


def test_workers_in_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("workers: 4\n")
    assert load_config(path).workers == 4
    for bad in ("0", "65", "two", "true", "1.5"):
        path.write_text(f"workers: {bad}\n")
        with pytest.raises(ConfigError, match="workers is a whole number of agent processes, 1 to 64"):
            load_config(path)


def test_the_parent_exits_0_only_when_every_worker_stopped_cleanly() -> None:
    assert exit_status([0, 0]) == 0
    assert exit_status([0, -signal.SIGTERM]) == 0  # ended by the SIGTERM passed on, before it could catch it
    assert exit_status([0, UNWRITTEN_EXIT, 1]) == UNWRITTEN_EXIT
    assert exit_status([0, -signal.SIGKILL]) == 1
    assert how_it_ended(-9) == "was killed by signal 9 (SIGKILL)"
    assert how_it_ended(3) == "exited with status 3"


def test_reserved_ports_take_workers_and_refuse_others() -> None:
    config = AgentConfig(listen=[Listen(LOOPBACK, 0)])
    config.m3ua.listen = [Listen(LOOPBACK, 0)]
    ports, held = reserve_ports(config)
    try:
        assert len(ports) == 2 and all(ports)
        with pytest.raises(OSError) as plain:  # held even before any worker listens
            _listener(ports[0], reuse_port=False)
        assert plain.value.errno == errno.EADDRINUSE
        with pytest.raises(StartError, match="Address already in use"):
            reserve_ports(AgentConfig(listen=[Listen(LOOPBACK, ports[0])]))
        workers = [_listener(ports[0], reuse_port=True) for _ in range(2)]  # as two workers bind
        try:
            with pytest.raises(OSError) as plain:  # a single eir serve (no SO_REUSEPORT) cannot
                _listener(ports[0], reuse_port=False)
            assert plain.value.errno == errno.EADDRINUSE
            with pytest.raises(StartError, match=rf"cannot listen on {LOOPBACK}:{ports[0]} \(S13 Diameter, "
                                                 r"tcp\): Address already in use"):
                reserve_ports(AgentConfig(listen=[Listen(LOOPBACK, ports[0])]))  # nor another supervisor
        finally:
            for sock in workers:
                sock.close()
    finally:
        for sock in held:
            sock.close()


def _listener(port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((LOOPBACK, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock
