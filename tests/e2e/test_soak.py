"""End to end: the soak and fault run (bench/soak.py) in 20 seconds against a real
`eir serve`: steady S13 and MAP load, fuzzed frames, idle and non-reading peers, the
registry locked by another process, SIGKILL and restart, and SIGKILL while the registry
is locked. The run's instrument is checked first (it judges every class of IMEI, and a
first sight deleted by hand is reported lost), then the agent: no wrong answer, and every
first sight an answer rested on is in the registry after each kill and at the end."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from simulator.soak import Options, soak
from simulator.soak_load import OK, WRONG
from simulator.soak_population import EXPECTED

OPTIONS = Options(duration=20.0, s13_rate=100.0, map_rate=50.0, population=50, new_share=0.1, fuzz_rate=200,
                  idle_count=10, non_reader_rate=300, max_rss_mib=1000.0)


def test_a_soak_run_answers_right_and_loses_no_first_sight_through_faults(tmp_path: Path) -> None:
    report = soak(OPTIONS, tmp_path, out=lambda _: None)
    tally, database = report.tally, tmp_path / "registry.db"

    # The run did what it says: every class answered on both interfaces, the faults happened.
    assert {kind for (_, kind, verdict) in tally.verdicts if verdict == OK} == set(EXPECTED)
    assert {interface for (interface, _, verdict) in tally.verdicts if verdict == OK} == {"S13", "MAP v2", "MAP v3"}
    assert report.restarts == 2 and len(report.lost_after_kill) == 2
    assert [what for what, _, _ in report.faults] == ["lock", "SIGKILL, restart", "lock, SIGKILL inside it, restart"]
    assert report.hostile["diameter_fuzz_frames"] > 0 and report.hostile["m3ua_fuzz_frames"] > 0
    assert report.hostile["non_reader_requests"] > 0 and report.hostile["idle_s13_opened"] >= 10
    assert report.rules_checked > tally.count() // 2

    # The instrument sees a loss: a first sight an answer rested on, deleted by hand, is reported.
    lost = tally.first_sights.lost(database)
    key, imsi = next(pair for pair in tally.first_sights.answered if pair not in lost)
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("DELETE FROM sighting WHERE imei = ? AND imsi = ?", (key, imsi))
        connection.commit()
    assert set(tally.first_sights.lost(database)) == {*lost, (key, imsi)}

    # The agent: right answers, and no first sight lost through a kill, locked or not.
    assert tally.count(WRONG) == 0, tally.wrong_examples
    assert report.rule_mismatches == []
    assert report.lost_after_kill == [0, 0] and lost == []
