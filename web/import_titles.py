"""The title a calendar import gives an event that names nothing (no SUMMARY,
LOCATION or ORGANIZER: ``orchestrator.calendars.ical_in.parse``'s ``untitled``), in the
importer's language.

A booking's title is stored as text, in one language, and shown as it is to
everyone, so the language is chosen once, when the calendar is imported:

- ``telecentre calendar import``: the locale of whoever runs it, read as gettext
  reads it (``environment_language``);
- ``POST /api/v1/calendars/import``: the request's Accept-Language
  (``request_language``);
- feeds and CalDAV links, polled with nobody behind them: the default language
  (English), the parser's own ``UNTITLED``.
"""

from __future__ import annotations

from collections.abc import Mapping

from web.ui import i18n

_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")
_CONTEXT = "title of a calendar event that has none"


def untitled(lang: str) -> str:
    """The word for "Busy" in ``lang`` (English for a language we do not speak)."""
    return str(i18n.translations(lang).pgettext(_CONTEXT, "Busy"))


def _base(tag: str) -> str:
    """``fr`` for ``fr_FR.UTF-8``, ``fr-BE``, ``fr@euro``."""
    return tag.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].strip().lower()


def environment_language(environ: Mapping[str, str]) -> str:
    """The language of a command's messages as GNU gettext picks it: the first of
    LC_ALL, LC_MESSAGES and LANG that is set names the locale; under the C (POSIX)
    locale messages are not translated; otherwise LANGUAGE, a list separated by
    colons, comes first. The first language we speak wins; else the default."""
    locale = next((environ[name] for name in _LOCALE_VARIABLES if environ.get(name)), "")
    if _base(locale) in ("", "c", "posix"):
        return i18n.DEFAULT_LANGUAGE
    for tag in (*environ.get("LANGUAGE", "").split(":"), locale):
        if _base(tag) in i18n.LANGUAGES:
            return _base(tag)
    return i18n.DEFAULT_LANGUAGE


def request_language(accept_language: str) -> str:
    """The language an API client asks for in Accept-Language; else the default."""
    return i18n.choose_language(None, None, None, accept_language)
