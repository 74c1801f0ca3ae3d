"""M3uaService's gateway links in-process, over loopback: a gateway that never accepts the
connection (its accept queue full, so the kernel drops our SYNs) costs one connect timeout
per attempt, reported, and the link keeps trying."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest

from agent.config import GatewayLink, Listen, M3uaConfig
from agent.map import MapAnswerer
from agent.map_server import M3uaService
from agent.service import EquipmentCheck
from registry.profile import Profile
from registry.store import Registry


@pytest.fixture
def silent_gateway() -> Iterator[int]:
    """A listening port that completes no more handshakes: backlog 0, one connection queued."""
    with socket.socket() as listener, socket.socket() as queued:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        queued.connect(listener.getsockname())
        yield listener.getsockname()[1]


def test_a_silent_gateway_times_out_each_attempt_and_the_link_keeps_trying(
        sqlite_registry: Registry, tj: Profile, silent_gateway: int, caplog: pytest.LogCaptureFixture) -> None:
    answerer = MapAnswerer(EquipmentCheck(sqlite_registry, tj))
    config = M3uaConfig(connect=[GatewayLink(Listen("127.0.0.1", silent_gateway), routing_context=100)])

    async def main() -> float:
        service = M3uaService(config, answerer, connect_timeout=0.3)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await service.start()
        await asyncio.sleep(1.8)  # the test: 0.3 s timeout, 1 s back-off, 0.3 s timeout, 2 s back-off...
        await service.close()
        return loop.time() - began

    with caplog.at_level(logging.WARNING, logger="eir.m3ua"):
        elapsed = asyncio.run(main())
    timeouts = [r.getMessage() for r in caplog.records if "no connection within 0.3 s" in r.getMessage()]
    assert len(timeouts) == 2, caplog.text
    assert timeouts[0] == f"M3UA gateway 127.0.0.1:{silent_gateway} (tcp): no connection within 0.3 s"
    assert elapsed < 3.0  # close() does not wait for a link that is still trying
