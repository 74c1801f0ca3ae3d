"""The ``eir`` command: the root options, and each package's commands added side by side.

The agent (serve, check), the registry (registry, notices) and the simulator (sim, demo)
each define their own commands; only this module knows them all, so the running agent
never imports the test tool that plays the network around it.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import click

from agent.commands_agent import check, serve
from agent.commands_notices import notices
from agent.commands_registry import registry
from agent.context import DEFAULT_REGISTRY, CliContext
from registry.clock import SystemClock
from simulator.commands import demo, sim


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
    ctx.obj = CliContext(registry_url=registry_url, clock=SystemClock())  # the process's one clock


for command in (serve, check, demo, sim, registry, notices):
    main.add_command(command)
