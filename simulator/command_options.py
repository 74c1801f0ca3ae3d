"""Option parsing the ``eir sim`` commands share: a peer's HOST:PORT, with the port its
protocol listens on when omitted (3868 Diameter, 2905 M3UA)."""

from __future__ import annotations

from collections.abc import Callable

import click

from simulator.mme import parse_peer

AddressCallback = Callable[[click.Context, click.Parameter, str | None], tuple[str, int] | None]


def address(default_port: int) -> AddressCallback:
    """A click callback reading HOST:PORT (PORT ``default_port`` when omitted); None stays None."""
    def parse(_: click.Context, __: click.Parameter, value: str | None) -> tuple[str, int] | None:
        if value is None:
            return None
        try:
            return parse_peer(value, default_port)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return parse
