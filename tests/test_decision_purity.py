"""The decision package (registry/decision) is pure: importing it in a fresh interpreter
pulls in no database library, and the store and the models take their facts from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout))


def test_the_decision_imports_no_database() -> None:
    loaded = loaded_after("import registry.decision")
    assert "registry.decision.policy" in loaded
    assert not {name for name in loaded if name.split(".")[0] in ("sqlalchemy", "sqlite3", "_sqlite3", "psycopg",
                                                                  "psycopg2")}
    assert not {"registry.store", "registry.models", "registry.observations"} & loaded


def test_the_store_and_the_models_use_the_decisions_facts() -> None:
    from registry import models, store
    from registry.decision import EquipmentFacts, ListName

    assert models.ListName is ListName
    assert store.EquipmentFacts is EquipmentFacts
