"""Run freeDiameter (freeDiameterd 1.2.1) as a Diameter relay (DRA) on loopback for tests.

Everything lives in one folder (a pytest ``tmp_path``): the main configuration, the files of
the ``acl_wl`` and ``rt_default`` extensions, and the daemon's log. TCP by default, TLS off
(``SecPort = 0``), so no certificates are needed.

freeDiameter drops loopback addresses from ``ListenOn`` and listens on every address of the
host: declare only loopback peers, and connect to it through 127.0.0.1. With ``transport``
"sctp" (inside User-Mode Linux: the host kernel has no SCTP) it speaks SCTP alone (``No_TCP``),
to peers and from clients; give it ``listen_on`` an address of the guest's own that is not
loopback (tests/uml: a dummy interface), connect to it there, and put the peers there too.

Typical use in a fixture::

    @pytest.fixture
    def relay(tmp_path):
        config = RelayConfig(port=free_tcp_port(), peers=[Peer("eir.localdomain", port=eir_port)])
        with FreeDiameterRelay(tmp_path, config) as running:
            yield running

It starts in about 0.05 s and stops in about 0.1 s, provided every peer connected to it
answers its DPR or has closed its connection first; a connected peer that stays silent makes
its shutdown wait about 15 s. ``wait_peer_open`` tells when a ConnectPeer peer is usable.

``routes`` maps a Destination-Realm to the identity of the peer that serves it, or to several
(rt_default gives each the same score, +100); when not given, the realm of the relay goes to
the first peer. Among the candidates of equal highest score freeDiameter picks one at random
for each request (libfdproto ``fd_rtd_candidate_reorder``), so several peers of one realm share
its load; when a peer's connection breaks, the requests sent to it and not yet answered are
sent again, with the T flag, to the next candidate still open (libfdcore ``fd_p_sr_failover``),
and freeDiameter connects to it again every ``tc_timer`` s, give or take 2 s (at most 4 s
apart with ``tc_timer`` 1 or 2: ``fd_psm_next_timeout`` adds a random 0 to 4 s to
``tc_timer`` - 2).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.tools import LOOPBACK, require_tool, unavailable

EXTENSION_FILES = ("acl_wl.fdx", "rt_default.fdx", "dict_nasreq.fdx", "dict_dcca.fdx", "dict_dcca_3gpp.fdx")
# The 3GPP dictionary needs the two before it, in this order.
DICTIONARIES = ("dict_nasreq.fdx", "dict_dcca.fdx", "dict_dcca_3gpp.fdx")
_KNOWN_EXTENSION_DIRS = ("/usr/lib/freeDiameter", "/usr/lib/x86_64-linux-gnu/freeDiameter",
                         "/usr/local/lib/freeDiameter")


@dataclass(frozen=True, slots=True)
class Peer:
    """A ConnectPeer entry: freeDiameter connects to this peer (over TCP, without TLS)."""

    identity: str
    host: str = LOOPBACK
    port: int = 3868


TRANSPORTS = ("tcp", "sctp")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """What the relay is and whom it talks to."""

    port: int
    identity: str = "dra.localdomain"
    realm: str = "localdomain"
    peers: Sequence[Peer] = ()
    routes: Mapping[str, str | Sequence[str]] | None = None  # Destination-Realm -> peer identity, or several
    allowed: Sequence[str] = ("*.localdomain",)  # identities that may connect (acl_wl)
    tc_timer: int = 30  # seconds between attempts to (re)connect a peer
    tw_timer: int = 30  # watchdog interval (RFC 3539 Tw); freeDiameter refuses less than 6
    debug: bool = False  # one -d: more log lines
    debug_level: int = 0  # more -d: 2 logs each message routed, sent, received and failed over
    extra: Sequence[str] = field(default=())  # more lines for freeDiameter.conf
    transport: str = "tcp"  # or "sctp": with clients and with every peer
    listen_on: str = LOOPBACK  # where clients reach it (freeDiameter itself ignores a loopback ListenOn)

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport {self.transport!r} is not one of {', '.join(TRANSPORTS)}")

    def route_table(self) -> dict[str, tuple[str, ...]]:
        """Each Destination-Realm with the identities of the peers that serve it."""
        if self.routes is not None:
            return {realm: (peers,) if isinstance(peers, str) else tuple(peers) for realm, peers in self.routes.items()}
        return {self.realm: (self.peers[0].identity,)} if self.peers else {}

    def debug_flags(self) -> list[str]:
        return ["-d"] * max(self.debug_level, 1 if self.debug else 0)


def find_extension_dir() -> Path:
    """The folder of freediameter-extensions (``acl_wl.fdx`` and friends).

    Asks dpkg which files the package installed; falls back to the usual folders.
    Skips the test (fails it in CI) when the extensions are not installed.
    """
    candidates = [Path(p) for p in _dpkg_files("freediameter-extensions") if p.endswith("/acl_wl.fdx")]
    candidates = [c.parent for c in candidates] + [Path(p) for p in _KNOWN_EXTENSION_DIRS]
    for folder in candidates:
        if all((folder / name).is_file() for name in EXTENSION_FILES):
            return folder
    unavailable("freediameter-extensions is not installed (apt-get install -y freediameter-extensions)")


def _dpkg_files(package: str) -> list[str]:
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return listing.stdout.splitlines() if listing.returncode == 0 else []


def _quote(text: str) -> str:
    if '"' in text or "\n" in text:
        raise ValueError(f"cannot quote {text!r} in a freeDiameter configuration")
    return f'"{text}"'


def render_config(config: RelayConfig, folder: Path, extensions: Path) -> str:
    """The text of freeDiameter.conf; the extension files go next to it in ``folder``."""
    lines = [
        f"Identity = {_quote(config.identity)};",
        f"Realm = {_quote(config.realm)};",
        f"Port = {config.port};",
        "SecPort = 0;",
        *(["No_SCTP;", "No_IPv6;", "Prefer_TCP;"] if config.transport == "tcp" else ["No_TCP;", "No_IPv6;"]),
        f"ListenOn = {_quote(config.listen_on)};",
        f"TcTimer = {config.tc_timer};",
        f"TwTimer = {config.tw_timer};",
        f"LoadExtension = {_quote(str(extensions / 'acl_wl.fdx'))} : {_quote(str(folder / 'acl_wl.conf'))};",
        f"LoadExtension = {_quote(str(extensions / 'rt_default.fdx'))} : {_quote(str(folder / 'rt_default.conf'))};",
    ]
    lines += [f"LoadExtension = {_quote(str(extensions / name))};" for name in DICTIONARIES]
    lines += [_connect_peer(peer, config.transport) for peer in config.peers]
    lines += list(config.extra)
    return "\n".join(lines) + "\n"


def _connect_peer(peer: Peer, transport: str) -> str:
    flags = "No_SCTP; Prefer_TCP;" if transport == "tcp" else "No_TCP;"
    return (f"ConnectPeer = {_quote(peer.identity)} {{ ConnectTo = {_quote(peer.host)}; "
            f"Port = {peer.port}; No_TLS; {flags} }};")


def render_acl(config: RelayConfig) -> str:
    """acl_wl: these identities may connect without TLS (IPsec assumed) or with old-style TLS."""
    return "".join(f"ALLOW_OLD_TLS ALLOW_IPSEC {pattern}\n" for pattern in config.allowed)


def render_routes(config: RelayConfig) -> str:
    """rt_default: send each Destination-Realm to its peers, each with the same high score."""
    return "".join(f"dr={_quote(realm)} : {_quote(peer)} += 100 ;\n"
                   for realm, peers in config.route_table().items() for peer in peers)


class FreeDiameterRelay:
    """One freeDiameterd process: ``start`` writes the configuration, launches it and waits
    until its port accepts connections; ``stop`` terminates it (SIGTERM, then SIGKILL)."""

    def __init__(self, folder: Path, config: RelayConfig, executable: str | None = None) -> None:
        self.folder = Path(folder)
        self.config = config
        self.executable = executable
        self.config_path = self.folder / "freeDiameter.conf"
        self.log_path = self.folder / "freeDiameter.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None  # from launch until the port accepted
        self.stop_seconds: float | None = None  # from SIGTERM until the process was gone

    @property
    def address(self) -> tuple[str, int]:
        return self.config.listen_on, self.config.port

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def write_config(self) -> None:
        extensions = find_extension_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "acl_wl.conf").write_text(render_acl(self.config))
        (self.folder / "rt_default.conf").write_text(render_routes(self.config))
        self.config_path.write_text(render_config(self.config, self.folder, extensions))

    def start(self, timeout: float = 10.0) -> FreeDiameterRelay:
        executable = self.executable or require_tool("freeDiameterd")
        self.write_config()
        command = [executable, "-c", str(self.config_path), *self.config.debug_flags()]
        began = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.folder)
        try:
            self._wait_listening(began + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _wait_listening(self, deadline: float) -> None:
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"freeDiameterd exited with {self.process.returncode}:\n{self.log_tail()}")
            if _listening(self.process.pid, self.config.port, self.config.transport):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"freeDiameterd did not listen on {self.address}:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int | None:
        """Terminate the daemon and wait; kill it after ``timeout`` s. Returns its exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        began = time.monotonic()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.stop_seconds = time.monotonic() - began
        return process.returncode

    def wait_peer_open(self, identity: str, timeout: float = 5.0, times: int = 1) -> bool:
        """Wait until the log shows the peer ``identity`` entering state OPEN (CER/CEA done)
        ``times`` times in all (2: it opened, was lost, and opened again)."""
        deadline = time.monotonic() + timeout
        while self.times_opened(identity) < times:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def times_opened(self, identity: str) -> int:
        """How often the log shows the peer ``identity`` entering state OPEN."""
        return self.log_text().count(f"-> 'STATE_OPEN'\t'{identity}'")

    def times_left_open(self, identity: str, to: str | None = None) -> int:
        """How often the log shows the peer ``identity`` leaving state OPEN (freeDiameter logs
        "'STATE_OPEN'\t-> 'STATE_X'\t'identity'"): for state ``to`` alone when given, e.g.
        "STATE_CLOSED" (the connection broke) rather than "STATE_CLOSING_GRACE" (our stop)."""
        leaving = f"'STATE_OPEN'\t-> '{to}'" if to else "'STATE_OPEN'\t-> "
        return sum(1 for line in self.log_text().splitlines() if leaving in line and line.endswith(f"'{identity}'"))

    def transports_of(self, identity: str) -> list[str]:
        """The transport ("TCP", "SCTP") of each connection to the peer ``identity`` the log
        shows made: "Connected to 'identity' (SCTP,soc#7), remote capabilities: "."""
        marker = f"Connected to '{identity}' ("
        return [line.split(marker, 1)[1].split(",", 1)[0] for line in self.log_text().splitlines() if marker in line]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> FreeDiameterRelay:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _listening(pid: int, port: int, transport: str = "tcp") -> bool:
    """Whether process ``pid`` has a socket listening on ``port`` (TCP, or SCTP).

    Reads /proc (the listening socket's inode among the process's descriptors), so the check
    opens no connection that freeDiameter would log as an error. Where /proc cannot be read,
    falls back to connecting to the port on loopback (TCP only).
    """
    try:
        inodes = _socket_inodes(pid)
        listening = _listening_inodes(port) if transport == "tcp" else _listening_sctp_inodes(port)
    except OSError:
        return transport == "tcp" and _accepts((LOOPBACK, port))
    return not inodes.isdisjoint(listening)


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    return inodes


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets in state LISTEN (0A) on ``port``, from /proc/net/tcp and tcp6."""
    inodes: set[str] = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if table.name == "tcp6" and not table.exists():
            continue  # a kernel without IPv6
        lines = table.read_text().splitlines()[1:]
        for fields in (line.split() for line in lines):
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


SCTP_LISTEN = 10  # sk_state of a listening SCTP socket (TCP_LISTEN)


def _listening_sctp_inodes(port: int) -> set[str]:
    """Inodes of the SCTP endpoints listening on ``port``, from /proc/net/sctp/eps, whose
    columns are ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS (net/sctp/proc.c)."""
    lines = Path("/proc/net/sctp/eps").read_text().splitlines()[1:]
    return {fields[7] for fields in (line.split() for line in lines)
            if len(fields) > 7 and fields[3] == str(SCTP_LISTEN) and fields[5] == str(port)}


def _accepts(address: tuple[str, int]) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(address, timeout=0.5):
        return True
    return False
