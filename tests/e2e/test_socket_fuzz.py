"""Socket-level fuzzing of a real `eir serve` process (issue 12, Proof): per layer
(Diameter, M3UA, SCCP inside M3UA DATA, TCAP/MAP inside SCCP UDT) 10,000 frames with CI=true
(2,000 otherwise, FUZZ_FRAMES overrides), each with valid lower-layer framing, pipelined
over loopback with a probe for a white IMEI after every batch (``simulator.fuzz_sockets``,
the driver bench/bench_fuzz.py runs at 1,000,000). The agent must neither exit nor stop
answering a fresh connection (crash), leave a probe unanswered (hang), close or reset the
connection or send DPR (aborted association), nor answer a probe with anything but
WHITELISTED / whiteListed; and what it logs stays bounded: rate-limited lines, none long.

The harness itself is tested first: a frame of bad framing counts as an abort and is named
by replaying, a probe the agent never answers is a hang, a black IMEI's probe a wrong answer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from simulator.demo_registry import BLACK, build_demo_registry
from simulator.fuzz_frames import LAYERS, MAP_IDENTITY, PROBE_MARK, DiameterFrames, FrameSource, Probe, TcapFrames
from simulator.fuzz_sockets import LayerReport, LayerRun, Settings, Target, find_culprit, fuzz_agent, target_of
from simulator.msc import encode_request, map_imei

CI = os.environ.get("CI", "").strip().lower() == "true"
FRAMES = int(os.environ.get("FUZZ_FRAMES") or (10_000 if CI else 2_000))
SEED = int(os.environ.get("FUZZ_SEED") or 12)
LINES_PER_SECOND = 30  # three BadInput limiters of ten warnings a second could all be busy
LINES_ANYWAY = 40  # connections opened and closed, ASP and peer state changes
LONGEST_LINE = 1_000  # a reason is cut at 300 characters, the peer at 128


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    folder = tmp_path_factory.mktemp("socket-fuzz")
    agent = fuzz_agent(folder, build_demo_registry(folder))
    yield target_of(agent)
    assert agent.stop() == 0


@pytest.fixture(scope="module")
def reports(target: Target) -> dict[str, LayerReport]:
    """Each layer fuzzed once, in turn, against the module's agent."""
    return {layer: asyncio.run(LayerRun(target, layer, SEED, Settings()).run(FRAMES)) for layer in LAYERS}


# --- the harness sees what it counts -------------------------------------------------------------

class BadFraming(DiameterFrames):
    """The 100th frame has version 2: framing the agent cannot trust, so it closes."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.count = 0
        self.bad = b""

    def frame(self) -> bytes:
        self.count += 1
        frame = super().frame()
        if self.count == 100:
            self.bad = b"\x02" + frame[1:]
            return self.bad
        return frame


class SilentProbe(DiameterFrames):
    """The second probe is sent as an answer (R flag cleared): the agent drops it unanswered."""

    def probe(self) -> Probe:
        probe = super().probe()
        if self.probes == 2:
            return Probe(probe.key, probe.wire[:4] + bytes([probe.wire[4] & 0x7F]) + probe.wire[5:])
        return probe


class BlackProbe(TcapFrames):
    """The third probe asks about a black IMEI: its answer is not whiteListed."""

    def probe(self) -> Probe:
        if self.probes != 2:
            return super().probe()
        self.probes += 1
        key = PROBE_MARK | self.probes
        return Probe(key, encode_request(MAP_IDENTITY, key.to_bytes(4, "big"), map_imei(BLACK + "0"), 3))


def run_with(target: Target, layer: str, source: FrameSource, frames: int = 1_000) -> LayerReport:
    run = LayerRun(target, layer, SEED, Settings(batch=100, probe_timeout=1.0))
    run.source = source
    return asyncio.run(run.run(frames))


def test_the_harness_counts_an_abort_and_names_the_frame_at_fault(target: Target) -> None:
    source = BadFraming(SEED)
    report = run_with(target, "diameter", source)
    assert (report.aborts, report.crashes, report.hangs, report.wrong) == (1, 0, 0, 0), report.incidents
    assert report.frames == 1_000 and "by the agent" in report.incidents[0]  # closed, or reset
    assert asyncio.run(find_culprit(target, "diameter", report.suspects[0])) == [source.bad]


def test_the_harness_counts_a_hang_and_a_wrong_answer(target: Target) -> None:
    hung = run_with(target, "diameter", SilentProbe(SEED))
    assert (hung.hangs, hung.aborts, hung.crashes, hung.wrong) == (1, 0, 0, 0), hung.incidents
    wrong = run_with(target, "tcap", BlackProbe(SEED))
    assert (wrong.wrong, wrong.hangs, wrong.aborts, wrong.crashes) == (1, 0, 0, 0), wrong.incidents
    assert "blackListed" in wrong.incidents[0] or "result 1" in wrong.incidents[0]


# --- the agent under fuzz ------------------------------------------------------------------------

@pytest.mark.parametrize("layer", LAYERS)
def test_fuzzed_frames_with_valid_framing_find_no_crash_hang_abort_or_wrong_answer(
        reports: dict[str, LayerReport], layer: str) -> None:
    report = reports[layer]
    assert report.frames == FRAMES and report.probes == -(-FRAMES // Settings.batch)
    assert (report.crashes, report.hangs, report.aborts, report.wrong) == (0, 0, 0, 0), report.incidents
    assert report.answers > FRAMES // 3  # the agent answered, not only survived


@pytest.mark.parametrize("layer", LAYERS)
def test_the_log_stays_bounded_under_fuzz(reports: dict[str, LayerReport], layer: str) -> None:
    report = reports[layer]
    assert report.longest_log_line <= LONGEST_LINE
    assert report.log_lines <= LINES_PER_SECOND * report.seconds + LINES_ANYWAY, report.line()
