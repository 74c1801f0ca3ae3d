"""The registry's reads are named methods that own their SQL (registry/statements.py),
and every connection is made in one place (registry/connections.py): the engine, the
lookup connection of the hot path and the recorder's writer."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from agent.service import EquipmentCheck, Interface
from registry.decision import Query
from registry.imports import ImportKind, import_file
from registry.observations import Recorder
from registry.profile import load_profile
from registry.store import Registry

ROOT = Path(__file__).resolve().parents[1]
KEY, TAC = "35999000000017", "35999000"
IMSI, NUMBER = "436011000000001", "992901000001"
T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def test_the_named_reads_answer_on_every_database(registry_url: str, tmp_path: Path) -> None:
    with Registry(registry_url) as registry:
        _named_reads(registry, tmp_path)


def _named_reads(registry: Registry, tmp_path: Path) -> None:
    assert registry.device_type(TAC) is None and registry.msisdn(IMSI, T0) is None
    assert registry.sightings(KEY) == [] and not registry.notice_queued(KEY, IMSI, "grey")
    (tmp_path / "tac.csv").write_text(f"tac,brand,model,device_type\n{TAC},Acme,One,Smartphone\n")
    (tmp_path / "subscribers.csv").write_text(f"imsi,msisdn\n{IMSI},{NUMBER}\n")
    import_file(registry, ImportKind.TAC, tmp_path / "tac.csv")
    import_file(registry, ImportKind.SUBSCRIBERS, tmp_path / "subscribers.csv")
    assert registry.device_type(TAC) == "Smartphone" and registry.msisdn(IMSI, T0) == NUMBER
    recorder = Recorder(registry)
    decision = EquipmentCheck(registry, load_profile("tj"), recorder).answer(Query(KEY, Interface.S13, T0, None, IMSI))
    assert decision.notices and recorder.commit()
    assert [row[0] for row in registry.sightings(KEY)] == [IMSI]
    assert registry.notice_queued(KEY, IMSI, decision.notices[0].event)
    recorder.close()


def test_no_caller_hands_the_registry_sql() -> None:
    assert not hasattr(Registry, "fetch")
    for package in ("agent", "simulator", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            imported = _imported_modules(path)
            assert not imported & {"registry.statements", "registry.connections", "registry.writer"}, path


# Calls that open a database connection; only registry/connections.py makes them.
OPENERS = {"sqlite3.connect", "create_engine", "sqlalchemy.create_engine", "raw_connection"}


def test_one_module_opens_the_registrys_connections() -> None:
    found = {}
    for package in ("registry", "agent"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            calls = _opening_calls(path)
            if calls and relative != "registry/connections.py":
                found[relative] = calls
    assert found == {}
    assert _opening_calls(ROOT / "registry" / "connections.py")


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _opening_calls(path: Path) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (f"{func.value.id}.{func.attr}" if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else "")
        if name in OPENERS or name.rsplit(".", 1)[-1] in {"raw_connection", "create_engine"}:
            calls.append(f"{node.lineno}: {name}")
    return calls
