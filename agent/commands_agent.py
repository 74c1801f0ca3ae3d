"""``eir serve`` and ``eir check``: parse, call the agent, print."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from agent.cli_common import (
    EX_UNAVAILABLE,
    EX_USAGE,
    OneLineCommand,
    cli_clock,
    connect_registry,
    fail,
    open_registry,
    parse_at,
)
from agent.config import (
    DEFAULT_PROFILE,
    MAX_WORKERS,
    AgentConfig,
    ConfigError,
    M3uaPeer,
    load_config,
    parse_allowed_peer,
    parse_listen,
    parse_networks,
)
from agent.context import CliContext
from netio.sctp import SctpUnavailable, check_sctp
from registry.decision import Rule

if TYPE_CHECKING:
    from registry.decision import Decision

LAB_NOW = "now"  # --lab-clock without START: the machine's now


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML configuration file.")
@click.option("--listen", "listen", multiple=True, metavar="HOST:PORT", help="Address to listen on (repeatable).")
@click.option("--transport", type=click.Choice(["tcp", "sctp"]), default=None, help="Transport for --listen.")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), default=None, metavar="N",
              help="Agent processes sharing the listening ports (TCP, SO_REUSEPORT) under a supervisor that "
                   "restarts a dead one and stops all on SIGTERM [default: workers: in --config, else 1].")
@click.option("--worker", "worker_role", hidden=True, default=None, help="Set by --workers for each worker.")
@click.option("--allow-peer", "allow", multiple=True, metavar="PATTERN[@CIDR,...|@any]",
              help="A peer allowed to connect: an Origin-Host pattern and the networks it may connect from "
                   "(none: loopback only; @any: every address). Repeatable.")
@click.option("--m3ua-listen", "m3ua_listen", multiple=True, metavar="HOST:PORT",
              help="Answer MAP CheckIMEI from ASPs connecting to HOST:PORT over M3UA (repeatable).")
@click.option("--m3ua-transport", type=click.Choice(["tcp", "sctp"]), default=None,
              help="Transport for --m3ua-listen (SCTP: PPID 3, DATA off stream 0) [default: tcp].")
@click.option("--m3ua-allow", "m3ua_allow", multiple=True, metavar="CIDR",
              help="Network M3UA peers may connect from (repeatable; added to m3ua.allow) [default: loopback only].")
@click.option("--origin-host", help="Our Origin-Host.")
@click.option("--origin-realm", help="Our Origin-Realm.")
@click.option("--profile", metavar="NAME|PATH", help="Country profile: tj (default), kg, or a YAML file.")
@click.option("--answer-log", metavar="FILE|-|off", help="Where the one-line-per-answer JSON log goes.")
@click.option("--lab-clock", "lab_clock", is_flag=False, flag_value=LAB_NOW, default=None, metavar="[START]",
              help="Lab mode: run on a clock that stands still until moved through --control, only forward. "
                   "START: an ISO time (UTC unless it says) or a date (00:00 UTC); none: the machine's now.")
@click.option("--control", "control", metavar="PATH", type=click.Path(dir_okay=False, path_type=Path),
              help="Lab mode: the control socket (Unix, mode 0600) [default: ./eir-lab-PID.sock]. "
                   "Needs --lab-clock.")
@click.pass_context
def serve(ctx: click.Context, config_path: str | None, listen: tuple[str, ...], transport: str | None,
          allow: tuple[str, ...], m3ua_listen: tuple[str, ...], m3ua_transport: str | None,
          m3ua_allow: tuple[str, ...], origin_host: str | None,
          origin_realm: str | None, profile: str | None, answer_log: str | None, lab_clock: str | None,
          control: Path | None, workers: int | None, worker_role: str | None) -> None:
    """Answer S13 ME-Identity-Check (and MAP CheckIMEI over M3UA, when configured) from the
    registry, under a country profile, until SIGTERM (which sends DPR to Diameter peers
    and closes M3UA associations). Every answered query is recorded (observations).

    The registry must exist (create it with `eir registry init` or `eir registry import`),
    be at this eir's schema version, and be writable: the observations it records must be
    durable. Exit status 0 after SIGTERM or SIGINT; 1 when it cannot start (a bad
    configuration or profile, a missing, unusable or read-only registry, an address it
    cannot listen on), with one line on stderr; 2 a usage error.

    Lab mode (--lab-clock): every time the agent reads (policy dates, deadlines, sights,
    notices, the answer log's stamps) is the lab clock's, which stands still until moved
    and only moves forward, through the control socket (--control: a Unix socket, so file
    permissions say who may move time; `eir sim lab` talks to it). Without --lab-clock
    there is no control socket.

    --workers N (N > 1): a supervisor and N agent processes sharing the TCP listening ports
    (SO_REUSEPORT); SIGTERM to the supervisor stops them all as above, and a worker that
    dies is started again. Worker K's answer log is FILE with .wK before its extension.
    Not with lab mode or SCTP."""
    from agent.server import StartError
    from agent.server import serve as run
    from agent.workers import WorkerRole, as_worker, check_shareable, die_with_parent
    from registry.profile import ProfileError, load_profile

    try:
        role = None if worker_role is None else WorkerRole.parse(worker_role)
    except ValueError as error:
        fail("serve", str(error), 2)
    if role is not None:
        die_with_parent(role.parent)
    control = _lab_mode(ctx, lab_clock, control)
    try:
        config = load_config(config_path)
        _override(ctx, config, listen, transport, origin_host, origin_realm, profile, answer_log)
        config.allow += [parse_allowed_peer(text) for text in allow]
        config.m3ua.allow += [M3uaPeer(parse_networks(cidr, "--m3ua-allow", "eir serve")) for cidr in m3ua_allow]
        if m3ua_listen:
            config.m3ua.listen = [parse_listen(text, m3ua_transport or "tcp") for text in m3ua_listen]
        elif m3ua_transport:
            config.m3ua.listen = [dataclasses.replace(item, transport=m3ua_transport) for item in config.m3ua.listen]
        config.workers = workers or config.workers
        if role is not None:
            as_worker(config, role)
        elif config.workers > 1:
            check_shareable(config)
        load_profile(config.profile)  # refuse a bad profile before listening
        if _uses_sctp(config):
            check_sctp()  # before the registry: a kernel without SCTP is the first thing to say
    except (ConfigError, ProfileError, SctpUnavailable) as error:
        fail("serve", str(error), 1)
    if role is None and config.workers > 1 and lab_clock is not None:
        fail("serve", f"--workers {config.workers} cannot run in lab mode (--lab-clock, --control): "
                      "one clock, one process", 2)
    logging.getLogger().setLevel(config.log_level.upper())
    _log_format(config.log_format, None if role is None else role.index)
    clock = cli_clock(ctx)
    registry = connect_registry(config.registry, "serve", clock, writable=True, status=1)  # before any listener
    if role is None and config.workers > 1:
        registry.close()  # verified; the supervisor holds no connection
        _supervise(config)
    announce, ready = _announcers(role is not None)
    try:
        code = asyncio.run(run(config, announce, registry, clock, control, share_ports=role is not None,
                               ready=ready))
    except (SctpUnavailable, StartError) as error:
        fail("serve", str(error), 1)
    except OSError as error:
        fail("serve", f"cannot start: {error.strerror or error}", 1)
    sys.exit(code)


def _supervise(config: AgentConfig) -> NoReturn:
    """The parent of ``--workers N``: this command line again for each worker (agent/workers.py)."""
    from agent.server import StartError
    from agent.workers import supervise

    try:
        code = supervise(config, sys.argv[1:], lambda line: click.echo(line, err=True))
    except StartError as error:
        fail("serve", str(error), 1)
    sys.exit(code)


def _announcers(worker: bool) -> tuple[Callable[[str], None], Callable[[], None] | None]:
    """Where the "eir: ..." lines go: stderr; a worker's to its stdout, a pipe to the
    supervisor, which says them once for all (agent/workers.py), then READY."""
    if not worker:
        return (lambda line: click.echo(line, err=True)), None
    from agent.workers import READY

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return say, lambda: say(READY)


def _lab_mode(ctx: click.Context, lab_clock: str | None, control: Path | None) -> Path | None:
    """In lab mode, make the process's one clock a LabClock at START and return the control
    socket's path; None otherwise. --control alone, or a bad START, is a usage error."""
    from agent.lab import parse_lab_time
    from registry.clock import LabClock

    if lab_clock is None:
        if control is not None:
            fail("serve", "--control needs --lab-clock: the control socket exists only in lab mode", 2)
        return None
    machine = cli_clock(ctx)
    try:
        start = machine.now().replace(microsecond=0) if lab_clock == LAB_NOW else parse_lab_time(lab_clock)
    except ValueError as error:
        fail("serve", f"--lab-clock: {error}", 2)
    found = ctx.find_object(CliContext)
    if found is None:
        ctx.obj = found = CliContext()
    found.clock = LabClock(start, base=machine)
    return control if control is not None else Path(f"eir-lab-{os.getpid()}.sock")


def _uses_sctp(config: AgentConfig) -> bool:
    return any(item.transport == "sctp" for item in [*config.listen, *config.m3ua.listen,
                                                     *(link.listen for link in config.m3ua.connect)])


def _override(ctx: click.Context, config: AgentConfig, listen: tuple[str, ...], transport: str | None,
              origin_host: str | None, origin_realm: str | None, profile: str | None,
              answer_log: str | None) -> None:
    if listen:
        config.listen = [parse_listen(text, transport or "tcp") for text in listen]
    elif transport:
        config.listen = [dataclasses.replace(item, transport=transport) for item in config.listen]
    # The root's --registry (or EIR_REGISTRY) wins over the file only when it was given.
    if ctx.find_root().get_parameter_source("registry_url") not in (None, click.core.ParameterSource.DEFAULT):
        config.registry = ctx.find_object(CliContext).registry_url  # type: ignore[union-attr]
    config.origin_host = origin_host or config.origin_host
    config.origin_realm = origin_realm or config.origin_realm
    config.profile = profile or config.profile
    config.answer_log = answer_log or config.answer_log


def _log_format(log_format: str, worker: int | None) -> None:
    """The agent's own log lines: text (as ``eir`` sets it) or JSON; a worker's say which."""
    if log_format == "json":
        _json_logging(worker)
    elif worker is not None:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s [worker {worker}]: "
                                                   "%(message)s"))


def _json_logging(worker: int | None = None) -> None:
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            line = {"ts": round(record.created, 6), "level": record.levelname.lower(),
                    "logger": record.name, "message": record.getMessage()}
            return json.dumps(line if worker is None else {**line, "worker": worker})
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())


@click.command(cls=OneLineCommand, usage_status=EX_USAGE)
@click.argument("imei")
@click.option("--imsi", help="IMSI the device is used with.")
@click.option("--msisdn", help="MSISDN the device is used with.")
@click.option("--at", "at", metavar="DATE", help="Decide as if asked at DATE (YYYY-MM-DD or an ISO time; "
              "default now). A date alone means noon UTC.")
@click.option("--profile", default=DEFAULT_PROFILE, show_default=True, metavar="NAME|PATH",
              help="Country profile: tj, kg, or a YAML file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def check(ctx: click.Context, imei: str, imsi: str | None, msisdn: str | None, at: str | None, profile: str,
          as_json: bool) -> None:
    """The agent's decision for IMEI, with its explanation and what S13 and MAP would
    answer, without the network: from what the registry holds (lists, observations, TAC
    catalogue, subscriber data) as if asked at --at. It records nothing.

    \b
    Exit status:
      0   white
      1   black
      2   grey
      3   unknown
      4   invalid: not an IMEI, a wrong check digit, or a request the network would refuse
          (whatever the profile answers on the wire, e.g. tj: black, rule invalid-imei)
      64  usage: a bad or missing option or argument, a bad --at or --profile
      69  registry: missing, unopenable, corrupt, or of another schema version
    Errors are one line on stderr: eir check: ..."""
    from agent.map import wire_answer as map_answer
    from agent.s13 import wire_answer as s13_answer
    from agent.service import EquipmentCheck, Interface, Query
    from registry.profile import ProfileError, load_profile

    try:
        rules = load_profile(profile)
    except ProfileError as error:
        raise click.UsageError(str(error)) from None
    when = parse_at(at, cli_clock(ctx))
    with open_registry(ctx, "check", status=EX_UNAVAILABLE, after="") as registry:
        decision = EquipmentCheck(registry, rules).check(Query(imei, Interface.CLI, when, imsi=imsi, msisdn=msisdn))
    deadline = decision.deadline.isoformat(timespec="seconds") if decision.deadline else None
    wire = {"s13": s13_answer(decision.status), "map": map_answer(decision.status)}
    if as_json:
        click.echo(json.dumps({"imei": decision.imei or imei, "status": decision.status.value,
                               "rule": decision.rule, "reason": decision.reason, "deadline": deadline,
                               "at": when.isoformat(timespec="seconds"), "profile": rules.name,
                               "notices": [notice.event for notice in decision.notices], "wire": wire}))
    else:
        until = f"; deadline {deadline}" if deadline else ""
        click.echo(f"{decision.imei or imei}: {decision.status.value.upper()} ({decision.rule}): "
                   f"{decision.reason}{until}")
        click.echo(f"  on the wire: S13 {wire['s13']}; MAP {wire['map']}")
    sys.exit(check_status(decision))


INVALID_RULES = frozenset({Rule.INVALID_IMEI, Rule.MALFORMED_REQUEST})  # input that is not a valid request
CHECK_STATUS = {"white": 0, "black": 1, "grey": 2, "unknown": 3, "invalid": 4}


def check_status(decision: Decision) -> int:
    """``eir check``'s exit status: 4 for input that is not valid (Status.INVALID, or a
    rule that says so whatever status the profile answers it with), else by status."""
    if decision.rule in INVALID_RULES:
        return CHECK_STATUS["invalid"]
    return CHECK_STATUS[decision.status.value]
