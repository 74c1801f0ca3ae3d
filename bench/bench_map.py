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

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_agent import PREFIX, line, load, parse_arguments, prepare, rss_mib, seed_observations, warm_up, with_cpu

from simulator.agent_process import EIR, AgentProcess


def load_map(port: int, imeis: Path, duration: float, inflight: int, version: int, vendor_imsi: bool) -> dict[str, Any]:
    command = [*EIR, "sim", "load", "--protocol", "map", "--peer", f"127.0.0.1:{port}", "--connections", "1",
               "--inflight", str(inflight), "--duration", str(duration), "--imeis", str(imeis),
               "--imsi-prefix", PREFIX, "--ac-version", str(version), "--json"]
    done = subprocess.run(command + (["--vendor-imsi"] if vendor_imsi else []), capture_output=True, text=True,
                          check=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    args = parse_arguments(__doc__)
    with tempfile.TemporaryDirectory(prefix="eir-bench-map-") as name:
        folder = Path(name)
        url, sample, imeis, fresh = prepare(folder, args)
        seed_observations(folder, url, sample, with_sim=False)

        agent = AgentProcess(folder, url, m3ua=True)
        try:
            port = agent.m3ua_address[1]
            warm_up(lambda seconds: load_map(port, imeis, seconds, args.inflight, 3, False), len(sample),
                    args.warmup)
            pid = agent.process.pid
            v3 = with_cpu(pid, lambda: load_map(port, imeis, args.duration, args.inflight, 3, False))
            v2 = with_cpu(pid, lambda: load_map(port, imeis, args.duration, args.inflight, 2, True))
            s13 = with_cpu(pid, lambda: load(agent.port, imeis, args.duration, args.inflight))
            first = with_cpu(pid, lambda: load_map(port, fresh, args.fresh_duration, args.inflight, 3, False))
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
