"""The agent's configuration: a YAML file (see agent/agent.example.yaml), overridden by flags."""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.context import DEFAULT_REGISTRY

TRANSPORTS = ("tcp", "sctp")
DEFAULT_PROFILE = "tj"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


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
    and, when ``networks`` is not empty, its source address lies in one of them."""

    host: str = "*"
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def admits(self, origin_host: str, address: str | None) -> bool:
        if not fnmatch.fnmatchcase(origin_host.lower(), self.host.lower()):
            return False
        return not self.networks or _in(address, self.networks)


@dataclass
class AgentConfig:
    origin_host: str = "eir.localdomain"
    origin_realm: str = "localdomain"
    listen: list[Listen] = field(default_factory=lambda: [Listen("127.0.0.1", 3868)])
    allow: list[AllowedPeer] = field(default_factory=list)  # empty: only loopback peers
    registry: str = DEFAULT_REGISTRY
    profile: str = DEFAULT_PROFILE  # a shipped profile's name, or a YAML file's path
    log_level: str = "info"
    log_format: str = "text"  # text or json, for the agent's own log lines
    answer_log: str = "-"  # "-" for stderr, a file path, or "off"
    mask_imsi: bool = False
    watchdog_tw: float = 30.0
    max_message_length: int = 65536

    def admits(self, origin_host: str, address: str | None) -> bool:
        if not self.allow:
            return _in(address, LOOPBACK)
        return any(entry.admits(origin_host, address) for entry in self.allow)


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
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return _apply(config, data, str(path))


def _apply(config: AgentConfig, data: dict[str, Any], where: str) -> AgentConfig:
    known = {"origin_host", "origin_realm", "listen", "peers", "registry", "profile", "log", "diameter"}
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
    return config


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


def _allowed(item: Any, where: str) -> AllowedPeer:
    if isinstance(item, str):
        return AllowedPeer(item)
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: each peers.allow entry is a host pattern or {{host: ..., from: [CIDR, ...]}}")
    sources = item.get("from") or []
    sources = [sources] if isinstance(sources, str) else sources
    try:
        networks = tuple(ipaddress.ip_network(str(s), strict=False) for s in sources)
    except ValueError as exc:
        raise ConfigError(f"{where}: peers.allow from: {exc}") from None
    return AllowedPeer(str(item.get("host", "*")), networks)


def _text(data: dict[str, Any], key: str, default: str, where: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _list(value: Any, key: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {key} must be a list")
    return value


def _in(address: str | None, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return any(ip in network for network in networks)
