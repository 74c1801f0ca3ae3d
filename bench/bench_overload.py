"""Overload benchmark: what the agent answers when asked more than it can answer in time.

One `eir serve` (a registry of --rows IMEIs in SQLite, the load's pairs seen before, as
in bench_agent.py) is loaded by `eir sim load` over S13 with more requests in flight than
its bounds (``limits.in_progress_per_peer`` 256, ``limits.in_progress`` 1024 by default):
past them it answers 3004 DIAMETER_TOO_BUSY at once instead of queueing. Each load runs
twice: with the default bounds, and with bounds too high to matter (the queueing the
bounds replace). Prints, per run, answers/s, answers by result code, latency percentiles
of every answer and of the 2001 answers alone, and the client's timeouts.

    python bench/bench_overload.py [--rows 200000] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_agent import build_registry, seed_observations, warm_up

from simulator.agent_process import EIR, AgentProcess

PREFIX = "43601"
LOADS = ((1, 64), (8, 512), (16, 4096))  # (connections, in flight on each)
UNBOUNDED = "limits: {in_progress_per_peer: 1000000, in_progress: 1000000}\n"


def load(port: int, imeis: Path, duration: float, connections: int, inflight: int) -> dict[str, Any]:
    done = subprocess.run([*EIR, "sim", "load", "--peer", f"127.0.0.1:{port}", "--connections", str(connections),
                           "--inflight", str(inflight), "--duration", str(duration), "--imeis", str(imeis),
                           "--imsi-prefix", PREFIX, "--json"], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def report(name: str, result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    codes = result["by_result_code"]
    return (f"{name:34} {result['answers_per_s']:>8,.0f} answers/s  p50 {latency['p50']:>7} ms  "
            f"p99 {latency['p99']:>7} ms  max {latency['max']:>7} ms  by result code {codes}  "
            f"errors {result['error_total']} {result.get('errors', {})}")


def run(folder: Path, url: str, imeis: Path, sample: int, args: argparse.Namespace, config: Path | None) -> None:
    agent = AgentProcess(folder, url, "--answer-log", "off", config=config)
    try:
        warm_up(lambda seconds: load(agent.port, imeis, seconds, 1, 64), sample, 4.0)
        for connections, inflight in LOADS:
            result = load(agent.port, imeis, args.duration, connections, inflight)
            bounds = "bounds too high to matter" if config else "default bounds"
            print(report(f"{connections} x {inflight} in flight, {bounds}", result))
    finally:
        code = agent.stop()
    summary = [line for line in agent.log().splitlines() if "answers refused as unrecorded" in line]
    print(f"  exit {code}; {summary[-1].split('; ', 2)[-1] if summary else 'no summary line'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=50_000)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.platform()}")
    with tempfile.TemporaryDirectory(prefix="eir-bench-") as name:
        folder = Path(name)
        url, keys = build_registry(folder, args.rows)
        sample = random.Random(5).sample(keys, min(args.sample, len(keys)))
        imeis = folder / "load-imeis.txt"
        imeis.write_text("\n".join(sample) + "\n")
        seed_observations(folder, url, sample)
        run(folder, url, imeis, len(sample), args, None)
        unbounded = folder / "unbounded.yaml"
        unbounded.write_text(UNBOUNDED)
        run(folder, url, imeis, len(sample), args, unbounded)


if __name__ == "__main__":
    main()
