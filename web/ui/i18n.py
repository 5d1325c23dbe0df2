"""Languages: gettext catalogues read from ``web/locale/<lang>/LC_MESSAGES/*.po``
(one file per area of the application, merged), the choice of language per request,
and locale-aware formatting of dates, times and numbers.

English is the source language (the msgids); French is complete, Dutch welcome.
The ``.po`` files are compiled in memory at start, so no build step is needed.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "nl": "Nederlands"}
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "tc_lang"
COLON = "%(label)s:"
"""A label before its value: French puts a no-break space before the colon, Dutch and
English none, so the colon is the translators', never glued on in code or templates."""


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


def with_colon(gettext: Callable[[str], str], label: str) -> str:
    """``label`` followed by a colon as ``gettext``'s language writes it."""
    return gettext(COLON) % {"label": label}


def colon_template(lang: str) -> str:
    """``COLON`` in ``lang`` (``%(label)s :`` in French, with a no-break space)."""
    return translations(lang).gettext(COLON)


def number_pattern(places: int, *, exact: bool = False, sign: bool = False) -> str:
    """A CLDR decimal pattern: grouped, up to (or, ``exact``, always) ``places`` decimals,
    a plus sign before positive numbers with ``sign``. The locale supplies the signs:
    a decimal comma in French and Dutch, a narrow no-break space between thousands in
    French."""
    body = "#,##0" + ("." + ("0" if exact else "#") * places if places > 0 else "")
    return f"+{body};-{body}" if sign else body


@dataclass(frozen=True, slots=True)
class Formatter:
    """Dates, times and numbers for one language, dates in a given IANA zone."""

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

    def number(
        self, value: float, places: int = 1, *, exact: bool = False, sign: bool = False
    ) -> str:
        """``value`` as the language writes it: ``24,5`` and ``-19,95`` in French and
        Dutch, ``24.5`` in English (see ``number_pattern``)."""
        return format_decimal(
            value, number_pattern(places, exact=exact, sign=sign), locale=self.lang
        )
