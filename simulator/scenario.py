"""Read a scenario file (scenarios/README.md) into a ``Scenario`` whose names are all
resolved: a step that names a handset nobody declared is an error at its line, not a
surprise at run time. ``find_scenarios(paths)`` expands folders into their ``*.yaml``
files. Nothing here touches a socket: the runner (simulator/scenario_run.py) plays it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from registry.imei import luhn_check_digit
from registry.profile import ProfileError, load_profile
from simulator.scenario_model import CALLING_CODES, IMPORT_KINDS, Handset, Scenario, Subscriber
from simulator.scenario_steps import StepReader, import_rows, parse_time
from simulator.scenario_yaml import Node, ScenarioError, compose_file

__all__ = ["ScenarioError", "find_scenarios", "load_scenario"]

PROFILE_SUFFIX = ".profile.yaml"  # a country profile beside the scenarios that use it
_PLMN = re.compile(r"^(\d{3})-(\d{2,3})$")


def find_scenarios(paths: list[Path]) -> list[Path]:
    """The scenario files named: a file as given, a folder's ``*.yaml`` (and its suites'
    folders), sorted, but not the country profiles kept beside them (``*.profile.yaml``);
    a name that is no path but a shipped suite's (``tajikistan``) is that suite, wherever
    eir is installed; anything else is a ScenarioError."""
    from scenarios import SHIPPED

    found: list[Path] = []
    for given in paths:
        path = given if given.exists() or len(given.parts) != 1 else SHIPPED / given
        if path.is_dir():
            found += sorted(item for item in path.rglob("*.yaml")
                            if item.is_file() and not item.name.endswith(PROFILE_SUFFIX))
        elif path.is_file():
            found.append(path)
        else:
            raise ScenarioError(given, 0, "path", "no such file or folder, nor a shipped suite (" +
                                ", ".join(sorted(item.name for item in SHIPPED.iterdir()
                                                 if item.is_dir() and not item.name.startswith("_"))) + ")")
    return found


TOP_KEYS = {"scenario", "description", "profile", "start", "seed", "subscribers", "handsets", "registry", "agent",
            "steps"}


def load_scenario(path: Path) -> Scenario:
    """The scenario in ``path``; a schema error is a ScenarioError naming the line and key."""
    top = compose_file(path).mapping(TOP_KEYS, required=("scenario", "start", "steps"))
    scenario = Scenario(path=path, title=top["scenario"].text(), profile=_profile(top.get("profile"), path),
                        start=parse_time(top["start"]))
    if "seed" in top:
        scenario.seed = top["seed"].integer(0)
    if "description" in top:
        scenario.description = " ".join(top["description"].text().split())
    for name, node in top["subscribers"].items() if "subscribers" in top else ():
        scenario.subscribers[name] = _subscriber(name, node, scenario.seed)
    for name, node in top["handsets"].items() if "handsets" in top else ():
        scenario.handsets[name] = _handset(name, node, scenario.seed, scenario.handsets)
    _check_unique(scenario, top)
    if "registry" in top:
        for kind, node in top["registry"].mapping(set(IMPORT_KINDS)).items():
            scenario.setup.append(import_rows(kind, node, scenario))
    if "agent" in top:
        agent = top["agent"].mapping({"allow_peer"})
        scenario.allow_peer = [item.text() for item in agent["allow_peer"].sequence()] if "allow_peer" in agent else []
    scenario.steps = [StepReader(scenario, node, number).read()
                      for number, node in enumerate(top["steps"].sequence(), start=1)]
    if not scenario.steps:
        top["steps"].fail("no steps")
    return scenario


def _profile(node: Node | None, path: Path) -> str:
    if node is None:
        return "tj"
    text = node.text()
    if text in ("tj", "kg"):
        return text
    candidate = (path.parent / text).resolve()
    if not candidate.is_file():
        node.fail(f"{text!r} is neither a shipped profile (tj, kg) nor a file beside the scenario")
    try:
        load_profile(candidate)  # refused here, with the scenario's line, rather than by every agent started
    except ProfileError as error:
        node.fail(f"the profile cannot be used: {error}")
    return str(candidate)


def _generated(seed: int, name: str, digits: int) -> str:
    chooser = random.Random(f"{seed}:{name}")
    return "".join(chooser.choice("0123456789") for _ in range(digits))


def _subscriber(name: str, node: Node, seed: int) -> Subscriber:
    fields = node.mapping({"imsi", "msisdn", "plmn"})
    if "imsi" in fields:
        imsi = fields["imsi"].digits("IMSI")
        if not 6 <= len(imsi) <= 15:
            fields["imsi"].fail(f"an IMSI has 6 to 15 digits, not {len(imsi)}")
    elif "plmn" in fields:
        found = _PLMN.match(fields["plmn"].text())
        if found is None:
            fields["plmn"].fail(f"{fields['plmn'].text()!r} is not MCC-MNC (436-01)")
        imsi = found[1] + found[2] + _generated(seed, name + ":imsi", 15 - len(found[1]) - len(found[2]))
    else:
        node.fail("a subscriber needs imsi or plmn")
    if "msisdn" in fields:
        msisdn = fields["msisdn"].digits("MSISDN")
    else:
        msisdn = CALLING_CODES.get(imsi[:3], "999") + _generated(seed, name + ":msisdn", 9)
    return Subscriber(name, imsi, msisdn)


def _handset(name: str, node: Node, seed: int, earlier: dict[str, Handset]) -> Handset:
    fields = node.mapping({"imei", "imeis", "tac", "slots", "type", "clone_of"})
    if sum(key in fields for key in ("imei", "imeis", "tac", "clone_of")) != 1:
        node.fail("a handset needs exactly one of imei, imeis (dual-SIM), tac (generated) or clone_of")
    device_type = fields["type"].text() if "type" in fields else None
    if "clone_of" in fields:
        original = fields["clone_of"].text()
        if original not in earlier:
            fields["clone_of"].fail(f"no handset named {original!r} declared before {name}")
        return Handset(name, earlier[original].imeis, device_type or earlier[original].device_type, original)
    if "imei" in fields:
        imeis: tuple[str, ...] = (fields["imei"].text(),)
    elif "imeis" in fields:
        items = fields["imeis"].sequence()
        if not 1 <= len(items) <= 2:
            fields["imeis"].fail(f"a handset has one or two IMEIs (one per SIM slot), not {len(items)}")
        imeis = tuple(item.text() for item in items)
    else:
        imeis = _generated_imeis(name, fields, seed)
    return Handset(name, imeis, device_type)


def _generated_imeis(name: str, fields: dict[str, Node], seed: int) -> tuple[str, ...]:
    tac = fields["tac"].digits("TAC")
    if len(tac) != 8:
        fields["tac"].fail(f"a TAC has 8 digits, not {len(tac)}")
    slots = fields["slots"].integer(1, 2) if "slots" in fields else 1
    keys = [tac + _generated(seed, f"{name}:{slot}", 6) for slot in range(1, slots + 1)]
    return tuple(key + luhn_check_digit(key) for key in keys)


def _check_unique(scenario: Scenario, top: dict[str, Node]) -> None:
    """Two handsets never share an IMEI, unless one is declared a clone of the other."""
    seen: dict[str, str] = {}
    nodes = top["handsets"].mapping() if "handsets" in top else {}
    for handset in scenario.handsets.values():
        for imei in handset.imeis if handset.clone_of is None else ():
            if imei[:14] in seen:
                nodes[handset.name].fail(f"{handset.name} and {seen[imei[:14]]} share the IMEI {imei} "
                                         "(declare a clone with clone_of)")
            seen[imei[:14]] = handset.name
