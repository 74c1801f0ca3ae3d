"""Issue 16: every command works on PostgreSQL as on SQLite, given `--registry postgresql://...`
with no driver named (psycopg 3 is meant).

One script of real `python -m eir` processes runs on an empty SQLite file and on an empty
PostgreSQL database at the same time: init, an import of each kind, their exports (equal to
what was imported), an operator's notification and exception lists, check, show, block and
unblock, a short `eir serve` answering one ECR, the notice it queued, init again. The two
transcripts (exit status and output of every command, today's times replaced by their
distance from now) must be identical.

Also: `postgres://` is PostgreSQL too, and without psycopg the error is one line that says
what to install.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from registry.connections import parse_url
from registry.imei import luhn_check_digit
from registry.schema import HEAD, sqlite_file
from simulator.agent_process import EIR, AgentProcess, run_eir
from simulator.mme import send_ecr
from tests.postgres import empty


def imei(key: str) -> str:
    return key + luhn_check_digit(key)


WHITE, GREY, BLACK, PAIRED, STOLEN, SEEN = (imei(f"3520990017614{n}") for n in range(6))
FRESH = imei("35209900999999")  # first seen by the agent, over S13
LOCAL_IMSI, OTHER_IMSI = "436011234567890", "436015555555555"  # Tcell (436-01), the tj profile's
AT = "2024-11-02"
FILES = {
    "white": f"imei,reason\n{WHITE},import\n",
    "grey": f"imei,reason\n{GREY},unknown model\n",
    "black": f"imei,reason\n{BLACK},cloned\n",
    "paired": f"imei,imsi,msisdn\n{PAIRED},{LOCAL_IMSI},992900000001\n",
    "stolen": f"imei,reason\n{STOLEN},police 12/2024\n",
    "tac": "tac,brand,model,device_type\n35209900,Acme,Phone 1,Smartphone\n",
    "observations": f"date,imei,imsi,msisdn\n2024-11-01T00:00:00Z,{GREY},{OTHER_IMSI},992900000005\n"
                    f"2024-11-01T00:00:00Z,{SEEN},{LOCAL_IMSI},992900000001\n",
    "subscribers": f"imsi,msisdn,date\n{OTHER_IMSI},992900000005,2024-10-01T00:00:00Z\n",
}
STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: UTC|Z|[+-]\d\d:\d\d)?")
SECONDS = re.compile(r"; \d+\.\d+ s$", re.MULTILINE)


def bare(url: str) -> str:
    """A PostgreSQL URL as operators write it: no driver named."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def normal(text: str, url: str) -> str:
    """Output comparable across databases and runs: the URL, import timings and the times of
    this run (recent or in the next weeks: sights, deadlines) made neutral."""
    now = datetime.now(UTC)

    def moment(match: re.Match[str]) -> str:
        found = datetime.fromisoformat(match.group(0).replace(" UTC", "+00:00").replace("Z", "+00:00"))
        found = found if found.tzinfo else found.replace(tzinfo=UTC)
        if found < now - timedelta(days=2):
            return match.group(0)  # a date of the fixtures
        return f"now{round((found - now) / timedelta(days=1)):+d}d"

    return STAMP.sub(moment, SECONDS.sub("; S s", text.replace(url, "URL")))


class Script:
    """The commands, run on one registry URL; ``transcript`` holds what each said."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        folder.mkdir()
        self.transcript: list[tuple[str, int, str]] = []

    def eir(self, *args: str, status: int = 0) -> str:
        done = run_eir(self.url, *args, check=False, timeout=60)
        assert done.returncode == status, (self.url, args, done.stdout, done.stderr)
        said = " ".join(args).replace(str(self.folder), "FOLDER")
        self.transcript.append((said, done.returncode, normal(done.stdout, self.url)))
        return done.stdout

    def run(self) -> list[tuple[str, int, str]]:
        said = self.eir("registry", "init")
        assert said.endswith(f": created at schema revision {HEAD}\n")
        for kind, content in FILES.items():
            path = self.folder / f"{kind}.csv"
            path.write_text(content)
            assert ", 0 bad" in self.eir("registry", "import", kind, str(path))
        self.exports()
        answer = json.loads(self.eir("check", GREY, "--imsi", OTHER_IMSI, "--at", AT, "--json", status=2))
        assert answer["rule"] == "grey-list" and answer["deadline"].startswith("2024-12-01")
        assert "list:     grey" in self.eir("registry", "show", GREY, "--at", AT)
        self.eir("registry", "block", WHITE, "--reason", "police 1/2025")
        self.eir("check", WHITE, status=1)
        self.eir("registry", "unblock", WHITE, "--reason", "returned")
        self.eir("check", WHITE, status=0)
        self.serve()
        notices = self.eir("notices", "export", "--out", "-").splitlines()
        assert notices[0] == "imei,imsi,msisdn,event,deadline,reason,created_at"
        assert any(line.startswith(f"{FRESH},{LOCAL_IMSI},") for line in notices[1:]), notices
        assert self.eir("registry", "init").endswith(f": already at schema revision {HEAD}\n")
        return self.transcript

    def exports(self) -> None:
        """Each kind exported as it was imported (the exports run at once: they only read)."""
        runs = {kind: subprocess.Popen([*EIR, "--registry", self.url, "registry", "export", kind, "--out", "-"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for kind in FILES}
        for kind, run in runs.items():
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0, (self.url, kind, err)
            assert out == FILES[kind], (self.url, kind)
        notification = self.eir("registry", "export", "notification", "--operator", "436-01", "--at", AT,
                                "--out", "-")
        rows = [line.split(",")[:4] for line in notification.splitlines()[1:]]
        assert rows == [[GREY, OTHER_IMSI, "992900000005", "2024-12-01T00:00:00Z"],
                        [SEEN, LOCAL_IMSI, "992900000001", "2024-12-01T00:00:00Z"]], notification
        assert self.eir("registry", "export", "exception", "--operator", "436-01", "--out", "-") == \
            f"imei,imsi\n{PAIRED},{LOCAL_IMSI}\n"

    def serve(self) -> None:
        """A short `eir serve`: one ECR for an IMEI it has never seen, answered grey."""
        agent = AgentProcess(self.folder, self.url)
        try:
            outcome = asyncio.run(send_ecr(*agent.address, FRESH, imsi=LOCAL_IMSI))
        finally:
            status = agent.stop()
        assert outcome.equipment_status == "GREYLISTED" and status == 0, agent.log()
        self.transcript.append(("serve", status, str(outcome.equipment_status)))


def test_every_command_says_the_same_on_sqlite_and_postgresql(tmp_path: Path, postgres_url: str) -> None:
    empty(postgres_url)
    scripts = [Script(f"sqlite:///{tmp_path / 'sqlite' / 'registry.db'}", tmp_path / "sqlite"),
               Script(bare(postgres_url), tmp_path / "postgresql")]
    with ThreadPoolExecutor(2) as pool:
        on_sqlite, on_postgresql = pool.map(Script.run, scripts)
    assert on_postgresql == on_sqlite


def test_postgres_scheme_is_postgresql(postgres_url: str) -> None:
    empty(postgres_url)
    url = postgres_url.replace("postgresql+psycopg://", "postgres://", 1)
    done = run_eir(url, "registry", "init", check=False)
    assert done.returncode == 0 and done.stdout == f"registry {url}: created at schema revision {HEAD}\n", done.stderr
    assert run_eir(postgres_url, "check", WHITE, check=False).returncode == 2  # the same database: there, empty


def test_without_psycopg_the_error_says_what_to_install(tmp_path: Path) -> None:
    """psycopg made unimportable for one process (a package of that name that fails)."""
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
    root = Path(__file__).resolve().parents[1]
    url = "postgresql://eir@127.0.0.1:1/eir"
    done = subprocess.run([*EIR, "--registry", url, "check", WHITE], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{shadow.parent}:{root}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 69
    assert done.stderr == (f"eir check: cannot open registry {url}: the postgresql driver psycopg is not "
                           "installed; pip install 'eir[postgres]'\n")


def test_a_url_names_its_driver_or_gets_psycopg() -> None:
    assert parse_url("postgresql://eir@db.example/eir").drivername == "postgresql+psycopg"
    assert parse_url("postgres://eir:secret@db.example:5433/eir").render_as_string(hide_password=False) == \
        "postgresql+psycopg://eir:secret@db.example:5433/eir"
    assert parse_url("postgresql+psycopg://eir@db.example/eir").drivername == "postgresql+psycopg"
    assert parse_url("postgresql+psycopg2://eir@db.example/eir").drivername == "postgresql+psycopg2"
    assert parse_url("sqlite:///eir.db").drivername == "sqlite"
    assert sqlite_file(make_url("postgres://eir@db.example/eir")) is None  # no dialect lookup for a file's path
