"""Issue 11: a registry is created only by `eir registry init` or `eir registry import`, and
carries its schema version; `eir check` exit codes never collide (64 usage, 69 registry,
4 invalid IMEI); every error is one line naming the problem, never a traceback; YAML
errors name the file. The commands run as the real `eir` in a subprocess."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from agent.commands_agent import check_status
from agent.config import ConfigError, load_config
from registry.decision import Decision, Status
from registry.imei import luhn_check_digit
from registry.profile import ProfileError, load_profile
from registry.schema import HEAD, RegistryMissing, SchemaVersionError
from registry.store import Registry
from simulator.agent_process import EIR, run_eir

KEY = "35209900176148"
IMEI = KEY + luhn_check_digit(KEY)
BAD_LUHN = KEY + str((int(luhn_check_digit(KEY)) + 1) % 10)
MISSING = "does not exist"


@pytest.fixture
def url(sqlite_url: str) -> str:
    """SQLite alone: these tests want a registry that is absent, unversioned or newer, which
    a file can be and registry_url's PostgreSQL database (emptied, its tables kept) cannot."""
    return sqlite_url


def eir(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_eir(url, *args, check=False, timeout=60)


def one_line(done: subprocess.CompletedProcess[str], prefix: str) -> str:
    """The single stderr line, which starts with ``prefix``: no traceback, no usage block."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), done.stderr
    return lines[0]


def schema_row(path: Path) -> list[tuple[str]]:
    """The registry's Alembic revision (registry/migrations)."""
    with closing(sqlite3.connect(path)) as raw:
        return raw.execute("SELECT version_num FROM alembic_version").fetchall()


# -- a missing registry is never created --------------------------------------------------

@pytest.mark.parametrize(("args", "program", "status"), [
    (["check", IMEI], "eir check:", 69),
    (["registry", "export", "white", "--out", "-"], "eir registry:", 2),
    (["registry", "export", "exception", "--operator", "436-01", "--out", "-"], "eir registry:", 2),
    (["registry", "show", IMEI], "eir registry:", 2),
    (["registry", "block", IMEI, "--reason", "police"], "eir registry:", 2),
    (["registry", "unblock", IMEI, "--reason", "returned"], "eir registry:", 2),
    (["notices", "export"], "eir notices:", 2),
])
def test_a_missing_registry_is_refused_and_not_created(tmp_path: Path, url: str, args: list[str], program: str,
                                                       status: int) -> None:
    done = eir(url, *args)
    assert done.returncode == status, done.stderr
    line = one_line(done, f"{program} cannot open registry {url}: ")
    assert MISSING in line and "eir registry init" in line
    assert list(tmp_path.iterdir()) == []  # no registry.db, no -wal, no -shm


def test_init_creates_the_registry_with_its_version_then_finds_it_current(tmp_path: Path, url: str) -> None:
    done = eir(url, "registry", "init")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"registry {url}: created at schema revision {HEAD}\n"
    assert schema_row(tmp_path / "registry.db") == [(HEAD,)]
    again = eir(url, "registry", "init")
    assert again.returncode == 0 and again.stdout == f"registry {url}: already at schema revision {HEAD}\n"
    assert eir(url, "check", IMEI).returncode == 2  # grey: the registry is there, empty


def test_import_creates_an_absent_registry_and_says_so_in_its_help(tmp_path: Path, url: str) -> None:
    csv = tmp_path / "white.csv"
    csv.write_text(f"imei\n{IMEI}\n")
    done = eir(url, "registry", "import", "white", str(csv))
    assert done.returncode == 0, done.stderr
    assert schema_row(tmp_path / "registry.db") == [(HEAD,)]
    assert eir(url, "check", IMEI).returncode == 0  # white
    helped = eir(url, "registry", "import", "--help")
    assert "does not exist yet" in helped.stdout and "is created first" in helped.stdout


def test_init_in_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    done = eir(f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}", "registry", "init")
    assert done.returncode == 2
    assert f"folder {tmp_path / 'no' / 'such'} does not exist" in one_line(done, "eir registry init: ")


def test_an_older_unversioned_registry_is_refused_until_init_upgrades_it(tmp_path: Path, url: str) -> None:
    with Registry(url):
        pass
    with closing(sqlite3.connect(tmp_path / "registry.db")) as raw:  # as an eir before schema versions made it
        raw.execute("DROP TABLE eir_schema")
        raw.execute("DROP TABLE alembic_version")
        raw.execute("DROP INDEX ix_history_imei")
    for args in (["check", IMEI], ["registry", "show", IMEI]):
        done = eir(url, *args)
        assert done.returncode == (69 if args[0] == "check" else 2)
        line = one_line(done, "eir ")
        assert "has no version (made by an older eir); upgrade it with `eir registry init`" in line
    csv = tmp_path / "white.csv"
    csv.write_text(f"imei\n{IMEI}\n")
    assert eir(url, "registry", "import", "white", str(csv)).returncode == 2  # import never upgrades
    upgraded = eir(url, "registry", "init")
    assert upgraded.returncode == 0 and upgraded.stdout == f"registry {url}: upgraded to schema revision {HEAD}\n"
    with closing(sqlite3.connect(tmp_path / "registry.db")) as raw:
        indexes = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_history_imei" in indexes
    assert schema_row(tmp_path / "registry.db") == [(HEAD,)]
    assert eir(url, "check", IMEI).returncode == 2


def test_a_registry_of_a_newer_eir_is_refused_and_left_alone(tmp_path: Path, url: str) -> None:
    with Registry(url):
        pass
    with closing(sqlite3.connect(tmp_path / "registry.db")) as raw, raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    checked = eir(url, "check", IMEI)
    assert checked.returncode == 69
    assert "revision 9999, made by a newer eir" in one_line(checked, "eir check: ")
    init = eir(url, "registry", "init")
    assert init.returncode == 2 and "made by a newer eir" in one_line(init, "eir registry init: ")
    assert schema_row(tmp_path / "registry.db") == [("9999",)]


def test_a_database_without_registry_tables_is_absent(tmp_path: Path, url: str) -> None:
    (tmp_path / "registry.db").write_bytes(b"")  # SQLite: an empty database
    done = eir(url, "check", IMEI)
    assert done.returncode == 69 and "holds no registry" in one_line(done, "eir check: ")
    csv = tmp_path / "white.csv"
    csv.write_text(f"imei\n{IMEI}\n")
    assert eir(url, "registry", "import", "white", str(csv)).returncode == 0


def test_library_registry_creates_by_default_and_verifies_without_create(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    with pytest.raises(RegistryMissing, match=MISSING):
        Registry(url, create=False)
    assert not (tmp_path / "lib.db").exists()
    with Registry(url) as created:
        assert created.schema == "created"
    with Registry(url) as again:
        assert again.schema == "current"
    with Registry(url, create=False, writable=True) as verified:
        assert verified.schema == "verified"
    with closing(sqlite3.connect(tmp_path / "lib.db")) as raw, raw:
        raw.execute("DELETE FROM alembic_version")
    with pytest.raises(SchemaVersionError, match="no version"):
        Registry(url, create=False)


# -- eir check: exit codes that never collide ----------------------------------------------

@pytest.fixture
def registry(url: str) -> str:
    with Registry(url):
        pass
    return url


@pytest.mark.parametrize(("args", "says"), [
    ([], "Missing argument 'IMEI'"),
    ([IMEI, "--bogus"], "No such option"),
    ([IMEI, "--at", "yesterday"], "'yesterday' is not a date"),
    ([IMEI, "--at", "2026-13-01"], "is not a date"),
    ([IMEI, "--profile", "xx"], "no profile 'xx'"),
    ([IMEI, "--imsi"], "requires an argument"),
])
def test_check_usage_errors_exit_64_in_one_line(registry: str, args: list[str], says: str) -> None:
    done = eir(registry, "check", *args)
    assert done.returncode == 64, done.stderr
    assert says in one_line(done, "eir check: ")


def test_check_profile_yaml_error_exits_64_naming_the_file(tmp_path: Path, registry: str) -> None:
    profile = tmp_path / "broken.yaml"
    profile.write_text("name: tj\nhome_plmns: [436-01\n")
    done = eir(registry, "check", IMEI, "--profile", str(profile))
    assert done.returncode == 64
    line = one_line(done, f"eir check: cannot read profile {profile}: line 3, column 1: ")
    assert "<unicode string>" not in line


@pytest.mark.parametrize("kind", ["no driver", "no folder", "missing", "corrupt", "directory"])
def test_check_registry_errors_exit_69_in_one_line(tmp_path: Path, kind: str) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a SQLite database, only garbage bytes " * 200)
    url, says = {
        "no driver": ("nosuchdb://x", "sqlalchemy.dialects:nosuchdb"),
        "no folder": (f"sqlite:///{tmp_path / 'no' / 'such' / 'x.db'}", MISSING),
        "missing": (f"sqlite:///{tmp_path / 'x.db'}", MISSING),
        "corrupt": (f"sqlite:///{corrupt}", "file is not a database"),
        "directory": (f"sqlite:///{tmp_path}", "is not a file"),
    }[kind]
    done = eir(url, "check", IMEI)
    assert done.returncode == 69, done.stderr
    assert says in one_line(done, f"eir check: cannot open registry {url}: ")


def test_other_commands_give_one_line_for_a_bad_url_or_a_corrupt_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"\x00garbage" * 1000)
    for url in ("nosuchdb://x", f"sqlite:///{corrupt}"):
        for args in (["registry", "export", "white", "--out", "-"], ["registry", "init"], ["notices", "export"]):
            done = eir(url, *args)
            assert done.returncode == 2
            one_line(done, "eir ")


@pytest.mark.parametrize(("imei", "profile", "status", "rule"), [
    (BAD_LUHN, "tj", "black", "invalid-imei"),  # tj answers a wrong check digit black on the wire
    (KEY[:-1] + "A", "tj", None, None),  # letters: never a valid IMEI
    ("4901542032375", "tj", None, None),  # 13 digits
])
def test_an_invalid_imei_exits_4_whatever_the_profile_answers(registry: str, imei: str, profile: str,
                                                              status: str | None, rule: str | None) -> None:
    import json

    done = eir(registry, "check", imei, "--profile", profile, "--json")
    assert done.returncode == 4, done.stdout + done.stderr
    decision = json.loads(done.stdout)
    if status is not None:
        assert (decision["status"], decision["rule"]) == (status, rule)


def test_check_status_maps_invalid_rules_and_statuses() -> None:
    assert check_status(Decision(Status.INVALID, "anything", "r")) == 4
    assert check_status(Decision(Status.BLACK, "invalid-imei", "r")) == 4
    assert check_status(Decision(Status.INVALID, "malformed-request", "letters in the IMSI")) == 4
    assert check_status(Decision(Status.BLACK, "malformed-request", "r")) == 4
    assert [check_status(Decision(status, "list", "r")) for status in
            (Status.WHITE, Status.BLACK, Status.GREY, Status.UNKNOWN)] == [0, 1, 2, 3]


def test_check_help_documents_the_exit_codes(registry: str) -> None:
    helped = subprocess.run([*EIR, "check", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0
    for line in ("0   white", "1   black", "2   grey", "3   unknown", "4   invalid", "64  usage", "69  registry"):
        assert line in helped.stdout


# -- YAML errors name the file ----------------------------------------------------------------

def test_yaml_errors_name_the_file_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("listen: [127.0.0.1:3868\n")
    with pytest.raises(ConfigError) as config_error:
        load_config(path)
    with pytest.raises(ProfileError) as profile_error:
        load_profile(path)
    for message in (str(config_error.value), str(profile_error.value)):
        assert str(path) in message and "line 2, column 1" in message and "line 1, column 9" in message
        assert "<unicode string>" not in message and "\n" not in message
    path.write_text("a: b: c\n")
    with pytest.raises(ConfigError, match=r"line 1, column 5: mapping values are not allowed here$"):
        load_config(path)
