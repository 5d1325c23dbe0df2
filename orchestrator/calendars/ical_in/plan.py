"""What an iCalendar import would change, decided before anything is written.

The plan is a pure function of the parsed calendar, what that source imported
before, and the rooms: so it is tested without a database, and an import is
applied all at once or not at all. Rules (issue 3, "iCalendar in"):

- identity is (source, UID); re-importing the same calendar changes nothing;
- a higher SEQUENCE wins; an older one is skipped with its reason; an equal
  SEQUENCE with different content is taken as an update (many clients never bump
  SEQUENCE for edits of their own);
- rooms come from the source (a room's feed, ``--room``) or, failing that, from
  ATTENDEE;CUTYPE=ROOM and LOCATION matched against room names and aliases;
- an event that disappeared from an authoritative source (a feed, a CalDAV
  calendar, not a one-off file) cancels its future occurrences only, never history;
- a feed that comes back empty, or that would cancel most future occurrences at
  once, is held back and reported instead of applied.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from orchestrator.booking.conflicts import Conflict
from orchestrator.booking.values import CANCELLED, SeriesSpec

CONFLICT = "conflict"
"""The code of an occurrence left out because a room is taken (``BookingConflict``'s)."""
CREATE = "create"
UPDATE = "update"
CANCEL = "cancel"

# More than this share of a source's future series cancelled at once looks like a
# broken feed (an export that lost its events), not like a real change.
MASS_CANCEL_SHARE = 0.5
MASS_CANCEL_MIN = 3


@dataclass(frozen=True, slots=True)
class ImportSource:
    key: str  # "file:<name>", "feed:<id>", "caldav:<id>"
    rooms: tuple[str, ...] = ()  # room ids every event of this source books
    authoritative: bool = False  # True for feeds and CalDAV: missing events are gone


@dataclass(frozen=True, slots=True)
class RoomNames:
    room_id: str
    names: tuple[str, ...]  # the room's name and aliases


@dataclass(frozen=True, slots=True)
class Existing:
    """A series this source imported before."""

    booking_id: str
    spec: SeriesSpec
    room_ids: tuple[str, ...]
    has_future: bool
    import_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """One parsed event, with the room names its calendar gave."""

    spec: SeriesSpec
    room_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # create, update, cancel
    uid: str
    room_ids: tuple[str, ...] = ()
    spec: SeriesSpec | None = None
    booking_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    uid: str | None
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """An event imported after a lenient reading (``lenient-rrule``, ``made-up-title``):
    said in the report, so nobody wonders where its rule or title came from."""

    uid: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportConflict:
    """An occurrence of an imported event left out because a room was taken: the
    room, what holds it (``booking_id`` and ``session_id``; both None when it is an
    earlier occurrence of the same event) and the occurrence's interval (aware UTC)."""

    uid: str
    room_id: str
    booking_id: str | None
    session_id: str | None
    recurrence_id: datetime
    start: datetime
    end: datetime

    @classmethod
    def of(cls, uid: str, conflict: Conflict) -> ImportConflict:
        occurrence = conflict.occurrence
        return cls(
            uid,
            conflict.room_id,
            conflict.booking_id,
            conflict.session_id,
            occurrence.recurrence_id,
            occurrence.start,
            occurrence.end,
        )

    def describe(self) -> str:
        holder = f"booking {self.booking_id}" if self.booking_id else "this event"
        return (
            f"{self.uid}: room {self.room_id} is taken by {holder} "
            f"({self.start.isoformat()} - {self.end.isoformat()})"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "uid": self.uid,
            "code": CONFLICT,
            "room_id": self.room_id,
            "booking_id": self.booking_id,
            "session_id": self.session_id,
            "recurrence_id": self.recurrence_id.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ImportPlan:
    actions: tuple[Action, ...]
    skipped: tuple[Skip, ...]
    unchanged: int
    held_back: Skip | None = None

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind)


def normalise(name: str) -> str:
    """Room names as people type them: case, accents and spacing do not matter."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def room_index(rooms: Iterable[RoomNames]) -> list[tuple[str, frozenset[str]]]:
    """Each room's normalised names, computed once per import, not once per event."""
    return [(r.room_id, frozenset(normalise(n) for n in r.names)) for r in rooms]


def match_indexed(names: Iterable[str], index: list[tuple[str, frozenset[str]]]) -> tuple[str, ...]:
    wanted = {normalise(n) for n in names if n.strip()}
    if not wanted:
        return ()
    return tuple(dict.fromkeys(room_id for room_id, known in index if wanted & known))


def match_rooms(names: Iterable[str], rooms: Iterable[RoomNames]) -> tuple[str, ...]:
    """Room ids whose name or alias equals one of ``names`` (normalised)."""
    return match_indexed(names, room_index(rooms))


def _comparable(spec: SeriesSpec) -> SeriesSpec:
    # Room ids are not what a calendar says, and the store keeps an override's content
    # but not its own SEQUENCE: compare the calendar content only.
    overrides = tuple(replace(o, sequence=0) for o in spec.overrides)
    return replace(spec, rooms=(), overrides=overrides)


def spec_hash(spec: SeriesSpec) -> str:
    """A fingerprint of what the calendar said (value objects have a stable repr)."""
    return hashlib.sha256(repr(_comparable(spec)).encode()).hexdigest()


def _same(incoming: SeriesSpec, before: Existing) -> bool:
    if before.import_hash is not None and before.import_hash == spec_hash(incoming):
        return True
    return _comparable(incoming) == _comparable(before.spec)


def plan_import(
    source: ImportSource,
    incoming: Iterable[Incoming],
    existing: Mapping[str, Existing],
    rooms: Iterable[RoomNames],
) -> ImportPlan:
    index = room_index(rooms)
    actions: list[Action] = []
    skipped: list[Skip] = []
    unchanged = 0
    seen: set[str] = set()
    for item in incoming:
        spec = item.spec
        if spec.uid in seen:
            skipped.append(Skip(spec.uid, "duplicate-uid", "the calendar holds this UID twice"))
            continue
        seen.add(spec.uid)
        before = existing.get(spec.uid)
        room_ids = source.rooms or match_indexed(item.room_names, index)
        if not room_ids:
            skipped.append(
                Skip(spec.uid, "no-room", "no room of this network is named in the event")
            )
            continue
        if before is None:
            if spec.status == CANCELLED:
                skipped.append(Skip(spec.uid, "cancelled", "cancelled before it was imported"))
                continue
            actions.append(Action(CREATE, spec.uid, room_ids, spec))
            continue
        if spec.sequence < before.spec.sequence:
            skipped.append(
                Skip(
                    spec.uid,
                    "older-sequence",
                    f"SEQUENCE {spec.sequence} is older than {before.spec.sequence}",
                )
            )
            continue
        if _same(spec, before) and set(room_ids) == set(before.room_ids):
            unchanged += 1
            continue
        actions.append(Action(UPDATE, spec.uid, room_ids, spec, before.booking_id))
    if source.authoritative:
        for uid, before in existing.items():
            if uid not in seen and before.has_future and before.spec.status != CANCELLED:
                actions.append(Action(CANCEL, uid, before.room_ids, None, before.booking_id))
    held_back = _hold_back(source, seen, existing, actions)
    if held_back is not None:
        return ImportPlan((), tuple(skipped), unchanged, held_back)
    return ImportPlan(tuple(actions), tuple(skipped), unchanged)


def _hold_back(
    source: ImportSource,
    seen: set[str],
    existing: Mapping[str, Existing],
    actions: list[Action],
) -> Skip | None:
    if not source.authoritative:
        return None
    live = [e for e in existing.values() if e.has_future and e.spec.status != CANCELLED]
    if not seen and live:
        return Skip(None, "empty-feed", f"the calendar is empty; {len(live)} series kept")
    cancels = sum(1 for a in actions if a.kind == CANCEL)
    if cancels >= MASS_CANCEL_MIN and cancels > MASS_CANCEL_SHARE * len(live):
        return Skip(
            None,
            "mass-cancel",
            f"the calendar would cancel {cancels} of {len(live)} series at once; held back",
        )
    return None


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, when ``held_back``, would have done and did not)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    cancelled: int = 0
    skipped: list[Skip] = field(default_factory=list)
    conflicts: list[ImportConflict] = field(default_factory=list)
    held_back: Skip | None = None
    warnings: list[Note] = field(default_factory=list)

    def merge(self, other: ImportReport) -> None:
        """Add what another import did (one CalDAV pass applies several)."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.cancelled += other.cancelled
        self.skipped.extend(other.skipped)
        self.conflicts.extend(other.conflicts)
        self.warnings.extend(other.warnings)
        if other.held_back is not None:
            self.held_back = other.held_back

    def as_dict(self) -> dict[str, object]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "cancelled": self.cancelled,
            "skipped": [{"uid": s.uid, "code": s.code, "reason": s.reason} for s in self.skipped],
            "warnings": [
                {"uid": w.uid, "code": w.code, "message": w.message} for w in self.warnings
            ],
            "conflicts": [c.as_dict() for c in self.conflicts],
            "held_back": (
                None
                if self.held_back is None
                else {"code": self.held_back.code, "reason": self.held_back.reason}
            ),
        }
