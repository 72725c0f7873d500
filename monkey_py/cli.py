"""The ``monkey`` command: start the server, check a configuration, list plugins."""

from __future__ import annotations

import dataclasses
import logging
import sys
from importlib.metadata import entry_points

import click

from . import __version__
from .config import ConfigError, Location, load_config
from .config.addresses import check_distinct, merged
from .config.loader import workers as parse_workers
from .config.model import MAX_WORKERS
from .config.values import listen as parse_listen
from .config.values import port as parse_port

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [pid %(process)d] %(message)s"
CONF_HELP = "Configuration directory holding monkey.conf, plugins.load and sites/."
COMMAND_LINE = Location("command line", 0)
# Entry points naming click commands that installed packages add to ``monkey``.
COMMAND_GROUP = "monkey_py.commands"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


def load(confdir: str, port: int | None = None, listen: tuple[str, ...] = (),
         workers: int | None = None):
    """Load ``confdir`` and apply the command-line overrides.

    ``-p`` can make several addresses one (``Listen 2001`` and ``Listen 2002`` both become
    ``0.0.0.0:PORT``): those are merged, since the user asked for that port on each.
    ``-o`` addresses are the user's own list, checked like Listen lines.
    """
    config = load_config(confdir)
    server = config.server
    changes = {}
    if listen:
        addresses = [parse_listen(value, COMMAND_LINE) for value in listen]
        check_distinct([(address, COMMAND_LINE) for address in addresses], "-o")
        changes["listen"] = addresses
    if port is not None:
        parse_port(str(port), COMMAND_LINE)
        changes["listen"] = merged([
            dataclasses.replace(address, port=port)
            for address in changes.get("listen", server.listen)
        ])
    if workers is not None:
        changes["workers"] = parse_workers(str(workers), COMMAND_LINE)
    if changes:
        config = dataclasses.replace(config, server=dataclasses.replace(server, **changes))
    return config


def fail(message: str, code: int = 2) -> None:
    click.echo(f"monkey: {message}", err=True)
    sys.exit(code)


def os_error_message(exc: OSError) -> str:
    """``exc`` as a user reads it: no ``[Errno N]`` prefix, the file named if there is one."""
    if exc.strerror is None:
        return str(exc)
    if exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror


class MonkeyCommands(click.Group):
    """The built-in commands, then those of the ``monkey_py.commands`` entry points.

    A plugin adds a command (the auth plugin's ``passwd``) without the core knowing it;
    an entry point is loaded only when its command is run or the help lists it.
    """

    def list_commands(self, ctx):
        installed = (ep.name for ep in entry_points(group=COMMAND_GROUP))
        return sorted({*super().list_commands(ctx), *installed})

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None:
            for ep in entry_points(group=COMMAND_GROUP, name=name):
                return ep.load()
        return command


@click.group(cls=MonkeyCommands, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--confdir", default="/etc/monkey", show_default=True,
              type=click.Path(file_okay=False), help=CONF_HELP)
@click.option("-p", "--port", type=int, help="Listen on this port instead of the configured ones.")
@click.option("-o", "--listen", multiple=True, metavar="ADDR",
              help="Listen on ADDR (PORT, HOST:PORT or [IPV6]:PORT) instead of the Listen "
                   "lines; repeatable.")
@click.option("-w", "--workers", type=int,
              help=f"Number of worker processes (0: one per CPU; at most {MAX_WORKERS}), "
                   "overriding Workers.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              help="The least severe message the error log shows.")
@click.version_option(__version__, "-V", "--version", prog_name="monkey_py")
@click.pass_context
def main(ctx, confdir, port, listen, workers, log_level):
    """monkey_py: a Monkey-compatible web server and reverse proxy.

    Without a command, start the server on CONFDIR. SIGTERM or SIGINT stop it after
    in-flight requests finish; SIGHUP reloads the configuration.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .master import Master, prepare

    setup_logging(log_level)
    try:
        config = load(confdir, port, listen, workers)
        pm = prepare(config)
    except ConfigError as exc:
        fail(str(exc))
    for warning in config.warnings:
        logging.warning("%s", warning)
    try:
        master = Master(config, pm, lambda: load(confdir, port, listen, workers))
        sys.exit(master.run())
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error_message(exc), 1)


@main.command()
@click.option("-c", "--confdir", type=click.Path(file_okay=False),
              help=CONF_HELP + "  [default: the one given before 'check', or /etc/monkey]")
@click.pass_context
def check(ctx, confdir):
    """Validate the configuration, plugins' own files included, and exit."""
    from .master import prepare

    confdir = confdir or ctx.parent.params["confdir"]

    try:
        config = load(confdir)
        prepare(config)
    except ConfigError as exc:
        fail(str(exc))
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{confdir}: configuration OK ({len(config.sites)} site(s), "
               f"{len(config.plugins)} plugin(s))")


@main.command()
def plugins():
    """List installed plugins, balancers and commands with their distribution and version."""
    from .pluginmanager import BALANCER_GROUP, PLUGIN_GROUP, describe

    for title, group in (("plugins", PLUGIN_GROUP), ("balancers", BALANCER_GROUP),
                         ("commands", COMMAND_GROUP)):
        click.echo(f"{title} ({group}):")
        found = describe(group)
        if not found:
            click.echo("  (none installed)")
        for item in found:
            click.echo(f"  {item.name:<20} {item.distribution} {item.version}  ({item.value})")
