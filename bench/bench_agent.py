"""Agent benchmark: one `eir serve` process with 1,000,000 IMEIs in SQLite, loaded by
`eir sim load` (1 connection, 64 in flight), against the same load on a fixed-answer
asyncio server. With ``--workers 1,2`` (and ``--connections 8``: a connection stays with
the worker that accepted it, so one connection loads one worker) the agent runs once per
count, `eir serve --workers N`, on the same registry, and a line each compares them. The
agent runs its default profile (tj), so every answer goes through the enforcement policy
and is recorded as an observation. Prints answers/s, latency
percentiles, the ratio, and the agent's memory.

The registry has seen the loaded IMEI-IMSI pairs before (observations imported: first
seen 10 days back, so the 1% of IMEIs in no list are inside their grace window, and last
seen earlier today), as a live network's registry has; the agent warms up with one pass
over them, as a running agent has seen its network's handsets: that is the steady state.
A second run asks for IMEIs never seen, each answer waiting for its first sight to be
committed (group commit, fsync): the figure for a flood of new handsets.

``--backend postgresql`` puts the registry in PostgreSQL instead: a throwaway cluster of
its own (tests/postgres.py: initdb, fsync on) or ``--postgres URL`` (an empty database).
The memory line splits the agent's resident memory into anonymous memory (its heap: what
it costs) and file-backed pages (the mapped SQLite file and the libraries, shared with the
page cache).

    python bench/bench_agent.py [--rows 1000000] [--duration 20] [--inflight 64]
        [--workers 1,2] [--connections 8] [--load-processes 1]
        [--backend sqlite|postgresql] [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from registry.imei import luhn_check_digit
from simulator.agent_process import EIR, AgentProcess, free_port
from simulator.load_wire import imsi_at

PREFIX = "43601"  # the load's --imsi-prefix: a Tajik operator's SIMs, local under the agent's tj profile

LISTS = (("white", 0.90), ("grey", 0.05), ("black", 0.05))


def build_registry(folder: Path, rows: int, seed: int = 11, url: str | None = None) -> tuple[str, list[str]]:
    """Import ``rows`` IMEIs split over the lists with `eir registry import` into ``url`` (an
    empty database; default a SQLite file in ``folder``); return the URL and keys."""
    rng = random.Random(seed)
    keys = list({f"{rng.randrange(10_000_000, 99_999_999)}{rng.randrange(1_000_000):06d}"
                 for _ in range(int(rows * 1.05))})[:rows]
    url = url or f"sqlite:///{folder / 'registry.db'}"
    start = 0
    for name, share in LISTS:
        part = keys[start:start + int(rows * share)] if name != LISTS[-1][0] else keys[start:]
        start += len(part)
        path = folder / f"{name}.csv"
        path.write_text("imei,reason\n" + "".join(f"{k}{luhn_check_digit(k)},bench\n" for k in part))
        began = time.perf_counter()
        subprocess.run([*EIR, "--registry", url, "registry", "import", name, str(path)], check=True,
                       capture_output=True, text=True)
        print(f"imported {len(part):>9,} {name:5} IMEIs in {time.perf_counter() - began:5.1f} s")
    return url, keys


def seed_observations(folder: Path, url: str, sample: list[str], with_sim: bool = True) -> None:
    """The pairs the load will ask for (`eir sim load` gives the IMEI at position i the IMSI
    imsi_at(prefix, i)), first seen 10 days ago and last seen earlier today; ``with_sim``
    False: each IMEI seen without a SIM instead, as a MAP v3 CheckIMEI (no IMSI) asks."""
    now = datetime.now(UTC)
    first, last = (now - timedelta(days=10)).date().isoformat(), now.replace(microsecond=0, tzinfo=None).isoformat()
    rows = []
    for index, key in enumerate(sample):
        imsi = imsi_at(PREFIX, index) if with_sim else ""
        rows.append(f"{first},{key},{imsi},\n{last},{key},{imsi},\n")
    path = folder / ("observations.csv" if with_sim else "observations-no-imsi.csv")
    path.write_text("date,imei,imsi,msisdn\n" + "".join(rows))
    began = time.perf_counter()
    subprocess.run([*EIR, "--registry", url, "registry", "import", "observations", str(path)], check=True,
                   capture_output=True, text=True)
    what = "observations" if with_sim else "observations without IMSI"
    print(f"imported {len(sample):>9,} {what} in {time.perf_counter() - began:5.1f} s")


def load(port: int, imeis: Path, duration: float, inflight: int, connections: int = 1,
         processes: int = 1) -> dict[str, Any]:
    """`eir sim load`: ``inflight`` requests in flight on each of ``connections``, shared by
    ``processes`` load processes."""
    done = subprocess.run([*EIR, "sim", "load", "--peer", f"127.0.0.1:{port}", "--connections", str(connections),
                           "--inflight", str(inflight), "--duration", str(duration), "--imeis", str(imeis),
                           "--imsi-prefix", PREFIX, "--processes", str(processes), "--json"],
                          capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def warm_up(run: Callable[[float], dict[str, Any]], count: int, seconds: float) -> None:
    """At least one whole pass over the ``count`` IMEIs of a load (each load starts at the
    first): every pair's first sight and every notice it makes due are behind us, as in
    a network whose devices were seen before; what a device's first query costs is the
    first-sight row's figure."""
    for _ in range(5):
        answers = int(run(seconds)["answers"])
        if answers >= count:
            return
        seconds *= 1.5 * count / max(answers, 1)
    raise RuntimeError(f"the warm-up did not cover the {count:,} IMEIs")


def family(pid: int) -> list[int]:
    """``pid`` and its live children (the workers of `eir serve --workers`)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process (and its live children: workers) has used, every
    thread, the commit thread too."""
    total = 0
    for member in family(pid):
        fields = _stat(member)
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def with_cpu(pid: int, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s result with the agent's CPU time per answer (``agent_cpu_us``): a figure
    that other work on a shared machine moves much less than answers a second do."""
    before = cpu_seconds(pid)
    result = run()
    result["agent_cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / max(int(result["answers"]), 1)
    return result


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of the process and its live children (workers), summed: ``field`` of
    /proc/PID/status (VmRSS all of it, RssAnon its heap, RssFile its mapped files)."""
    total = 0.0
    for member in family(pid):
        match = re.search(rf"{field}:\s+(\d+) kB", Path(f"/proc/{member}/status").read_text())
        total += int(match.group(1)) / 1024 if match else float("nan")
    return total


def memory_text(pid: int) -> str:
    """The agent's resident memory, with the anonymous part (its heap) and the file-backed part."""
    return (f"{rss_mib(pid):.0f} MiB resident: {rss_mib(pid, 'RssAnon'):.0f} MiB anonymous, "
            f"{rss_mib(pid, 'RssFile'):.0f} MiB file-backed")


def fixed_server(port: int) -> subprocess.Popen[str]:
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fixed_answer_server.py")),
                               "--port", str(port)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    if "listening" not in server.stdout.readline():
        server.kill()
        sys.exit("fixed_answer_server.py did not start")
    return server


def line(name: str, result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    return (f"{name:28} {result['answers_per_s']:>10,.0f} answers/s   p50 {latency['p50']} ms   "
            f"p90 {latency['p90']} ms   p99 {latency['p99']} ms   max {latency['max']} ms   "
            f"errors {result['error_total']}"
            + (f"   agent CPU {result['agent_cpu_us']:.1f} µs/answer" if "agent_cpu_us" in result else ""))


def parse_arguments(doc: str) -> argparse.Namespace:
    """The options every agent benchmark takes; prints the machine."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--sample", type=int, default=100_000, help="distinct IMEIs the load asks for")
    parser.add_argument("--warmup", type=float, default=8.0,
                        help="seconds of warm-up, lengthened until it makes one whole pass over the IMEIs")
    parser.add_argument("--fresh", type=int, default=100_000, help="IMEIs never seen, for the first-sight run")
    parser.add_argument("--fresh-duration", type=float, default=4.0, help="seconds of the first-sight run")
    parser.add_argument("--workers", type=worker_counts, default=[1], metavar="N[,N...]",
                        help="eir serve --workers N; several counts: one run each on the same registry")
    parser.add_argument("--connections", type=int, default=1,
                        help="the load's connections (each stays with the worker that accepted it)")
    parser.add_argument("--load-processes", type=int, default=1, help="eir sim load --processes")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the registry's database (postgresql: a throwaway cluster unless --postgres)")
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database for --backend postgresql")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.platform()}")
    return args


def prepare(folder: Path, args: argparse.Namespace, url: str | None = None) -> tuple[str, list[str], Path, Path]:
    """The registry (``args.rows`` IMEIs), the sample the load asks for (1% unknown to the
    registry) with its pairs seen before, and the files of the steady and first-sight loads:
    (URL, sample, its IMEI file, the never-seen IMEI file)."""
    url, keys = build_registry(folder, args.rows, url=url)
    rng = random.Random(5)
    sample = rng.sample(keys, min(args.sample, len(keys)))
    sample += [f"99999999{n:06d}" for n in range(len(sample) // 100)]  # 1% unknown to the registry
    rng.shuffle(sample)
    imeis = folder / "load-imeis.txt"
    imeis.write_text("\n".join(sample) + "\n")
    seed_observations(folder, url, sample)
    fresh = folder / "fresh-imeis.txt"
    fresh.write_text("".join(f"98888888{n:06d}\n" for n in range(args.fresh)))
    return url, sample, imeis, fresh


def worker_counts(text: str) -> list[int]:
    """``--workers``: one count or several, comma-separated (1,2)."""
    try:
        counts = [int(word) for word in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not N or N,N,...") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts are at least 1")
    return counts


def fresh_file(folder: Path, run: int, count: int) -> Path:
    """``count`` IMEIs never seen, other ones for each run on the same registry."""
    path = folder / f"fresh-imeis-{run}.txt"
    path.write_text("".join(f"988888{88 - run:02d}{n:06d}\n" for n in range(count)))
    return path


def run_agent(folder: Path, url: str, args: argparse.Namespace, workers: int, imeis: Path, fresh: Path,
              count: int) -> dict[str, Any]:
    """`eir serve --workers N` on the registry: warmed up, loaded, then the first-sight run."""
    def run(path: Path, seconds: float) -> dict[str, Any]:
        return load(agent.port, path, seconds, args.inflight, args.connections, args.load_processes)

    agent = AgentProcess(folder, url, "--workers", str(workers))
    try:
        warm_up(lambda seconds: run(imeis, seconds), count, args.warmup)
        pid = agent.process.pid
        ours = with_cpu(pid, lambda: run(imeis, args.duration))
        memory = memory_text(pid)
        first = with_cpu(pid, lambda: run(fresh, args.fresh_duration))
    finally:
        code = agent.stop()
    logs = [agent.answer_log] if workers == 1 else [
        agent.answer_log.with_name(f"{agent.answer_log.stem}.w{k}{agent.answer_log.suffix}")
        for k in range(1, workers + 1)]
    lines = sum(sum(1 for _ in path.open()) for path in logs if path.exists())
    for path in logs:  # the next run starts its own
        path.unlink(missing_ok=True)
    return {"workers": workers, "ours": ours, "first": first, "memory": memory, "code": code, "lines": lines}


def registry_database(args: argparse.Namespace, stack: contextlib.ExitStack) -> str | None:
    """The PostgreSQL URL for ``--backend postgresql`` (a throwaway cluster stopped with the
    stack, unless ``--postgres``); None for SQLite."""
    if args.backend == "sqlite":
        return None
    if args.postgres:
        return str(args.postgres)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' throwaway PostgreSQL 15
    from tests.postgres import Cluster  # initdb, fsync on

    cluster = Cluster()
    stack.callback(cluster.stop)
    return cluster.start()


def main() -> None:
    args = parse_arguments(__doc__)
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as name, contextlib.ExitStack() as stack:
        folder = Path(name)
        database = registry_database(args, stack)
        url, sample, imeis, _ = prepare(folder, args, database)
        runs = [run_agent(folder, url, args, workers, imeis, fresh_file(folder, number, args.fresh), len(sample))
                for number, workers in enumerate(args.workers)]
        port = free_port()
        server = fixed_server(port)
        try:
            load(port, imeis, 2.0, args.inflight, args.connections, args.load_processes)
            fixed = load(port, imeis, args.duration, args.inflight, args.connections, args.load_processes)
        finally:
            server.terminate()
            server.wait(10)
    print(f"load: {args.connections} connection(s) from {args.load_processes} load process(es), {args.inflight} "
          f"in flight on each, {args.duration:.0f} s, {len(sample):,} distinct IMEIs; {os.cpu_count()} CPU(s)")
    for run in runs:
        ours, first = run["ours"], run["first"]
        count = run["workers"]
        backend = "SQLite" if database is None else "PostgreSQL"
        name = f"eir serve ({args.rows / 1e6:g}M IMEIs, {backend})" + (f", {count} worker{'s' if count > 1 else ''}"
                                                 if len(runs) > 1 or count > 1 else "")
        print(line(name, ours))
        print(f"{'':28} by status {ours['by_status']}, by result code {ours['by_result_code']}")
        print(line("  new handsets: first sights", first))
        print(f"{'':28} {args.fresh:,} IMEIs never seen, {args.fresh_duration:.0f} s, by status {first['by_status']}")
        print(f"{'':28} agent memory after the load (every worker): {run['memory']}; exit "
              f"{run['code']} on SIGTERM; answer log lines {run['lines']:,}")
    print(line("fixed-answer asyncio server", fixed))
    for run in runs:
        print(f"ratio, {run['workers']} worker(s): {run['ours']['answers_per_s'] / fixed['answers_per_s']:.0%} of "
              "the fixed-answer server")
    if len(runs) > 1:
        base = runs[0]["ours"]["answers_per_s"]
        print("answers/s against the first count: " + ", ".join(
            f"{run['workers']} worker(s) {run['ours']['answers_per_s'] / base:.2f}x" for run in runs))


if __name__ == "__main__":
    main()
