"""``netio.flow.InProgress``: the requests in progress of one connection, counted in the
shared load, refused past its bound, released once answered; answers that come later in
one turn of the loop leave in one write."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.admission import Admission
from netio.flow import InProgress


class Connection(InProgress):
    def __init__(self, load: Admission | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.load = load
        self.writes = 0

    def write_pending(self) -> None:
        self.writes += 1


def test_requests_count_in_the_connection_and_the_load_and_past_the_bound_are_busy() -> None:
    async def main() -> list[Any]:
        load = Admission(per_peer=2, total=10)
        connection = Connection(load)
        busy = [connection.admit() for _ in range(3)]
        counted = (connection.in_progress, load.in_progress, connection.busy)
        for _ in range(3):
            connection.answered()
        connection.settle()
        return [busy, counted, connection.in_progress, load.in_progress, load.refused]

    assert asyncio.run(main()) == [[False, False, True], (3, 3, True), 0, 0, 1]


def test_answers_given_later_in_one_turn_of_the_loop_leave_in_one_write() -> None:
    async def main() -> tuple[int, int]:
        connection = Connection(None)
        for _ in range(5):
            connection.admit()
        for _ in range(5):
            connection.release(1)
            connection.write_soon()
        await asyncio.sleep(0)
        return connection.writes, connection.in_progress

    assert asyncio.run(main()) == (1, 0)
