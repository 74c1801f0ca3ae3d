"""Shared end-to-end fixtures: the demo registry and running agents (``eir serve`` as a
child process, simulator/agent_process.py).

- ``demo_registry``: the URL of the demo registry (simulator/demo.py), built once a module.
- ``make_agent(*flags, registry=None, config=None, **options)``: an agent in the test's
  tmp_path, on the demo registry built there unless ``registry`` is given; ``config`` is
  YAML text for ``--config``; ``options`` as ``AgentProcess`` takes them (``m3ua=True``...).
  Every agent it started is stopped after the test; its exit code is the test's to check.
- ``map_agent``: one agent a module with MAP over M3UA, profile tj with unknown TACs
  answered unknownEquipment; it must exit 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.agent_process import AgentProcess
from simulator.demo_registry import build_demo_registry
from tests.tools import unknown_tac_profile


@pytest.fixture(scope="module")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_demo_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(*flags: str, registry: str | None = None, config: str | None = None, **options: Any) -> AgentProcess:
        path = None
        if config is not None:
            path = tmp_path / f"agent-{len(started)}.yaml"
            path.write_text(config)
        agent = AgentProcess(tmp_path, registry or build_demo_registry(tmp_path), *flags, config=path, **options)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture(scope="module")
def map_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    folder = tmp_path_factory.mktemp("map-agent")
    process = AgentProcess(folder, build_demo_registry(folder), "--profile", str(unknown_tac_profile(folder)),
                           m3ua=True)
    yield process
    assert process.stop() == 0
