"""The ``eir`` command: parse, call a service, print. Nothing more lives here."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import PackageNotFoundError, version

import click

from agent.commands_agent import check, serve
from agent.context import DEFAULT_REGISTRY, CliContext


def _version() -> str:
    try:
        return version("eir")
    except PackageNotFoundError:
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="eir")
@click.option("--registry", "registry_url", envvar="EIR_REGISTRY", default=DEFAULT_REGISTRY, show_default=True,
              help="SQLAlchemy URL of the equipment registry (env EIR_REGISTRY).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
@click.pass_context
def main(ctx: click.Context, registry_url: str, log_level: str) -> None:
    """Equipment Identity Register: answers S13 ME-Identity-Check and MAP CheckIMEI from a
    national IMEI registry, and simulates the network around it."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = CliContext(registry_url=registry_url)


@main.command()
def demo() -> None:
    """Build a demo registry, start `eir serve` on loopback, send ECRs for every case (each
    list, paired match and mismatch, unknown, invalid) and MAP CheckIMEI v1-v3 over M3UA,
    print each answer with its reason, and stop the agent."""
    from simulator.demo import run_demo

    surprises = run_demo(click.echo)
    if surprises:
        click.echo(f"{surprises} answer(s) were not as expected", err=True)
        sys.exit(1)


main.add_command(serve)
main.add_command(check)

from simulator.commands import sim  # noqa: E402

main.add_command(sim)

from agent.commands_registry import registry  # noqa: E402

main.add_command(registry)

from agent.commands_notices import notices  # noqa: E402

main.add_command(notices)

if __name__ == "__main__":
    main()
