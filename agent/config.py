"""The agent's configuration: a YAML file (see agent/agent.example.yaml), overridden by flags."""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.admission import PER_PEER, TOTAL
from agent.context import DEFAULT_REGISTRY
from agent.durable import COMMIT_TIMEOUT
from registry.yamlfile import YamlFileError, read_yaml
from sigtran.m3ua import TrafficMode

TRANSPORTS = ("tcp", "sctp")
M3UA_PORT = 2905
MAX_POINT_CODE = 0x3FFF  # ITU 14-bit
DEFAULT_PROFILE = "tj"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
ANY_ADDRESS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
MAX_CONNECTIONS = 256  # per listener, Diameter and M3UA: far below the usual 1024 descriptors
ACTIVATION_TIMEOUT = 30.0  # seconds an M3UA association may stay out of ASP-ACTIVE
MAX_WORKERS = 64  # eir serve --workers: agent processes on one machine (a typo of 1000 is refused, not forked)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A configuration that cannot run; the message says which key and why."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    transport: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.transport})"


@dataclass(frozen=True)
class AllowedPeer:
    """A peer is admitted when its Origin-Host matches ``host`` (a shell pattern, any case)
    and its source address lies in one of ``networks``. A name is bound to addresses: an
    entry that names none admits the name from loopback only; ``ANY_ADDRESS`` (written
    ``any``) admits it from everywhere, for an operator who says so."""

    host: str = "*"
    networks: tuple[Network, ...] = LOOPBACK

    def matches(self, origin_host: str) -> bool:
        return fnmatch.fnmatchcase(origin_host.lower(), self.host.lower())

    def admits(self, origin_host: str, address: str | None) -> bool:
        return self.matches(origin_host) and _in(address, self.networks)

    def __str__(self) -> str:
        """As ``--allow-peer`` writes it: PATTERN@CIDR,CIDR or PATTERN@any."""
        sources = "any" if self.networks == ANY_ADDRESS else ",".join(str(n) for n in self.networks)
        return f"{self.host}@{sources}"


def parse_allowed_peer(text: str) -> AllowedPeer:
    """``--allow-peer`` and a ``peers.allow`` string: PATTERN (loopback only),
    PATTERN@CIDR[,CIDR...] or PATTERN@any."""
    host, at, sources = text.partition("@")
    if not host.strip():
        raise ConfigError(f"peer entry {text!r} has no Origin-Host pattern; write PATTERN[@CIDR,...|@any]")
    if not at:
        return AllowedPeer(host.strip())
    return AllowedPeer(host.strip(), _networks(sources.split(","), f"peer entry {text!r}"))


def _networks(sources: list[Any], what: str) -> tuple[Network, ...]:
    """CIDRs (an address alone is a /32 or /128), or the single word ``any``."""
    words = [str(source).strip() for source in sources]
    if words == ["any"]:
        return ANY_ADDRESS
    if not words or "" in words or "any" in words:
        raise ConfigError(f"{what}: name networks (CIDR, such as 10.0.0.0/24) or the single word any")
    networks = []
    for word in words:
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise ConfigError(f"{what}: {word!r} is not a network (CIDR, such as 10.0.0.0/24) or any") from None
    return tuple(networks)


@dataclass(frozen=True)
class M3uaPeer:
    """ASPs allowed to connect from ``networks``; when ``point_codes`` (or
    ``routing_contexts``) is given, their DATA must carry one of those OPCs (name one of
    those routing contexts)."""

    networks: tuple[Network, ...]
    point_codes: frozenset[int] | None = None
    routing_contexts: frozenset[int] | None = None

    def admits(self, opc: int, routing_context: int | None) -> bool:
        return ((self.point_codes is None or opc in self.point_codes)
                and (self.routing_contexts is None or routing_context in self.routing_contexts))


LOOPBACK_ASPS = M3uaPeer(LOOPBACK)


@dataclass(frozen=True)
class GatewayLink:
    """A signalling gateway (or STP) the agent joins as an ASP."""

    listen: Listen  # where the gateway listens
    routing_context: int | None = None
    asp_identifier: int | None = None


@dataclass
class M3uaConfig:
    """MAP CheckIMEI over M3UA: off while neither ``listen`` nor ``connect`` holds anything."""

    listen: list[Listen] = field(default_factory=list)
    connect: list[GatewayLink] = field(default_factory=list)
    point_code: int | None = None  # ours; None: answer DATA for any DPC (from the DPC it named)
    routing_contexts: frozenset[int] | None = None  # the ones ASPs may name; None: any
    global_title: str | None = None  # ours: the calling address of answers; None: the called address received
    traffic_mode: int = TrafficMode.LOADSHARE
    allow: list[M3uaPeer] = field(default_factory=list)  # empty: only ASPs connecting from loopback
    activation_timeout: float = ACTIVATION_TIMEOUT
    max_connections: int = MAX_CONNECTIONS  # per listener

    @property
    def enabled(self) -> bool:
        return bool(self.listen or self.connect)

    def peers_at(self, address: str | None) -> tuple[M3uaPeer, ...]:
        """The allow-list entries for an ASP connecting from ``address``; none: refused."""
        return tuple(peer for peer in self.allow or [LOOPBACK_ASPS] if _in(address, peer.networks))


@dataclass
class Limits:
    """Overload and durability (agent/admission.py, agent/durable.py)."""

    in_progress_per_peer: int = PER_PEER  # past it on a connection: S13 3004, MAP P-Abort resourceLimitation
    in_progress: int = TOTAL  # the same bound over every connection, S13 and MAP together
    commit_timeout: float = COMMIT_TIMEOUT  # seconds an answer waits for its first sight on disk; then 5012


@dataclass
class AgentConfig:
    origin_host: str = "eir.localdomain"
    origin_realm: str = "localdomain"
    listen: list[Listen] = field(default_factory=lambda: [Listen("127.0.0.1", 3868)])
    workers: int = 1  # agent processes sharing the listening ports (agent/workers.py); 1: one process, no supervisor
    allow: list[AllowedPeer] = field(default_factory=list)  # empty: only loopback peers
    registry: str = DEFAULT_REGISTRY
    profile: str = DEFAULT_PROFILE  # a shipped profile's name, or a YAML file's path
    log_level: str = "info"
    log_format: str = "text"  # text or json, for the agent's own log lines
    answer_log: str = "-"  # "-" for stderr, a file path, or "off"
    mask_imsi: bool = False
    watchdog_tw: float = 30.0
    max_message_length: int = 65536
    max_connections: int = MAX_CONNECTIONS  # per Diameter listener
    m3ua: M3uaConfig = field(default_factory=M3uaConfig)
    limits: Limits = field(default_factory=lambda: Limits())

    def admits(self, origin_host: str, address: str | None) -> bool:
        return self.refusal(origin_host, address) is None

    def refusal(self, origin_host: str, address: str | None) -> str | None:
        """Why a peer of this Origin-Host connecting from ``address`` is refused (for a log
        line that also says the name and the address), or None when it is admitted."""
        if not self.allow:
            if _in(address, LOOPBACK):
                return None
            return "not a loopback address, and without peers.allow only loopback peers are accepted"
        named = [entry for entry in self.allow if entry.matches(origin_host)]
        if any(_in(address, entry.networks) for entry in named):
            return None
        if not named:
            return "no peers.allow entry matches its Origin-Host"
        shown = ", ".join(str(entry) for entry in named[:3]) + (", ..." if len(named) > 3 else "")
        return f"outside the networks of the entries for its name: {shown}"


def parse_listen(text: str, transport: str = "tcp") -> Listen:
    """HOST:PORT or [IPv6]:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT")
    if transport not in TRANSPORTS:
        raise ConfigError(f"transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
    return Listen(host.strip("[]") or "0.0.0.0", int(port), transport)


def load_config(path: str | Path | None) -> AgentConfig:
    config = AgentConfig()
    if path is None:
        return config
    try:
        data = read_yaml(Path(path)) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeError, YamlFileError) as exc:  # YAML errors: line and column, in one line
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return _apply(config, data, str(path))


def _apply(config: AgentConfig, data: dict[str, Any], where: str) -> AgentConfig:
    known = {"origin_host", "origin_realm", "listen", "workers", "peers", "registry", "profile", "log", "diameter",
             "m3ua", "limits"}
    if "unknown_imei" in data:
        raise ConfigError(f"{where}: unknown_imei is gone: the profile decides unregistered IMEIs (grace, "
                          "unknown_tac); choose it with profile: NAME|PATH")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    config.origin_host = _text(data, "origin_host", config.origin_host, where)
    config.origin_realm = _text(data, "origin_realm", config.origin_realm, where)
    config.registry = _text(data, "registry", config.registry, where)
    config.profile = _text(data, "profile", config.profile, where)
    if "listen" in data:
        listen = data["listen"]
        items = [listen] if isinstance(listen, str) else _list(listen, "listen", where)
        config.listen = [_listen(item, where) for item in items]
    config.workers = _workers(data.get("workers", config.workers), where)
    peers = data.get("peers") or {}
    if not isinstance(peers, dict):
        raise ConfigError(f"{where}: peers must be a mapping with an allow list")
    config.allow = [_allowed(item, where) for item in _list(peers.get("allow") or [], "peers.allow", where)]
    _apply_log(config, data.get("log") or {}, where)
    diameter = data.get("diameter") or {}
    config.watchdog_tw = float(diameter.get("watchdog_tw", config.watchdog_tw))
    if config.watchdog_tw < 6:
        raise ConfigError(f"{where}: diameter.watchdog_tw must be at least 6 seconds (RFC 3539)")
    config.max_message_length = int(diameter.get("max_message_length", config.max_message_length))
    config.max_connections = _count(diameter, "max_connections", config.max_connections, "diameter", where)
    if "m3ua" in data:
        config.m3ua = _m3ua(data["m3ua"] or {}, where)
    config.limits = _limits(data.get("limits") or {}, where)
    return config


def _workers(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise ConfigError(f"{where}: workers is a whole number of agent processes, 1 to {MAX_WORKERS}")
    return value


def _limits(section: Any, where: str) -> Limits:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: limits must be a mapping")
    limits = Limits()
    unknown = sorted(set(section) - set(vars(limits)))
    if unknown:
        raise ConfigError(f"{where}: unknown limits key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(vars(limits)))}")
    for key in ("in_progress_per_peer", "in_progress"):
        value = section.get(key, getattr(limits, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: limits.{key} must be a whole number of requests, at least 1")
        setattr(limits, key, value)
    timeout = section.get("commit_timeout", limits.commit_timeout)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 60:
        raise ConfigError(f"{where}: limits.commit_timeout must be seconds, above 0 and at most 60")
    limits.commit_timeout = float(timeout)
    return limits


def parse_point_code(value: Any) -> int:
    """An ITU point code: 0..16383, or zone-area-signalling point as 3-8-3 bits (e.g. 1-2-3)."""
    text = str(value).strip()
    parts = text.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        zone, area, point = (int(p) for p in parts)
        if zone > 7 or area > 255 or point > 7:
            raise ConfigError(f"point code {text!r}: 3-8-3 means zone 0-7, area 0-255, point 0-7")
        return zone << 11 | area << 3 | point
    if not text.isdigit() or int(text) > MAX_POINT_CODE:
        raise ConfigError(f"point code {text!r} is not 0..{MAX_POINT_CODE} or zone-area-point (3-8-3)")
    return int(text)


def _m3ua(section: Any, where: str) -> M3uaConfig:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: m3ua must be a mapping")
    known = {"listen", "connect", "point_code", "routing_contexts", "global_title", "traffic_mode", "allow",
             "activation_timeout", "max_connections"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown m3ua key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    m3ua = M3uaConfig()
    listen = section.get("listen") or []
    m3ua.listen = [_listen(item, where) for item in ([listen] if isinstance(listen, str) else
                                                      _list(listen, "m3ua.listen", where))]
    m3ua.connect = [_gateway(item, where) for item in _list(section.get("connect") or [], "m3ua.connect", where)]
    if section.get("point_code") is not None:
        m3ua.point_code = parse_point_code(section["point_code"])
    if section.get("routing_contexts") is not None:
        m3ua.routing_contexts = _routing_contexts(section["routing_contexts"], "m3ua.routing_contexts", where)
    m3ua.allow = [_m3ua_peer(item, where) for item in _list(section.get("allow") or [], "m3ua.allow", where)]
    m3ua.max_connections = _count(section, "max_connections", m3ua.max_connections, "m3ua", where)
    timeout = section.get("activation_timeout", m3ua.activation_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}: m3ua.activation_timeout is a number of seconds above 0")
    m3ua.activation_timeout = float(timeout)
    if section.get("global_title") is not None:
        title = str(section["global_title"])
        if not title.isdigit() or not 1 <= len(title) <= 15:
            raise ConfigError(f"{where}: m3ua.global_title must be 1 to 15 digits (E.164)")
        m3ua.global_title = title
    mode = str(section.get("traffic_mode", "loadshare")).upper()
    if mode not in TrafficMode.__members__:
        raise ConfigError(f"{where}: m3ua.traffic_mode is override, loadshare or broadcast")
    m3ua.traffic_mode = TrafficMode[mode]
    return m3ua


def _routing_contexts(value: Any, key: str, where: str) -> frozenset[int]:
    rcs = [value] if isinstance(value, int) else _list(value, key, where)
    if not all(isinstance(rc, int) and not isinstance(rc, bool) and 0 <= rc <= 0xFFFFFFFF for rc in rcs):
        raise ConfigError(f"{where}: {key} are 32-bit unsigned integers")
    return frozenset(rcs)


def parse_networks(sources: Any, key: str, where: str) -> tuple[Network, ...]:
    """CIDR networks (a bare address is its own /32 or /128)."""
    sources = [sources] if isinstance(sources, str) else sources
    if not isinstance(sources, list) or not sources:
        raise ConfigError(f"{where}: {key} is a list of networks (CIDR)")
    try:
        return tuple(ipaddress.ip_network(str(s), strict=False) for s in sources)
    except ValueError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


def _m3ua_peer(item: Any, where: str) -> M3uaPeer:
    if not isinstance(item, dict) or "from" not in item or set(item) - {"from", "point_codes", "routing_contexts"}:
        raise ConfigError(f"{where}: each m3ua.allow entry is {{from: [CIDR, ...], point_codes: [PC, ...], "
                          "routing_contexts: [N, ...]}} (point_codes and routing_contexts optional)")
    point_codes = item.get("point_codes")
    if point_codes is not None:
        point_codes = [point_codes] if isinstance(point_codes, int | str) else _list(point_codes, "m3ua.allow "
                                                                                      "point_codes", where)
        point_codes = frozenset(parse_point_code(pc) for pc in point_codes)
    rcs = item.get("routing_contexts")
    return M3uaPeer(parse_networks(item["from"], "m3ua.allow from", where), point_codes,
                    None if rcs is None else _routing_contexts(rcs, "m3ua.allow routing_contexts", where))


def _count(section: dict[str, Any], key: str, default: int, name: str, where: str) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name}.{key} is a whole number above 0")
    return value


def _gateway(item: Any, where: str) -> GatewayLink:
    if isinstance(item, str):
        return GatewayLink(parse_listen(item))
    if not isinstance(item, dict) or "address" not in item:
        raise ConfigError(f"{where}: each m3ua.connect entry is HOST:PORT or {{address: HOST:PORT, "
                          "transport: tcp|sctp, routing_context: N, asp_identifier: N}")
    numbers = {}
    for key in ("routing_context", "asp_identifier"):
        value = item.get(key)
        if value is not None and not (isinstance(value, int) and 0 <= value <= 0xFFFFFFFF):
            raise ConfigError(f"{where}: m3ua.connect {key} must be a 32-bit unsigned integer")
        numbers[key] = value
    return GatewayLink(parse_listen(str(item["address"]), str(item.get("transport", "tcp"))), **numbers)


def _apply_log(config: AgentConfig, log: Any, where: str) -> None:
    if not isinstance(log, dict):
        raise ConfigError(f"{where}: log must be a mapping")
    config.log_level = str(log.get("level", config.log_level)).lower()
    if config.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: log.level {config.log_level!r} is not debug, info, warning or error")
    config.log_format = str(log.get("format", config.log_format))
    if config.log_format not in ("text", "json"):
        raise ConfigError(f"{where}: log.format must be text or json")
    config.answer_log = str(log.get("answers", config.answer_log))
    config.mask_imsi = bool(log.get("mask_imsi", config.mask_imsi))


def _listen(item: Any, where: str) -> Listen:
    if isinstance(item, str):
        return parse_listen(item)
    if isinstance(item, dict) and "address" in item:
        return parse_listen(str(item["address"]), str(item.get("transport", "tcp")))
    raise ConfigError(f"{where}: each listen entry is HOST:PORT or {{address: HOST:PORT, transport: tcp|sctp}}")


_ALLOW_FORMS = "PATTERN[@CIDR,...|@any] or {host: PATTERN, from: [CIDR, ...] | any}"


def _allowed(item: Any, where: str) -> AllowedPeer:
    """One peers.allow entry; without ``from`` (or @...) it admits its name from loopback only."""
    if isinstance(item, str):
        try:
            return parse_allowed_peer(item)
        except ConfigError as error:
            raise ConfigError(f"{where}: peers.allow: {error}") from None
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: each peers.allow entry is {_ALLOW_FORMS}")
    unknown = sorted(str(key) for key in set(item) - {"host", "from"})
    if unknown:
        raise ConfigError(f"{where}: peers.allow entry with unknown key(s) {', '.join(unknown)}; "
                          f"each entry is {_ALLOW_FORMS}")
    host = item.get("host", "*")
    if not isinstance(host, str) or not host.strip() or "@" in host:
        raise ConfigError(f"{where}: peers.allow host must be an Origin-Host pattern (networks go in from:)")
    if "from" not in item:
        return AllowedPeer(host.strip())
    sources = item["from"]
    sources = sources if isinstance(sources, list) else [sources]
    return AllowedPeer(host.strip(), _networks(sources, f"{where}: peers.allow {host} from"))


def _text(data: dict[str, Any], key: str, default: str, where: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _list(value: Any, key: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key} must be a list")
    return value


def _in(address: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` lies in one of ``networks``; an IPv4 client of a dual-stack
    listener (::ffff:10.0.0.1) is its IPv4 address."""
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
