"""Shared end-to-end fixtures: the demo registry and running agents (``eir serve`` as a
child process, simulator/agent_process.py).

- ``backend``: the registry's database, "sqlite" for every module, and "postgresql" too for
  a module that sets ``BOTH_DATABASES = True`` (the modules whose answers rest on the
  registry: lists, decisions, observations, durability); parametrised per module, so a
  module's agents are started once per database. ``registry_url_for(backend, folder)`` gives
  an empty registry database: a SQLite file in ``folder``, or a new database on the session's
  PostgreSQL server (tests/postgres.py; where PostgreSQL is missing those runs skip, and fail
  in CI).
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
from tests.postgres import new_database
from tests.tools import unknown_tac_profile

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        both = getattr(metafunc.module, "BOTH_DATABASES", False)
        metafunc.parametrize("backend", BACKENDS if both else BACKENDS[:1], scope="module")


@pytest.fixture(scope="module")
def registry_url_for(request: pytest.FixtureRequest) -> Callable[[str, Path], str]:
    """``make(backend, folder)``: the URL of an empty registry database on ``backend``."""

    def make(backend: str, folder: Path) -> str:
        if backend == "sqlite":
            return f"sqlite:///{folder / 'registry.db'}"
        return new_database(request.getfixturevalue("postgres_url"))

    return make


@pytest.fixture(scope="module")
def demo_registry(tmp_path_factory: pytest.TempPathFactory, backend: str,
                  registry_url_for: Callable[[str, Path], str]) -> str:
    folder = tmp_path_factory.mktemp("registry")
    return build_demo_registry(folder, registry_url_for(backend, folder))


@pytest.fixture
def make_agent(tmp_path: Path, backend: str,
               registry_url_for: Callable[[str, Path], str]) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def make(*flags: str, registry: str | None = None, config: str | None = None, **options: Any) -> AgentProcess:
        path = None
        if config is not None:
            path = tmp_path / f"agent-{len(started)}.yaml"
            path.write_text(config)
        if registry is None:
            registry = build_demo_registry(tmp_path, registry_url_for(backend, tmp_path))
        agent = AgentProcess(tmp_path, registry, *flags, config=path, **options)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture(scope="module")
def map_agent(tmp_path_factory: pytest.TempPathFactory, backend: str,
              registry_url_for: Callable[[str, Path], str]) -> Iterator[AgentProcess]:
    folder = tmp_path_factory.mktemp("map-agent")
    registry = build_demo_registry(folder, registry_url_for(backend, folder))
    process = AgentProcess(folder, registry, "--profile", str(unknown_tac_profile(folder)),
                           m3ua=True)
    yield process
    assert process.stop() == 0
