"""Every key the application holds its state under (``web.AppKey``), in one module
below every area: the API, the calendar routes and the pages read them from here, and
``web.app`` sets them, so no area imports the application that composes it (aiohttp's
FAQ on circular imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import jinja2
from aiohttp import web

if TYPE_CHECKING:
    # Types only: at run time this module imports nothing from the project, so any
    # module may read a key without importing what the keys hold.
    from web.booking_results import OneTimeResults
    from web.services import Services

SERVICES: Final[web.AppKey[Services]] = web.AppKey("services")
"""The database, the clock, signalling, the scheduler, the live view: ``web.app``."""

ENVIRONMENTS: Final = web.AppKey("environments", dict[str, jinja2.Environment])
"""One jinja2 environment per language (``web.ui.render.make_environments``)."""

RESULTS: Final[web.AppKey[OneTimeResults]] = web.AppKey("booking_results")
"""What each booking set off, for the page that shows it once (``web.ui.booking``)."""
