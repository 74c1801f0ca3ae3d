"""Socket-level fuzzing benchmark (issue 12, Proof): one `eir serve` process with the demo
registry, S13 on TCP and MAP on M3UA/TCP, fed FRAMES fuzzed frames per layer over loopback
(``simulator.fuzz_frames``: diameter, m3ua, sccp, tcap, each with valid lower-layer framing),
pipelined in batches, a probe for a white IMEI after each batch. Prints per layer the
crashes, hangs, aborted associations and wrong answers (the target is 0 of each), the
agent's peak RSS, its log lines and bytes per 10,000 frames, and the frames a second; for
any incident, the seed and the fewest frames found that show it again. Exit status 1 when a layer is not clean.

    python bench/bench_fuzz.py [--frames 1000000] [--layers diameter,m3ua,sccp,tcap] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from simulator.demo_registry import build_demo_registry
from simulator.fuzz_frames import LAYERS
from simulator.fuzz_sockets import LayerReport, Settings, Target, find_culprit, fuzz, fuzz_agent, layers_of, target_of

SHOWN_OCTETS = 200


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000, help="fuzzed frames per layer (default 1,000,000)")
    parser.add_argument("--layers", type=layers_of, default=list(LAYERS), help="comma-separated, default all four")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed: the same seed sends the same frames")
    parser.add_argument("--batch", type=int, default=Settings.batch, help="fuzzed frames between two probes")
    parser.add_argument("--probe-timeout", type=float, default=Settings.probe_timeout,
                        help="seconds a probe may wait for its answer before it counts as a hang")
    parser.add_argument("--keep", type=Path, help="keep the agent's folder (registry, logs) here")
    return parser.parse_args()


def shown(frame: bytes) -> str:
    more = f"... ({len(frame)} octets)" if len(frame) > SHOWN_OCTETS else ""
    return frame[:SHOWN_OCTETS].hex() + more


def culprits(target: Target, report: LayerReport) -> list[str]:
    """For each incident: the incident, and the frame at fault when replaying finds one."""
    lines = []
    for incident, suspects in zip(report.incidents, report.suspects, strict=True):
        lines.append(f"  {incident}")
        if suspects and target.alive():
            frames = asyncio.run(find_culprit(target, report.layer, suspects))
            lines.append(f"    frames at fault, written at once: {len(frames)}" if frames else
                         f"    the {len(suspects)} frames before it, replayed at once, do not show it again")
            lines.extend(f"      {shown(frame)}" for frame in frames[:10])
    return lines


def run(folder: Path, args: argparse.Namespace) -> bool:
    agent = fuzz_agent(folder, build_demo_registry(folder))
    target = target_of(agent)
    settings = Settings(batch=args.batch, probe_timeout=args.probe_timeout)
    started = time.perf_counter()
    try:
        reports = asyncio.run(fuzz(target, args.layers, args.frames, args.seed, settings))
        details = [line for report in reports for line in culprits(target, report)]
    finally:
        code = agent.stop()
    print(f"socket fuzz, seed {args.seed}, {args.frames:,} frames per layer, batches of {args.batch} "
          f"and a probe, {time.perf_counter() - started:.0f} s in all")
    for report in reports:
        print(report.line())
    print("\n".join(details) if details else "no incident")
    answers = agent.answer_log.stat().st_size if agent.answer_log.exists() else 0
    logged = agent.stderr_path.stat().st_size
    print(f"agent exit code {code}; answer log {answers / 1e6:.1f} MB, agent log {logged / 1e6:.2f} MB")
    return code == 0 and len(reports) == len(args.layers) and all(report.clean for report in reports)


def main() -> None:
    args = parse_arguments()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        clean = run(args.keep, args)
    else:
        with tempfile.TemporaryDirectory(prefix="eir-bench-fuzz-") as name:
            clean = run(Path(name), args)
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
