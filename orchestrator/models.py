"""The booking domain's tables (sqlmodel). Instants are aware UTC datetimes everywhere.

Changing a table means a new migration in ``orchestrator/migrations/versions``;
``tests/test_migrations.py`` fails while the two disagree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from common.sessions import AUTOMATIC, SCHEDULED

# Deterministic constraint names, so later migrations (SQLite batch mode included)
# can refer to them by name on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An instant: written from an aware datetime as UTC, read back as aware UTC.

    PostgreSQL stores ``timestamptz``; SQLite, which has no time zones, stores the
    naive UTC wall time. Naive input is refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} given for an instant; attach a zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def _instant(*, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=False, index=index)


def _optional_instant() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


def _wall_clock() -> Any:
    """A naive local wall-clock time; its zone is in a sibling column."""
    return Field(sa_type=sa.DateTime(timezone=False), nullable=False)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Centre(SQLModel, table=True):
    __tablename__ = "centre"

    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(unique=True)
    timezone: str
    created_at: datetime = _created()


class Room(SQLModel, table=True):
    __tablename__ = "room"
    __table_args__ = (sa.UniqueConstraint("centre_id", "name"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    centre_id: str = Field(foreign_key="centre.id", index=True)
    name: str
    key_hash: str
    key_generation: int = 1
    # Other names calendars use for this room (LOCATION, ATTENDEE CN), JSON list.
    aliases: str = Field(default="[]", sa_type=sa.Text)
    # Booking policy: buffer applies to the conflict test only, never to stored times.
    buffer_seconds: int = 0
    max_duration_seconds: int | None = None
    max_advance_days: int = 180
    # Cross-centre courtesy: bookings by people of other centres wait for this
    # room's centre staff to approve them (holding the slot meanwhile).
    requires_approval: bool = False
    # ICE policy: "all", or "relay" for a room whose network forbids direct UDP (the
    # agent then uses only TURN relay candidates); sent to the agent in its welcome.
    ice_policy: str = Field(default="all", sa_column_kwargs={"server_default": "all"})
    # Topology policy: this room's uplink is small, so its sessions always run on the
    # SFU, where it uploads one stream whatever the number of sites (sessions/topology).
    small_uplink: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = _created()


class Booking(SQLModel, table=True):
    """What was asked for: UTC instants plus the wall-clock times in their IANA zone,
    so a recurring series can later be expanded in local time across DST."""

    __tablename__ = "booking"
    __table_args__ = (sa.UniqueConstraint("source", "uid"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    title: str
    start_utc: datetime = _instant()
    end_utc: datetime = _instant()
    start_local: datetime = _wall_clock()
    end_local: datetime = _wall_clock()
    timezone: str
    lead_seconds: int = 60
    connect_mode: str = AUTOMATIC
    # The series, in iCalendar's terms (RFC 5545): UID, SEQUENCE, RRULE values (one per
    # line), RDATE/EXDATE as JSON lists of wall-clock times in ``timezone``.
    uid: str = Field(default_factory=lambda: new_id() + "@telecentre")
    source: str = "local"
    sequence: int = 0
    rrule: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    rdates: str = Field(default="[]", sa_type=sa.Text)
    exdates: str = Field(default="[]", sa_type=sa.Text)
    status: str = "confirmed"
    transparent: bool = False
    all_day: bool = False
    organiser: str | None = None
    # Fingerprint of the calendar content last imported for this booking: a re-import
    # of the same event is recognised as unchanged, whatever the store normalised.
    import_hash: str | None = None
    # Who booked it through the web application, and that person's centre then;
    # both empty for bookings from calendars, the CLI or the API.
    owner_id: str | None = Field(default=None, foreign_key="app_user.id", nullable=True)
    owner_centre_id: str | None = Field(default=None, foreign_key="centre.id", nullable=True)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class BookingRoom(SQLModel, table=True):
    __tablename__ = "booking_room"

    booking_id: str = Field(foreign_key="booking.id", primary_key=True)
    room_id: str = Field(foreign_key="room.id", primary_key=True, index=True)


class Session(SQLModel, table=True):
    """One meeting of a booking, with its lifecycle state; ``revision`` counts changes."""

    __tablename__ = "meeting_session"
    __table_args__ = (sa.UniqueConstraint("booking_id", "recurrence_id"),)

    id: str = Field(default_factory=new_id, primary_key=True)
    booking_id: str = Field(foreign_key="booking.id", index=True)
    start_utc: datetime = _instant(index=True)
    end_utc: datetime = _instant()
    lead_seconds: int = 60
    state: str = SCHEDULED
    revision: int = 1
    # Who cancelled it on purpose: "organiser" or "calendar" (orchestrator.booking.commands);
    # None otherwise, and for an occurrence skipped for a conflict (it has no room).
    cancelled_by: str | None = None
    # The occurrence's original start (RECURRENCE-ID, as a UTC instant); equal to
    # start_utc unless this occurrence was moved on its own.
    recurrence_id: datetime | None = _optional_instant()
    title: str | None = None  # set when one occurrence was retitled
    # Why the session failed, a stable code (``orchestrator.sessions.calls``: ``room-not-held``,
    # ``unschedulable``); None unless it failed for a reason of ours.
    failure: str | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()


class SessionTransitionRecord(SQLModel, table=True):
    """A step of a session's lifecycle (or a repeated ``ending`` warning), numbered
    from 1 per session."""

    __tablename__ = "session_transition"

    session_id: str = Field(foreign_key="meeting_session.id", primary_key=True)
    seq: int = Field(primary_key=True)
    state: str
    at: datetime = _instant()


class Participation(SQLModel, table=True):
    """A room's part in a session (the CDR line): what signalling reported about it."""

    __tablename__ = "participation"

    session_id: str = Field(foreign_key="meeting_session.id", primary_key=True)
    room_id: str = Field(foreign_key="room.id", primary_key=True, index=True)
    joined_at: datetime | None = _optional_instant()
    first_frame_at: datetime | None = _optional_instant()
    live_at: datetime | None = _optional_instant()
    left_at: datetime | None = _optional_instant()
    media_summary: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    rejoins: int = 0
    # No-show release: the room never joined, so it was freed for the rest of the slot.
    released_at: datetime | None = _optional_instant()


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: str = Field(default_factory=new_id, primary_key=True)
    token_hash: str = Field(unique=True)
    name: str
    created_at: datetime = _created()


class RoomSlot(SQLModel, table=True):
    """A room held by one occurrence over ``[start_utc, end_utc)``, buffer included.

    The table exists for the conflict rule: on PostgreSQL an exclusion constraint
    (btree_gist) refuses two overlapping slots of one room whichever connection
    writes them; on SQLite the write transaction is serialised and checked first,
    and triggers (migration 0007) refuse an overlapping slot all the same.
    Cancelled, transparent and released occurrences hold no slot. A room connects
    for a session only while it holds its slot (``orchestrator.sessions.calls``).
    """

    __tablename__ = "room_slot"
    # Free/busy is a range scan per room; the covering index keeps it one.
    __table_args__ = (
        sa.Index(
            "ix_room_slot_room_id_start_utc_end_utc_session_id",
            "room_id",
            "start_utc",
            "end_utc",
            "session_id",
        ),
    )

    room_id: str = Field(foreign_key="room.id", primary_key=True)
    session_id: str = Field(foreign_key="meeting_session.id", primary_key=True, index=True)
    start_utc: datetime = _instant()
    end_utc: datetime = _instant()


class Feed(SQLModel, table=True):
    """An iCalendar feed subscribed to, polled with ETag / If-Modified-Since."""

    __tablename__ = "feed"

    id: str = Field(default_factory=new_id, primary_key=True)
    url: str = Field(sa_type=sa.Text)
    room_id: str | None = Field(default=None, foreign_key="room.id", nullable=True)
    interval_seconds: int = 300
    etag: str | None = None
    last_modified: str | None = None
    last_polled_at: datetime | None = _optional_instant()
    last_status: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    created_at: datetime = _created()


class CalendarToken(SQLModel, table=True):
    """The secret in a subscription URL of a room's or a centre's feed; kept hashed."""

    __tablename__ = "calendar_token"

    id: str = Field(default_factory=new_id, primary_key=True)
    token_hash: str = Field(unique=True)
    room_id: str | None = Field(default=None, foreign_key="room.id", nullable=True)
    centre_id: str | None = Field(default=None, foreign_key="centre.id", nullable=True)
    created_at: datetime = _created()


class CalDavLink(SQLModel, table=True):
    """A room's calendar on a CalDAV server, kept in step both ways."""

    __tablename__ = "caldav_link"

    id: str = Field(default_factory=new_id, primary_key=True)
    room_id: str = Field(foreign_key="room.id", index=True)
    calendar_url: str = Field(sa_type=sa.Text)
    username: str | None = None
    # The server needs the password itself, so it cannot be hashed; keep the data
    # directory private (docs/architecture.md).
    password: str | None = Field(default=None, repr=False)
    sync_token: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    last_synced_at: datetime | None = _optional_instant()
    last_status: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    created_at: datetime = _created()


class CalDavItem(SQLModel, table=True):
    """One calendar resource on the server and the booking it stands for."""

    __tablename__ = "caldav_item"

    link_id: str = Field(foreign_key="caldav_link.id", primary_key=True)
    href: str = Field(primary_key=True)
    uid: str
    etag: str | None = None
    booking_id: str | None = Field(default=None, foreign_key="booking.id", nullable=True)
    # The booking's sequence and update time when last written to or read from the
    # server: a newer booking means a local edit to push.
    synced_sequence: int = 0
    synced_at: datetime | None = _optional_instant()


class User(SQLModel, table=True):
    """A person who logs in to the web application.

    ``role`` is ``admin`` (everything), ``staff`` (their centre's rooms and bookings,
    approvals for their rooms) or ``organiser`` (books). The password is kept as an
    argon2 hash only.
    """

    __tablename__ = "app_user"

    id: str = Field(default_factory=new_id, primary_key=True)
    email: str = Field(unique=True)
    name: str
    password_hash: str = Field(repr=False)
    role: str
    centre_id: str | None = Field(default=None, foreign_key="centre.id", nullable=True)
    locale: str | None = None
    timezone: str | None = None
    disabled: bool = False
    created_at: datetime = _created()


class WebSession(SQLModel, table=True):
    """A login: the cookie holds a random secret, the table its SHA-256."""

    __tablename__ = "web_session"

    token_hash: str = Field(primary_key=True)
    user_id: str = Field(foreign_key="app_user.id", index=True)
    created_at: datetime = _created()
    expires_at: datetime = _instant()


class LoginThrottle(SQLModel, table=True):
    """Failed logins per key (``orchestrator.people.accounts.throttle_keys``: an account from
    one source address, a source address, an account from everywhere), and for an
    account from one address, until when that address is trusted for it (it logged
    in from there)."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True)
    failures: int = 0
    first_failure_at: datetime = _instant()
    locked_until: datetime | None = _optional_instant()
    trusted_until: datetime | None = _optional_instant()


class Approval(SQLModel, table=True):
    """A room's centre deciding on a booking from another centre."""

    __tablename__ = "approval"

    booking_id: str = Field(foreign_key="booking.id", primary_key=True)
    room_id: str = Field(foreign_key="room.id", primary_key=True, index=True)
    state: str = "pending"  # pending | approved | declined
    requested_at: datetime = _created()
    decided_at: datetime | None = _optional_instant()
    decided_by: str | None = Field(default=None, foreign_key="app_user.id", nullable=True)
    note: str | None = None


class Guest(SQLModel, table=True):
    """A named person joining a booking's sessions from a browser, by a personal link
    whose secret is kept hashed."""

    __tablename__ = "guest"

    id: str = Field(default_factory=new_id, primary_key=True)
    booking_id: str = Field(foreign_key="booking.id", index=True)
    name: str
    email: str | None = None
    token_hash: str = Field(unique=True)
    revoked_at: datetime | None = _optional_instant()
    created_at: datetime = _created()


class PanelToken(SQLModel, table=True):
    """The secret in a room panel's URL (the tablet in the room has no login)."""

    __tablename__ = "panel_token"

    id: str = Field(default_factory=new_id, primary_key=True)
    token_hash: str = Field(unique=True)
    room_id: str = Field(foreign_key="room.id", index=True)
    created_at: datetime = _created()


class OutboxMail(SQLModel, table=True):
    """An email waiting for (or done with) the SMTP server: written in the same
    transaction as what it announces, sent by a background task, retried."""

    __tablename__ = "outbox_mail"

    id: str = Field(default_factory=new_id, primary_key=True)
    recipient: str
    subject: str
    body: str = Field(sa_type=sa.Text)
    # An attached calendar object (text/calendar), with its METHOD.
    ics: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    ics_method: str | None = None
    kind: str = "notice"
    created_at: datetime = _created()
    sent_at: datetime | None = _optional_instant()
    attempts: int = 0
    next_attempt_at: datetime = _created()
    last_error: str | None = Field(default=None, sa_type=sa.Text, nullable=True)


class RoomReadinessRecord(SQLModel, table=True):
    """A room's latest readiness check, whatever it was run for (issue 5)."""

    __tablename__ = "room_readiness"

    room_id: str = Field(foreign_key="room.id", primary_key=True)
    # The session the check was run for; None for a check at connection. No foreign
    # key: the latest check outlives a session rebooked away.
    session_id: str | None = None
    ok: bool
    # [{"name", "ok", "detail"}, ...] as the agent sent them (JSON).
    checks: str = Field(sa_type=sa.Text)
    checked_at: datetime = _instant()
    received_at: datetime = _instant()


class SessionReadiness(SQLModel, table=True):
    """A room's latest readiness check for one session, and what its centre's staff
    were told about it: ``alerts`` failure alerts sent, ``alerting`` while the latest
    alert still stands (a passing check then sends a recovery notice)."""

    __tablename__ = "session_readiness"

    session_id: str = Field(
        sa_column=sa.Column(
            sa.String(),
            sa.ForeignKey("meeting_session.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    room_id: str = Field(foreign_key="room.id", primary_key=True, index=True)
    ok: bool
    checks: str = Field(sa_type=sa.Text)
    checked_at: datetime = _instant()
    received_at: datetime = _instant()
    alerts: int = 0
    alerting: bool = False
