"""Languages: gettext catalogues read from ``web/locale/<lang>/LC_MESSAGES/*.po``
(one file per area of the application, merged), the choice of language per request,
and locale-aware formatting of dates and times.

English is the source language (the msgids); French is complete, Dutch welcome.
The ``.po`` files are compiled in memory at start, so no build step is needed.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "nl": "Nederlands"}
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "tc_lang"


def catalogue(lang: str) -> Catalog:
    """Every area's messages for ``lang`` in one catalogue (later files win)."""
    merged = Catalog(locale=lang, domain="messages")
    folder = LOCALE_DIR / lang / "LC_MESSAGES"
    for path in sorted(folder.glob("*.po")) if folder.is_dir() else []:
        with path.open("rb") as fh:
            part = read_po(fh, locale=lang)
        for message in part:
            if message.id and message.string and not message.fuzzy:
                merged.add(message.id, message.string, context=message.context)
    return merged


@cache
def translations(lang: str) -> NullTranslations:
    if lang == DEFAULT_LANGUAGE or lang not in LANGUAGES:
        return NullTranslations()
    buffer = io.BytesIO()
    write_mo(buffer, catalogue(lang))
    buffer.seek(0)
    return Translations(buffer, domain="messages")


def parse_accept_language(header: str) -> list[str]:
    """Language tags by preference (q-values honoured, malformed parts ignored)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or len(tag) > 35:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q > 0:
            ranked.append((-q, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(
    query: str | None, cookie: str | None, user_locale: str | None, accept: str
) -> str:
    """The switch (query or cookie) wins, then the person's setting, then the browser."""
    for explicit in (query, cookie, user_locale):
        if explicit in LANGUAGES:
            return explicit
    for tag in parse_accept_language(accept):
        base = tag.replace("_", "-").split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


@dataclass(frozen=True, slots=True)
class Formatter:
    """Dates and times for one language, in a given IANA zone."""

    lang: str

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.lang)

    def datetime(self, value: dt.datetime | None, tz: str = "UTC", fmt: str = "medium") -> str:
        if value is None:
            return "–"
        return format_datetime(value, fmt, tzinfo=ZoneInfo(tz), locale=self.lang)

    def time(self, value: dt.datetime | None, tz: str = "UTC", fmt: str = "short") -> str:
        if value is None:
            return "–"
        return format_time(value, fmt, tzinfo=ZoneInfo(tz), locale=self.lang)

    def date(self, value: dt.datetime | None, tz: str = "UTC", fmt: str = "full") -> str:
        if value is None:
            return "–"
        return format_date(value.astimezone(ZoneInfo(tz)).date(), fmt, locale=self.lang)
