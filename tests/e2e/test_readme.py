"""The README tells the truth: its walk-through ("Running the agent") runs as written from a
folder that is not the repository, and it names every Debian package scripts/test installs."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from simulator.agent_process import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MARK = "<!-- walkthrough"
S13, M3UA = "127.0.0.1:3868", "127.0.0.1:2905"  # the ports the walk-through states


def walkthrough(readme: str) -> str:
    """The fenced shell block right after the walk-through mark, as written."""
    assert readme.count(MARK) == 1, f"README.md must hold one {MARK} ... --> mark"
    after = readme[readme.index(MARK):]
    found = re.match(r"<!-- walkthrough[^\n]*-->\n```sh\n(.*?)\n```\n", after, re.DOTALL)
    assert found, "the walk-through mark must be followed by a ```sh block"
    return found.group(1) + "\n"


def on_other_ports(block: str) -> tuple[str, str, str]:
    """The block with the stated S13 and M3UA ports moved to free ones, nothing else changed."""
    s13 = free_port()
    m3ua = free_port()
    while m3ua == s13:
        m3ua = free_port()
    moved = block.replace(S13, f"127.0.0.1:{s13}").replace(M3UA, f"127.0.0.1:{m3ua}")
    assert moved.replace(f"127.0.0.1:{s13}", S13).replace(f"127.0.0.1:{m3ua}", M3UA) == block
    return moved, f"127.0.0.1:{s13}", f"127.0.0.1:{m3ua}"


def test_the_walkthrough_runs_as_written_from_any_folder(tmp_path: Path) -> None:
    readme = README.read_text(encoding="utf-8")
    block = walkthrough(readme)
    for address in (S13, M3UA):
        assert address in block and address in readme[:readme.index(MARK)], f"{address} must be stated and used"
    assert "eir registry init" in block and "kill %1" in block
    script, s13, m3ua = on_other_ports(block)
    assert ":3868" not in script and ":2905" not in script

    bin_dir = tmp_path / "bin"  # `eir` of this working tree, whatever else is on PATH
    bin_dir.mkdir()
    wrapper = bin_dir / "eir"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m eir "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "work"  # the folder the user pastes in: not the repository
    work.mkdir()
    scratch = tmp_path / "scratch"  # where the block's mktemp -d makes its folder
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("EIR_REGISTRY", "PYTHONPATH")}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(ROOT),
            "TMPDIR": str(scratch), "PYTHONUNBUFFERED": "1"}

    # Output to files, not pipes: the shell's end is the end (an agent left running by a
    # failed line would hold a pipe open); then its process group is killed, agent and all.
    with (tmp_path / "stdout").open("w") as stdout, (tmp_path / "stderr").open("w") as stderr:
        shell = subprocess.Popen(["bash", "-e", "-c", script], cwd=work, env=env, stdout=stdout, stderr=stderr,
                                 start_new_session=True)
        try:
            shell.wait(timeout=180)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    out, err = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    folders = [path for path in scratch.iterdir() if path.is_dir()]
    log = (folders[0] / "agent.log").read_text() if folders and (folders[0] / "agent.log").exists() else ""
    assert shell.returncode == 0, f"exit {shell.returncode}\n--- stdout\n{out}\n--- stderr\n{err}\n--- agent.log\n{log}"

    assert [path.name for path in work.iterdir()] == [], "the walk-through writes only in its scratch folder"
    assert len(folders) == 1 and (folders[0] / "eir.db").exists()
    assert f"eir: listening on {s13}" in log and f"M3UA listening on {m3ua}" in log

    answers = out.split(f"ECA from eir.localdomain ({s13})")
    assert len(answers) == 3, out
    assert "Equipment-Status: WHITELISTED" in answers[1] and "Equipment-Status: GREYLISTED" in answers[2]
    assert f"({m3ua})" in out and "EquipmentStatus: WHITE_LISTED" in out
    lines = out.splitlines()
    assert "35209900176148: WHITE (white-list): on the white list (customs cleared)" in lines
    grey = next(line for line in lines if line.startswith("35209900999999: "))
    assert grey.startswith("35209900999999: GREY (grace): not registered; 30-day window from "), grey
    assert "exit status 2" in lines

    show = lines[lines.index("IMEI 35209900176148 (15 digits: 352099001761481)"):]
    assert "  list:     white (customs cleared)" in show
    assert show[show.index("sightings (first seen first):") + 1].startswith("  IMSI 436011234567890  first ")
    assert show[show.index("sightings (first seen first):") + 1].endswith("  MSISDN -  via s13")
    assert ("decision now (profile tj): WHITE (white-list): on the white list (customs cleared); "
            "asked with IMSI 436011234567890 (the last seen)") in show

    assert f"peer         {s13}: 1 connection(s) x 64 in flight" in out
    assert re.search(r"^by status    WHITELISTED \d+$", out, re.MULTILINE), out
    assert re.search(r"^errors       none$", out, re.MULTILINE), out
    assert "stopping: DPR to" in log


def test_the_readme_names_every_debian_package_scripts_test_installs() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    packages = [name for group in re.findall(r"debian_packages\+=\(([^)]*)\)", script) for name in group.split()]
    assert len(packages) >= 6, packages
    quick_start = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in packages if f"`{name}`" not in quick_start]
    assert not missing, f"README.md's Quick start does not name {missing}, which scripts/test installs"
