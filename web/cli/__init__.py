"""The ``telecentre`` command: the service's commands (``web/cli/service.py`` and a
module per subject beside it) and the room PC's (``telecentre agent``,
``room_agents/cli.py``).

A room PC installs only the ``agent`` extra, so ``telecentre agent`` must load no
server code: this module imports only the agent's command line, and loads the
service's commands when the command is not ``agent``. That one import inside
``main`` is the reason this module exists; everything else imports at module level.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from room_agents import cli as agent_cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["agent"]:
        # The parser ``telecentre agent`` is within the service's parser, on its own.
        return agent_cli.main(args[1:], description=None)
    # Lazy on purpose: the service's commands import sqlmodel, jinja2, icalendar...,
    # which a room PC does not have (tests/test_architecture.py checks it).
    from web.cli import service

    return service.main(args)
