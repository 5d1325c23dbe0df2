"""What the domain takes from outside: text, instants and dates.

The API, the pages, the CLI and calendar files hand the domain strings and times;
these rules say which of them the domain keeps. Each is one function called by the
domain command that takes the value (STYLE.md 14), so every door refuses the same
value with the same stable code, and none of them reaches the database, a mail
header or ``datetime`` arithmetic as a crash.

- **One line of text** (titles, names, aliases): no control character (C0, DEL and
  C1: NUL, tab, CR, LF, NEL...), no line or paragraph separator (U+2028, U+2029),
  no unpaired surrogate. A line break in a title would end a mail header
  (``Subject:``) and start another; NUL is refused by PostgreSQL; an unpaired
  surrogate (JSON's ``"\\ud800"``) is not Unicode text and cannot be written as
  UTF-8 by the database or the page.
- **Instants** are aware and within [``EARLIEST``, ``LATEST``); **wall-clock times
  and dates** a day inside that range, so that their instant in any zone is too.
  Years 1 and 9999 with a UTC offset of ±23:59 are valid ISO 8601 but have no UTC
  instant Python can hold (``OverflowError``); the range leaves thousands of years
  of slack for offsets, horizons and series, and is wide enough for any booking or
  query.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from orchestrator.errors import DomainError

MAX_NAME = 200
"""The longest title or name, in characters."""
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Instants are within [EARLIEST, LATEST)."""
EARLIEST_WALL = EARLIEST.replace(tzinfo=None) + timedelta(days=1)
LATEST_WALL = LATEST.replace(tzinfo=None) - timedelta(days=1)
"""Wall-clock times are within [EARLIEST_WALL, LATEST_WALL): no zone is a day off UTC."""
MAX_URL = 2000
"""The longest URL we keep or write (browsers and servers agree on this much)."""
MAX_INSTANT_TEXT = 64
"""An ISO 8601 instant with microseconds and an offset is 32 characters."""

# Cc (C0, DEL, C1), Cs (surrogates: only unpaired ones exist in a str), Zl, Zp.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NOT_ONE_LINE_RUN = re.compile(" *(?:" + _NOT_ONE_LINE.pattern + ")+ *")


def text_problem(value: str) -> str | None:
    """Why ``value`` is not one line of text (see the module doc), or None."""
    found = _NOT_ONE_LINE.search(value)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return f"an unpaired surrogate (U+{ord(char):04X})"
    if char in "\r\n\x85\u2028\u2029":
        return "a line break"
    return f"a control character (U+{ord(char):04X})"


def fold_line(value: str, max_length: int = MAX_NAME) -> str:
    """``value`` made one line: each run of what ``text_problem`` refuses becomes one
    space, the result stripped and cut to ``max_length``. For text from calendar
    files, whose events are kept even when their SUMMARY spans lines (RFC 5545
    allows it); a title typed in our API or pages is refused instead."""
    return _NOT_ONE_LINE_RUN.sub(" ", value).strip()[:max_length].rstrip()


def check_text(value: str, *, code: str, what: str, max_length: int) -> str:
    """``value`` as given, when it is one line of at most ``max_length`` characters
    (it may be empty); ``DomainError(code)`` otherwise. For values kept exactly as
    typed: URLs, user names, passwords."""
    if len(value) > max_length:
        raise DomainError(code, f"{what} has at most {max_length} characters")
    problem = text_problem(value)
    if problem is not None:
        raise DomainError(code, f"{what} holds {problem}")
    return value


def check_url(value: str, what: str = "a URL") -> str:
    """``value`` when it is an http(s) URL of at most ``MAX_URL`` characters without
    space, control character or unpaired surrogate (a line break would split the
    request line we send, or the iCalendar line we write); ``bad-request``."""
    if not value.startswith(("http://", "https://")) or " " in value:
        raise DomainError("bad-request", f"{what} is an http:// or https:// address")
    return check_text(value, code="bad-request", what=what, max_length=MAX_URL)


def one_line(value: str, *, code: str, what: str, max_length: int = MAX_NAME) -> str:
    """``value`` without its surrounding spaces, when that is one line of 1 to
    ``max_length`` characters; ``DomainError(code)`` otherwise. Titles and names."""
    cleaned = value.strip()
    if not cleaned:
        raise DomainError(code, f"{what} is empty")
    return check_text(cleaned, code=code, what=what, max_length=max_length)


def check_instant(value: datetime, what: str = "a time") -> datetime:
    """``value`` in UTC, when it is aware and within [EARLIEST, LATEST);
    ``DomainError("invalid-time")`` otherwise."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise DomainError("invalid-time", f"{what} needs its UTC offset")
    try:
        instant = value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the range by its offset
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise DomainError(
            "invalid-time",
            f"{what} is between {EARLIEST.year} and {LATEST.year - 1} (UTC)",
        )
    return instant


def parse_instant(text: str, what: str = "a time") -> datetime:
    """An ISO 8601 instant with its UTC offset (``Z`` allowed), as given, checked by
    ``check_instant``. A bare local time is refused: it would be ambiguous across the
    network's time zones."""
    try:
        if len(text) > MAX_INSTANT_TEXT:
            raise ValueError(text)
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DomainError("invalid-time", f"not an ISO 8601 time: {text[:40]!r}") from None
    if value.tzinfo is None:
        raise DomainError(
            "invalid-time", "give the time with its UTC offset, e.g. 2026-12-01T09:00+01:00"
        )
    check_instant(value, what)
    return value


def check_wall_time(value: datetime, what: str = "a time") -> datetime:
    """``value``, a naive wall-clock time within [EARLIEST_WALL, LATEST_WALL);
    ``DomainError("invalid-time")`` otherwise."""
    if value.tzinfo is not None:
        raise DomainError("invalid-time", f"{what} is a wall-clock time, without offset")
    if not EARLIEST_WALL <= value < LATEST_WALL:
        raise DomainError(
            "invalid-time",
            f"{what} is between {EARLIEST_WALL.year} and {LATEST_WALL.year}",
        )
    return value


def check_date(value: date, what: str = "a date") -> date:
    """``value`` when its whole day lies within [EARLIEST_WALL, LATEST_WALL)."""
    check_wall_time(datetime.combine(value, datetime.min.time()), what)
    check_wall_time(datetime.combine(value, datetime.max.time()), what)
    return value
