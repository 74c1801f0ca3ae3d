"""Compare what a step expected with what came back; each function returns the
differences as lines a person reads ("status: expected white, received grey"), empty
when all is as expected."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulator.scenario_model import NoticeExpect
from simulator.scenario_wire import Answer


def _differ(name: str, expected: Any, received: Any) -> str:
    return f"{name}: expected {expected}, received {received if received is not None else 'nothing'}"


def answer_differences(expected: dict[str, Any], answer: Answer, interface: str) -> list[str]:
    """An attach's answer against its expectation: status on both interfaces, the result
    code on S13, the error on MAP (the rule is compared later, from the answer log)."""
    found = []
    if answer.error is not None and "error" not in expected and "result" not in expected:
        found.append(f"no answer to compare: {answer.error}")
        return found
    if "status" in expected and expected["status"] != answer.status:
        found.append(_differ("status", expected["status"], answer.status))
    if interface == "s13" and "result" in expected and expected["result"] != answer.result:
        found.append(_differ("result", expected["result"], answer.result))
    if interface == "map" and "error" in expected and expected["error"] != answer.error:
        found.append(_differ("error", expected["error"], answer.error))
    return found


def same_moment(expected: date | datetime, received: str | None, offset: timedelta) -> bool:
    """A date matches a time on that local day (``offset`` from UTC); a time matches to the second."""
    if received is None:
        return False
    at = datetime.fromisoformat(received)
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    if isinstance(expected, datetime):
        return abs((at - expected).total_seconds()) < 1
    return (at.astimezone(UTC) + offset).date() == expected


def check_differences(expected: dict[str, Any], found: dict[str, Any], offset: timedelta) -> list[str]:
    """``eir check --json`` against the expected status, rule and deadline."""
    differences = [_differ(name, expected[name], found.get(name)) for name in ("status", "rule")
                   if name in expected and expected[name] != found.get(name)]
    if "deadline" in expected and not same_moment(expected["deadline"], found.get("deadline"), offset):
        differences.append(_differ("deadline", expected["deadline"], found.get("deadline")))
    return differences


def notice_differences(expected: list[NoticeExpect], found: list[dict[str, Any]], offset: timedelta) -> list[str]:
    """The notices queued for an IMEI against exactly those expected, in order."""
    events = [item.get("event") for item in found]
    wanted = [item.event for item in expected]
    if events != wanted:
        return [_differ("notices", ", ".join(wanted) or "none", ", ".join(map(str, events)) or "none")]
    return [_differ(f"{want.event} deadline", want.deadline, item.get("deadline"))
            for want, item in zip(expected, found, strict=True)
            if want.deadline is not None and not same_moment(want.deadline, item.get("deadline"), offset)]


def wire_differences(expected: dict[str, Any], observed: dict[str, Any]) -> list[str]:
    """A wire check's observed fields against the expected ones (only those named)."""
    return [_differ(name, value, observed.get(name)) for name, value in expected.items()
            if not _matches(value, observed.get(name))]


def _matches(expected: Any, received: Any) -> bool:
    if isinstance(expected, list) and isinstance(received, list | tuple):
        return [str(item) for item in expected] == [str(item) for item in received]
    if isinstance(expected, bool) or expected is None:
        return expected == received
    return str(expected) == str(received)
