"""``telecentre agent``: run the room agent, list the devices it can use, show its
settings. Also ``python -m room_agents.cli`` on a room PC.

- ``telecentre agent run [flags]`` (plain ``telecentre agent [flags]`` too, as before)
  reads the settings (room_agents.config: flags > environment > file > defaults),
  checks the room key, and runs the agent until SIGTERM or SIGINT, which make it
  leave its sessions cleanly first.
- ``telecentre agent devices [--json]`` lists cameras, microphones, speakers,
  displays and the PyAV formats this build can open.
- ``telecentre agent config [flags] [--json]`` prints the effective settings and
  where each came from, without running anything.

Imports stay light until a command runs: the parser is built by ``web.cli`` for
every ``telecentre`` command, and ``web.cli`` runs ``main`` for ``telecentre agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from room_agents.config import CONFIG_ENV, KEY_ENV, OPTIONS, Loaded, load
from room_agents.devices import inventory

log = logging.getLogger(__name__)
_SUMMARY = (__doc__ or "").split("\n")[0]


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (absent flags are absent, so precedence holds)."""
    flags = {o.name: getattr(args, o.name) for o in OPTIONS if hasattr(args, o.name)}
    for extra in ("config", "key"):
        if getattr(args, extra, None) is not None:
            flags[extra] = getattr(args, extra)
    return flags


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def until_signalled(coro: Any) -> None:
    """Run ``coro`` until it ends or SIGTERM/SIGINT arrives; then cancel it, so the
    agent leaves its sessions before it exits (systemd stops it with SIGTERM)."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass


def run_until_signalled(coro: Any) -> None:
    try:
        # Optional: uvloop comes with the server extra, a room PC may not have it.
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(until_signalled(coro))
    except KeyboardInterrupt:
        pass


# --- commands ---------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> None:
    # The media stack (aiortc, PyAV, numpy: 0.7 s) loads only to run the agent: this
    # module builds the parser of every ``telecentre`` command, the service's included.
    from room_agents.agent import RoomAgent

    loaded = load(_flags(args))
    config = loaded.config
    setup_logging(config.log_level)
    config.read_key()  # fail now, clearly, rather than in the connection loop
    log.info(
        "camera %s, microphone %s, speaker %s, %dx%d at %d fps",
        config.camera,
        config.microphone,
        config.speaker,
        config.width,
        config.height,
        config.fps,
    )
    run_until_signalled(RoomAgent(config).run())


def cmd_devices(args: argparse.Namespace) -> None:
    found = inventory(Path(args.root))
    print(json.dumps(found.to_json()) if args.json else found.to_text())


def cmd_config(args: argparse.Namespace) -> None:
    loaded: Loaded = load(_flags(args))
    described = loaded.describe()
    if args.json:
        print(json.dumps(described))
        return
    width = max(len(name) for name in described)
    for name, entry in described.items():
        print(f"{name.ljust(width)}  {entry['value']!s}  ({entry['from']})")


# --- the parser -------------------------------------------------------------------------

_METAVARS = {"server": "URL", "str": "TEXT", "int": "N", "float": "SECONDS", "path": "PATH"}
_METAVARS.update(dict.fromkeys(("camera", "microphone", "speaker", "content"), "SPEC"))


def _run_options(parser: argparse.ArgumentParser) -> None:
    """The settings as flags; every default is ``SUPPRESS`` so that an absent flag
    leaves the environment's or the file's value in place."""
    quiet = argparse.SUPPRESS
    parser.add_argument(
        "--config", default=quiet, help=f"TOML configuration file (or {CONFIG_ENV})"
    )
    for option in OPTIONS:
        metavar = "{" + ",".join(option.choices) + "}" if option.choices else None
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=quiet,
            metavar=metavar or _METAVARS.get(option.name) or _METAVARS[option.kind],
            help=option.help,
        )
    parser.add_argument("--key", default=quiet, help=f"the room key (prefer key_file or {KEY_ENV})")


def configure(agent: argparse.ArgumentParser) -> None:
    """Give ``agent`` its flags and its subcommands."""
    _run_options(agent)  # plain ``telecentre agent --server ...`` runs, as it always did
    agent.set_defaults(func=cmd_run)
    actions = agent.add_subparsers(dest="agent_action", metavar="{run,devices,config}")
    run = actions.add_parser("run", help="run the room agent (the default)")
    _run_options(run)
    run.set_defaults(func=cmd_run)
    devices = actions.add_parser(
        "devices", help="list cameras, microphones, speakers, displays and PyAV formats"
    )
    devices.add_argument("--json", action="store_true")
    devices.add_argument("--root", default="/", help=argparse.SUPPRESS)  # tests: a fake /
    devices.set_defaults(func=cmd_devices)
    show = actions.add_parser("config", help="print the effective settings and their origins")
    _run_options(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_config)


def add_agent_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``agent`` to the ``telecentre`` command's subparsers."""
    agent: argparse.ArgumentParser = sub.add_parser(
        "agent", help="the room agent: run it (the default), list devices, show settings"
    )
    configure(agent)
    return agent


def main(argv: Sequence[str] | None = None, *, description: str | None = _SUMMARY) -> int:
    """Run ``telecentre agent`` on the arguments after ``agent``: ``web.cli`` hands the
    command line here (with no description, as within the service's parser), so a
    room PC never builds the service's parsers nor imports their code."""
    parser = argparse.ArgumentParser(prog="telecentre agent", description=description)
    configure(parser)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as exc:  # configuration errors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
