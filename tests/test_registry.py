"""The registry store and CSV imports/exports, in process, on SQLite files."""

from __future__ import annotations

import io
import sqlite3
import time
from pathlib import Path

import pytest

from agent.context import DEFAULT_REGISTRY
from registry.decision import EquipmentFacts, ListName
from registry.imei import luhn_check_digit
from registry.imports import (
    BadRow,
    CsvFormatError,
    ImportKind,
    ImportReport,
    ParsedRows,
    export_csv,
    import_file,
    parse_rows,
)
from registry.models import HistoryField
from registry.store import Counts, Registry
from tests.tools import wait_until

WHITE, GREY, BLACK, PAIRED, STOLEN = (f"3520990017614{n}" for n in range(5))
UNKNOWN = "35209900999999"
IMSI, OTHER_IMSI, MSISDN = "437011234567890", "437059999999999", "992900123456"


def imei15(key: str) -> str:
    return key + luhn_check_digit(key)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(registry: Registry, folder: Path, kind: str, text: str, strict: bool = False) -> ImportReport:
    return import_file(registry, ImportKind(kind), write(folder, f"{kind}.csv", text), strict=strict)


def export(registry: Registry, kind: str) -> str:
    out = io.StringIO()
    export_csv(registry, ImportKind(kind), out)
    return out.getvalue()


# -- lookups ---------------------------------------------------------------------------

def test_lookup_of_each_list_stolen_flag_and_pairings(registry: Registry, tmp_path: Path) -> None:
    load(registry, tmp_path, "white", f"imei,reason\n{imei15(WHITE)},customs cleared\n{STOLEN},\n")
    load(registry, tmp_path, "grey", f"imei,reason\n{GREY},awaiting registration\n")
    load(registry, tmp_path, "black", f"imei\n{imei15(BLACK)}\n")
    load(registry, tmp_path, "paired", f"imei,imsi,msisdn\n{PAIRED},{IMSI},\n{PAIRED},,+{MSISDN}\n")
    load(registry, tmp_path, "stolen", f"imei,reason\n{STOLEN},police report 42\n{UNKNOWN[:-1]}7,lost\n")

    assert registry.lookup(WHITE) == EquipmentFacts(WHITE, ListName.WHITE, False, "customs cleared", None, ())
    assert registry.lookup(GREY) == EquipmentFacts(GREY, ListName.GREY, False, "awaiting registration", None, ())
    assert registry.lookup(BLACK) == EquipmentFacts(BLACK, ListName.BLACK, False, None, None, ())
    assert registry.lookup(PAIRED) == EquipmentFacts(PAIRED, ListName.PAIRED, False, None, None,
                                                     ((IMSI, None), (None, MSISDN)))
    # stolen keeps the list; an IMEI may be known only as stolen
    assert registry.lookup(STOLEN) == EquipmentFacts(STOLEN, ListName.WHITE, True, None, "police report 42", ())
    assert registry.lookup(UNKNOWN[:-1] + "7") == EquipmentFacts(UNKNOWN[:-1] + "7", None, True, None, "lost", ())
    assert registry.lookup(UNKNOWN) is None
    for key in (WHITE, GREY, BLACK, PAIRED, STOLEN, UNKNOWN[:-1] + "7", UNKNOWN):  # SQLAlchemy Core path agrees
        assert registry._lookup_core(key) == registry.lookup(key)


def test_tac_catalogue(registry: Registry, tmp_path: Path) -> None:
    report = load(registry, tmp_path, "tac", "tac,brand,model,device_type\n35209900,Acme,Phone 1,smartphone\n"
                                             "86000000,Acme,,router\n")
    assert (report.counts, report.bad) == (Counts(2, 0, 0), [])
    assert registry.tac("35209900") == ("Acme", "Phone 1", "smartphone")
    assert registry.tac("86000000") == ("Acme", None, "router")
    assert registry.tac("11111111") is None
    again = load(registry, tmp_path, "tac", "tac,brand,model,device_type\n35209900,Acme,Phone 1 Pro,smartphone\n")
    assert again.counts == Counts(0, 1, 0)
    assert registry.tac("35209900") == ("Acme", "Phone 1 Pro", "smartphone")


# -- list changes and history ----------------------------------------------------------

def test_list_change_moves_the_imei_and_writes_history(registry: Registry, tmp_path: Path) -> None:
    first = load(registry, tmp_path, "grey", f"imei,reason\n{WHITE},first seen\n")
    assert first.counts == Counts(new=1, changed=0, unchanged=0)
    second = import_file(registry, ImportKind.WHITE, write(tmp_path, "cleared.csv", f"imei,reason\n{WHITE},paid\n"))
    assert second.counts == Counts(new=0, changed=1, unchanged=0)
    facts, history = registry.show(WHITE)
    assert facts is not None and (facts.list, facts.reason) == (ListName.WHITE, "paid")
    assert [(h.field, h.old, h.new, h.reason, h.source) for h in history] == [
        (HistoryField.LIST, None, "grey", "first seen", "import:grey.csv"),
        (HistoryField.LIST, "grey", "white", "paid", "import:cleared.csv"),
    ]
    assert history[0].at <= history[1].at
    entry = registry.entry(WHITE)
    assert entry is not None and entry.source == "import:cleared.csv" and entry.created_at <= entry.updated_at


def test_unchanged_rows_write_no_history_and_reason_changes_count_as_changed(registry: Registry,
                                                                             tmp_path: Path) -> None:
    load(registry, tmp_path, "white", f"imei,reason\n{WHITE},a\n{GREY},b\n")
    report = load(registry, tmp_path, "white", f"imei,reason\n{WHITE},a\n{GREY},c\n{BLACK},\n")
    assert report.counts == Counts(new=1, changed=1, unchanged=1)
    assert len(registry.history(WHITE)) == 1 and len(registry.history(GREY)) == 1
    assert registry.lookup(GREY).reason == "c"  # type: ignore[union-attr]


def test_stolen_sets_the_flag_with_history_and_keeps_the_list(registry: Registry, tmp_path: Path) -> None:
    load(registry, tmp_path, "black", f"imei\n{BLACK}\n")
    report = load(registry, tmp_path, "stolen", f"imei,reason\n{BLACK},police 7\n{UNKNOWN},\n")
    assert report.counts == Counts(new=1, changed=1, unchanged=0)
    assert [(h.field, h.old, h.new) for h in registry.history(BLACK)] == [
        (HistoryField.LIST, None, "black"), (HistoryField.STOLEN, "false", "true")]
    assert [(h.field, h.old, h.new) for h in registry.history(UNKNOWN)] == [(HistoryField.STOLEN, None, "true")]
    again = load(registry, tmp_path, "stolen", f"imei,reason\n{BLACK},police 7\n")
    assert again.counts == Counts(0, 0, 1) and len(registry.history(BLACK)) == 2
    load(registry, tmp_path, "white", f"imei\n{UNKNOWN}\n")
    assert registry.lookup(UNKNOWN) == EquipmentFacts(UNKNOWN, ListName.WHITE, True, None, None, ())


def test_pairings_add_up_and_are_dropped_when_leaving_the_paired_list(registry: Registry, tmp_path: Path) -> None:
    first = load(registry, tmp_path, "paired", f"imei,imsi,msisdn\n{PAIRED},{IMSI},\n")
    assert first.counts == Counts(1, 0, 0)
    second = load(registry, tmp_path, "paired", f"imei,imsi,msisdn\n{PAIRED},{IMSI},\n{PAIRED},{OTHER_IMSI},{MSISDN}\n")
    assert second.counts == Counts(new=0, changed=1, unchanged=1)
    assert registry.lookup(PAIRED).pairings == ((IMSI, None), (OTHER_IMSI, MSISDN))  # type: ignore[union-attr]
    load(registry, tmp_path, "black", f"imei,reason\n{PAIRED},clone\n")
    assert registry.lookup(PAIRED) == EquipmentFacts(PAIRED, ListName.BLACK, False, "clone", None, ())
    load(registry, tmp_path, "paired", f"imei,imsi,msisdn\n{PAIRED},,{MSISDN}\n")
    assert registry.lookup(PAIRED).pairings == ((None, MSISDN),)  # type: ignore[union-attr]  # old bindings gone
    changes = [(h.field, h.old, h.new) for h in registry.history(PAIRED)]
    assert changes == [
        (HistoryField.LIST, None, "paired"), (HistoryField.PAIRING, None, f"imsi={IMSI}"),
        (HistoryField.PAIRING, None, f"imsi={OTHER_IMSI} msisdn={MSISDN}"),
        (HistoryField.LIST, "paired", "black"), (HistoryField.PAIRING, f"imsi={IMSI}", None),
        (HistoryField.PAIRING, f"imsi={OTHER_IMSI} msisdn={MSISDN}", None),
        (HistoryField.LIST, "black", "paired"), (HistoryField.PAIRING, None, f"msisdn={MSISDN}"),
    ]


# -- bad rows --------------------------------------------------------------------------

def test_good_rows_are_kept_and_every_bad_row_is_reported_with_its_line(registry: Registry, tmp_path: Path) -> None:
    text = (f"imei,reason\n"                           # line 1
            f"{imei15(WHITE)},ok\n"                    # 2 good
            f"{WHITE[:-1]}A,letters\n"                 # 3
            f"{WHITE[:-1]}9{int(luhn_check_digit(WHITE[:-1] + '9')) ^ 1},bad luhn\n"  # 4
            f"{WHITE},same key as line 2\n"            # 5 duplicate (14 vs 15 digits, same key)
            f"\n"                                      # 6 blank: skipped, counted
            f"{GREY}\n"                                # 7 good: the optional reason may be left out
            f"{BLACK},a,b\n"                           # 8 too many fields
            f'"{PAIRED}","quoted, with comma"\n'       # 9 good
            f"12345,short\n")                          # 10
    report = load(registry, tmp_path, "white", text)
    assert report.bad == [
        BadRow(3, f"bad IMEI '{WHITE[:-1]}A': IMEI has a non-digit 'A' at position 14"),
        BadRow(4, f"bad IMEI '{WHITE[:-1]}9{int(luhn_check_digit(WHITE[:-1] + '9')) ^ 1}': check digit "
                  f"{int(luhn_check_digit(WHITE[:-1] + '9')) ^ 1} does not match {luhn_check_digit(WHITE[:-1] + '9')}"
                  " (Luhn)"),
        BadRow(5, f"duplicate: IMEI {WHITE} already on line 2"),
        BadRow(8, "3 fields, the header has 2"),
        BadRow(10, "bad IMEI '12345': IMEI must be 14, 15 or 16 digits, got 5"),
    ]
    assert (report.rows, report.blank, report.counts) == (8, 1, Counts(3, 0, 0))
    assert report.rows == report.imported + len(report.bad)  # nothing lost silently
    assert registry.lookup(WHITE).reason == "ok"  # type: ignore[union-attr]  # the first occurrence wins
    assert registry.lookup(PAIRED).reason == "quoted, with comma"  # type: ignore[union-attr]
    assert registry.lookup(BLACK) is None
    assert "5 bad" in report.summary() and "3 new" in report.summary() and "1 blank" in report.summary()


def test_bad_pairing_rows(registry: Registry, tmp_path: Path) -> None:
    text = (f"imei,imsi,msisdn\n{PAIRED},{IMSI},\n{PAIRED},43701,\n{PAIRED},,+99-2\n{PAIRED},,\n"
            f"{PAIRED},{IMSI},\n{PAIRED},{IMSI}\n")
    report = load(registry, tmp_path, "paired", text)
    assert report.bad == [
        BadRow(3, "bad IMSI '43701': IMSI must be 6 to 15 digits, got 5"),
        BadRow(4, "bad MSISDN '+99-2': MSISDN has a non-digit '-' at position 3"),
        BadRow(5, "neither IMSI nor MSISDN given: a pairing needs one of them"),
        BadRow(6, f"duplicate: pairing of IMEI {PAIRED} with IMSI {IMSI} and MSISDN - already on line 2"),
        BadRow(7, "missing column 'msisdn' (2 fields, the header has 3)"),
    ]
    assert report.counts == Counts(1, 0, 0)


def test_strict_refuses_the_whole_file_and_writes_nothing(registry: Registry, tmp_path: Path) -> None:
    report = load(registry, tmp_path, "white", f"imei,reason\n{WHITE},ok\n{GREY}0,bad\n{BLACK},ok\n", strict=True)
    assert report.refused and report.bad == [BadRow(3, f"bad IMEI '{GREY}0': check digit 0 does not match "
                                                      f"{luhn_check_digit(GREY)} (Luhn)")]
    assert report.counts == Counts() and "nothing written" in report.summary()
    assert registry.lookup(WHITE) is None and registry.lookup(BLACK) is None and registry.history(WHITE) == []
    good = load(registry, tmp_path, "white", f"imei,reason\n{WHITE},ok\n", strict=True)
    assert not good.refused and good.counts == Counts(1, 0, 0)


@pytest.mark.parametrize("text, message", [
    ("", "empty file: no header row"),
    ("\n\n", "empty file: no header row"),
    (f"{WHITE},x\n", "line 1: no header row"),
    ("imei,colour\n", "line 1: unknown column 'colour'; white files have columns imei,reason"),
    ("reason\n", "line 1: missing column 'imei'"),
    ("imei,imei\n", "line 1: column 'imei' appears twice"),
])
def test_file_level_errors_refuse_the_file(registry: Registry, tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CsvFormatError, match=message):
        load(registry, tmp_path, "white", text)


def test_undecodable_file_is_refused_and_nothing_is_written(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"imei,reason\n{WHITE},ok\n{GREY},caf\xe9\n".encode("latin-1"))
    with pytest.raises(CsvFormatError, match="not UTF-8"):
        import_file(registry, ImportKind.WHITE, path)
    assert registry.lookup(WHITE) is None


def test_header_is_case_insensitive_any_order_with_bom(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text(f" Reason , IMEI \r\nfrom excel,{WHITE}\r\n", encoding="utf-8-sig")
    report = import_file(registry, ImportKind.WHITE, path)
    assert report.bad == [] and registry.lookup(WHITE).reason == "from excel"  # type: ignore[union-attr]


def test_parse_rows_hands_chunks_to_the_sink() -> None:
    chunks: list[list[tuple[str | None, ...]]] = []
    lines = ["imei,reason"] + [f"{imei15(f'3520990017{n:04d}')},r{n}" for n in range(5)] + ["1,bad"]
    parsed = parse_rows(ImportKind.WHITE, lines, ParsedRows(), chunks.append, chunk=2)
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    assert chunks[0][0] == ("35209900170000", "r0", 2)  # the line last
    assert (parsed.read, parsed.rows, parsed.bad) == (6, [], [BadRow(7, "bad IMEI '1': IMEI must be 14, 15 or 16 "
                                                                         "digits, got 1")])


# -- exports ---------------------------------------------------------------------------

def test_export_then_import_round_trips_every_kind(registry: Registry, tmp_path: Path) -> None:
    load(registry, tmp_path, "white", f"imei,reason\n{WHITE},\"with, comma\"\n{STOLEN},\n")
    load(registry, tmp_path, "grey", f"imei,reason\n{GREY},g\n")
    load(registry, tmp_path, "black", f"imei,reason\n{BLACK},b\n")
    load(registry, tmp_path, "paired", f"imei,imsi,msisdn\n{PAIRED},{IMSI},\n{PAIRED},,{MSISDN}\n")
    load(registry, tmp_path, "stolen", f"imei,reason\n{STOLEN},police\n")
    load(registry, tmp_path, "tac", "tac,brand,model,device_type\n35209900,Acme,\"Phone, 1\",\n")
    kinds = ["white", "grey", "black", "paired", "stolen", "tac"]
    exported = {kind: export(registry, kind) for kind in kinds}
    assert exported["white"] == f'imei,reason\n{imei15(WHITE)},"with, comma"\n{imei15(STOLEN)},\n'
    assert exported["paired"] == f"imei,imsi,msisdn\n{imei15(PAIRED)},{IMSI},\n{imei15(PAIRED)},,{MSISDN}\n"
    assert exported["stolen"] == f"imei,reason\n{imei15(STOLEN)},police\n"
    assert exported["tac"] == 'tac,brand,model,device_type\n35209900,Acme,"Phone, 1",\n'

    for kind in kinds:  # into the same registry: nothing changes
        report = load(registry, tmp_path, kind, exported[kind])
        assert report.bad == [] and report.counts.new == report.counts.changed == 0, kind
    other = Registry(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        for kind in kinds:  # into a fresh registry: the same exports come out
            load(other, tmp_path, kind, exported[kind])
        assert {kind: export(other, kind) for kind in kinds} == exported
        assert other.lookup(STOLEN) == registry.lookup(STOLEN)
    finally:
        other.close()


# -- URLs, files and concurrency --------------------------------------------------------

def test_default_url_is_a_sqlite_file_in_the_working_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_REGISTRY == "sqlite:///eir.db"
    monkeypatch.chdir(tmp_path)
    with Registry(DEFAULT_REGISTRY) as store:
        store.put_list(ListName.WHITE, [(WHITE, None)], "test")
    assert (tmp_path / "eir.db").is_file()
    with sqlite3.connect(tmp_path / "eir.db") as raw:
        assert raw.execute("SELECT imei, list FROM equipment").fetchall() == [(WHITE, "white")]
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_explicit_url_and_in_memory(tmp_path: Path) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'sub.db'}"
    with Registry(url) as store:
        assert store.put_list(ListName.GREY, [(GREY, "r")], "test") == Counts(1, 0, 0)
    with Registry(url, create=False) as store:
        assert store.lookup(GREY) == EquipmentFacts(GREY, ListName.GREY, False, "r", None, ())
    with Registry("sqlite://") as memory:
        memory.put_pairings([(PAIRED, IMSI, None)], "test")
        assert memory.lookup(PAIRED).pairings == ((IMSI, None),)  # type: ignore[union-attr]
        assert memory.history(PAIRED)[0].new == "paired"


def test_a_second_registry_on_the_same_file_sees_imports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Registry(url) as agent, Registry(url, snapshot_seconds=0) as fresh, Registry(url) as importer:
        assert agent.lookup(WHITE) is None and fresh.lookup(WHITE) is None
        importer.put_list(ListName.WHITE, [(WHITE, None)], "test")
        assert fresh.lookup(WHITE) is not None  # its own snapshot per lookup: at once
        wait_until(lambda: agent.lookup(WHITE), 1.0, "the shared snapshot renewed (after 0.01 s)")
        assert agent.lookup(WHITE) == EquipmentFacts(WHITE, ListName.WHITE, False, None, None, ())


def test_lookups_are_not_blocked_by_an_import_in_progress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    with Registry(url) as agent, Registry(url) as importer:
        importer.put_list(ListName.GREY, [(GREY, None)], "test")
        with importer.bulk() as bulk:
            bulk.add_entries([(GREY, "cleared"), (WHITE, None)])
            assert bulk.put_list(ListName.WHITE, "test") == Counts(1, 1, 0)
            started = time.monotonic()
            time.sleep(0.02)  # the test: past snapshot_seconds, the lookup reads anew while the import is open
            assert agent.lookup(GREY).list is ListName.GREY  # type: ignore[union-attr]  # the committed state
            assert agent.lookup(WHITE) is None
            assert time.monotonic() - started < 1  # no waiting on the writer's lock
        wait_until(lambda: agent.lookup(WHITE), 1.0, "the committed import seen by the next snapshot")
        assert agent.lookup(GREY).list is ListName.WHITE  # type: ignore[union-attr]
        assert agent.lookup(WHITE) is not None


def test_a_cancelled_bulk_write_leaves_nothing(registry: Registry) -> None:
    with registry.bulk() as bulk:
        bulk.add_entries([(WHITE, None)])
        bulk.put_list(ListName.WHITE, "test")
        bulk.cancel()
    assert registry.lookup(WHITE) is None and registry.history(WHITE) == []
