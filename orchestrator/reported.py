"""What the real-time plane reports, as the orchestrator takes it: instants and text.

Signalling checks the bounds of every field on the wire (docs/protocol.md §16), but
the functions that record reports must hold on their own for any float or string
they are handed (a node bus, a test, a future client), so each applies these rules
itself and never reaches ``datetime`` or the database as a crash:

- **Instants** (seconds since the Unix epoch) are refused with ``DomainError
  ("invalid-time")`` unless finite and within [``EARLIEST``, ``LATEST``), the range
  the protocol allows for reported instants. They are refused, not clamped: a
  milestone or a check dated in the year 1e300 says nothing true, and moving it to
  a bound would make it look true.
- **Text** a peer chose (check names and details, a session id it named) is kept,
  made safe: an unpaired surrogate (JSON's ``"\\ud800"``, which no UTF-8 database,
  page or mail can hold) becomes U+FFFD, a control character or line break a space,
  and the result is cut to its limit. It is sanitised rather than refused because
  the rest of the report (a failing camera) is worth keeping.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from orchestrator.errors import DomainError

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Reported instants lie within [EARLIEST, LATEST) (docs/protocol.md §16)."""

_EARLIEST_TS = EARLIEST.timestamp()
_LATEST_TS = LATEST.timestamp()
_SURROGATE = re.compile("[\ud800-\udfff]")
# Cc (C0, DEL, C1) and the line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def instant(at: float, what: str = "a reported time") -> datetime:
    """``at`` as an aware UTC datetime; ``DomainError("invalid-time")`` when it is
    not a finite number within [EARLIEST, LATEST)."""
    # Comparisons alone decide: NaN compares false, infinities and integers of any
    # size compare without converting (math.isfinite(10**400) would overflow).
    if (
        isinstance(at, bool)
        or not isinstance(at, int | float)
        or not _EARLIEST_TS <= at < _LATEST_TS
    ):
        raise DomainError(
            "invalid-time",
            f"{what} is between {EARLIEST.year} and {LATEST.year - 1} (seconds since 1970)",
        )
    return datetime.fromtimestamp(at, UTC)


def text(value: object, max_length: int) -> str:
    """``value`` as text that any database, page or mail can hold (see the module's
    rules), at most ``max_length`` characters."""
    cleaned = value if isinstance(value, str) else str(value)
    cleaned = cleaned[:max_length]
    cleaned = _SURROGATE.sub("\ufffd", cleaned)
    return _CONTROL.sub(" ", cleaned)
