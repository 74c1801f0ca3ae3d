"""Arrows point down only: the running agent imports nothing from the simulator (the test
tool that plays the network around it); only the top of the house, ``eir.cli``, puts the
two side by side. The protocol packages share sockets through ``netio`` and nothing else:
``diameter`` imports nothing from ``sigtran`` (nor the other way), neither imports the agent
or the simulator, and ``netio`` knows no protocol at all."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` of ``path`` names, at any depth
    (imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            names.add(node.module)
    return names


def test_no_module_of_the_agent_imports_the_simulator() -> None:
    offenders = {str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                                      if name.split(".")[0] in ("simulator", "eir"))
                 for path in sorted((ROOT / "agent").rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_importing_every_agent_module_loads_no_simulator_module() -> None:
    modules = sorted(f"agent.{path.stem}" for path in (ROOT / "agent").glob("*.py") if path.stem != "__init__")
    program = ("import importlib, sys\n"
               f"for name in {modules!r}: importlib.import_module(name)\n"
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('simulator', 'eir')))")
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_the_eir_command_puts_the_agent_registry_and_simulator_commands_side_by_side() -> None:
    from eir.cli import main

    assert {"serve", "check", "registry", "notices", "sim", "demo"} <= set(main.commands)


def offenders_in(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """The modules of ``package`` that import a module of a ``forbidden`` package, and what."""
    found = {str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                                 if name.split(".")[0] in forbidden)
             for path in sorted((ROOT / package).rglob("*.py"))}
    return {path: names for path, names in found.items() if names}


def test_diameter_takes_its_sockets_from_netio_and_nothing_from_sigtran() -> None:
    assert offenders_in("diameter", ("sigtran", "agent", "simulator", "registry", "eir")) == {}


def test_sigtran_imports_neither_diameter_nor_the_agent() -> None:
    assert offenders_in("sigtran", ("diameter", "agent", "simulator", "registry", "eir")) == {}


def test_netio_knows_no_protocol() -> None:
    assert offenders_in("netio", ("diameter", "sigtran", "agent", "simulator", "registry", "eir")) == {}
