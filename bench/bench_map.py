"""MAP benchmark: one `eir serve` process with 1,000,000 IMEIs in SQLite answering MAP
CheckIMEI over M3UA/TCP, loaded by `eir sim load --protocol map` (1 association, 64
dialogues in flight, equipmentMngtContext-v3 unless told), against the same load over S13
on the same agent for comparison. The registry and observations are built as in
bench_agent.py (the steady state: the pairs seen before, a warm-up pass first). A v3
CheckIMEI carries no IMSI, so the registry has also seen each IMEI without a SIM (an
observation with an empty IMSI), as a network whose MSCs ask this EIR has; the v2 run
adds the vendor variant's IMSI, which reaches the decision as in S13.

    python bench/bench_map.py [--rows 1000000] [--duration 20] [--inflight 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_agent import PREFIX, build_registry, line, load, rss_mib, seed_observations

from simulator.agent_process import EIR, AgentProcess, run_eir


def seed_without_imsi(folder: Path, url: str, sample: list[str]) -> None:
    """Each IMEI seen before without a SIM, as MAP v3 asks: 10 days ago and today."""
    now = datetime.now(UTC)
    first, last = (now - timedelta(days=10)).date().isoformat(), now.replace(microsecond=0, tzinfo=None)
    path = folder / "observations-no-imsi.csv"
    path.write_text("date,imei,imsi,msisdn\n" + "".join(f"{first},{key},,\n{last.isoformat()},{key},,\n"
                                                         for key in sample))
    began = time.perf_counter()
    run_eir(url, "registry", "import", "observations", str(path))
    print(f"imported {len(sample):>9,} observations without IMSI in {time.perf_counter() - began:5.1f} s")


def load_map(port: int, imeis: Path, duration: float, inflight: int, version: int, vendor_imsi: bool) -> dict[str, Any]:
    command = [*EIR, "sim", "load", "--protocol", "map", "--peer", f"127.0.0.1:{port}", "--connections", "1",
               "--inflight", str(inflight), "--duration", str(duration), "--imeis", str(imeis),
               "--imsi-prefix", PREFIX, "--ac-version", str(version), "--json"]
    done = subprocess.run(command + (["--vendor-imsi"] if vendor_imsi else []), capture_output=True, text=True,
                          check=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--sample", type=int, default=100_000, help="distinct IMEIs the load asks for")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of warm-up (about one pass over the IMEIs)")
    parser.add_argument("--fresh", type=int, default=100_000, help="IMEIs never seen, for the first-sight run")
    parser.add_argument("--fresh-duration", type=float, default=4.0, help="seconds of the first-sight run")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {platform.platform()}")
    with tempfile.TemporaryDirectory(prefix="eir-bench-map-") as name:
        folder = Path(name)
        url, keys = build_registry(folder, args.rows)
        rng = random.Random(5)
        sample = rng.sample(keys, min(args.sample, len(keys)))
        sample += [f"99999999{n:06d}" for n in range(len(sample) // 100)]  # 1% unknown to the registry
        rng.shuffle(sample)
        imeis = folder / "load-imeis.txt"
        imeis.write_text("\n".join(sample) + "\n")
        seed_observations(folder, url, sample)
        seed_without_imsi(folder, url, sample)
        fresh = folder / "fresh-imeis.txt"
        fresh.write_text("".join(f"98888888{n:06d}\n" for n in range(args.fresh)))

        agent = AgentProcess(folder, url, m3ua=True)
        try:
            port = agent.m3ua_address[1]
            load_map(port, imeis, args.warmup, args.inflight, 3, False)  # page cache, memo
            v3 = load_map(port, imeis, args.duration, args.inflight, 3, False)
            v2 = load_map(port, imeis, args.duration, args.inflight, 2, True)
            s13 = load(agent.port, imeis, args.duration, args.inflight)
            first = load_map(port, fresh, args.fresh_duration, args.inflight, 3, False)
            memory = rss_mib(agent.process.pid)
        finally:
            code = agent.stop()
        lines = sum(1 for _ in agent.answer_log.open())
    print(f"load: 1 association, {args.inflight} in flight, {args.duration:.0f} s, {len(sample):,} distinct IMEIs")
    print(line("MAP v3 CheckIMEI", v3))
    print(f"{'':28} by status {v3['by_status']}, by result {v3['by_result']}")
    print(line("MAP v2 + vendor IMSI", v2))
    print(f"{'':28} by status {v2['by_status']}, by result {v2['by_result']}")
    print(line("S13 ECR, same agent", s13))
    print(line("  MAP v3, new handsets", first))
    print(f"{'':28} {args.fresh:,} IMEIs never seen (each answer waits for its first sight's group commit), "
          f"{args.fresh_duration:.0f} s, by status {first['by_status']}")
    print(f"agent resident memory after the load: {memory:.0f} MiB; exit {code} on SIGTERM; "
          f"answer log lines {lines:,}")


if __name__ == "__main__":
    main()
