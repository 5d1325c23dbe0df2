"""What a booking set off, kept in memory for the page that shows it once: the guests'
links exist nowhere else (only their hashes are stored). The application holds one
store under ``web.keys.RESULTS``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from orchestrator.desk.door import BookingOutcome

RESULT_SECONDS = 600.0


@dataclass(slots=True)
class OneTimeResults:
    """What a booking set off, kept in memory for the page that shows it once (the
    guests' links exist nowhere else: only their hashes are stored)."""

    ttl: float = RESULT_SECONDS
    cap: int = 500
    items: dict[str, tuple[float, str, BookingOutcome]] = field(default_factory=dict)

    def put(self, user_id: str, result: BookingOutcome, now: float) -> str:
        for key in [k for k, (until, _, _) in self.items.items() if until <= now]:
            del self.items[key]
        while len(self.items) >= self.cap:
            del self.items[next(iter(self.items))]
        key = secrets.token_urlsafe(18)
        self.items[key] = (now + self.ttl, user_id, result)
        return key

    def take(self, key: str, user_id: str, booking_id: str, now: float) -> BookingOutcome | None:
        found = self.items.get(key)
        if found is None or found[1] != user_id or found[2].booking_id != booking_id:
            return None
        del self.items[key]
        return found[2] if found[0] > now else None
