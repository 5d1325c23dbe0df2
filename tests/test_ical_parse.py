"""iCalendar in: each fixture in tests/fixtures/ics/ is an export in the style of a
real calendar (Outlook, Google, Nextcloud, Apple, Thunderbird, Evolution) or a
broken file, and its test asserts the exact occurrences in UTC and in the room's
local time, plus every skip with its reason.

Row format: ``start end | room-local start end | status [transparent] | title``,
with `` | rid ...`` when the occurrence moved from its original start.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.booking.recurrence import expand, validate_rrule, zone_info
from orchestrator.booking.values import Occurrence, SeriesSpec
from orchestrator.calendars.ical_in.parse import (
    CalendarError,
    ParsedCalendar,
    ParsedEvent,
    RoomHint,
    Skipped,
    parse_calendar,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
WINDOW = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))

OUTLOOK_UID = (
    "040000008200E00074C5B7101A82E00800000000D0B5C5A1E5A1DB01000000000000000010000000"
    "A1B2C3D4E5F60718293A4B5C6D7E8F90"
)


def outlook_uid(suffix: str) -> str:
    return f"040000008200E00074C5B7101A82E00800000000{suffix}"


ZONES_UID = "F1E2D3C4B5A6DB01000000000000000010000000"
EXCHANGE_UID = "E1C2D3E4F5A6DB01000000000000000010000000"
ALL_DAY_UID = "A0A0A0A0A0A0DB01000000000000000010000000"


@dataclass(frozen=True)
class Series:
    zone: str
    rows: tuple[str, ...]
    rooms: tuple[str, ...] = ()
    all_day: bool = False
    floating: bool = False


@dataclass(frozen=True)
class Case:
    fixture: str
    room_zone: str
    series: dict[str, Series]
    skipped: tuple[tuple[str | None, str | None, str], ...] = ()
    calendar_zone: str | None = None
    # (uid, recurrence id, code) of what was read leniently: said, never silent.
    warnings: tuple[tuple[str | None, str | None, str], ...] = ()
    notes: str = field(default="")


def row(o: Occurrence, room_zone: str) -> str:
    zone = ZoneInfo(room_zone)
    local_start, local_end = o.start.astimezone(zone), o.end.astimezone(zone)
    text = (
        f"{o.start:%Y-%m-%dT%H:%MZ} {o.end:%Y-%m-%dT%H:%MZ} | "
        f"{local_start:%Y-%m-%dT%H:%M} {local_end:%Y-%m-%dT%H:%M} | "
        f"{o.status}{' transparent' if o.transparent else ''} | {o.title}"
    )
    if o.recurrence_id != o.start:
        text += f" | rid {o.recurrence_id:%Y-%m-%dT%H:%MZ}"
    return text


CASES = [
    Case(
        "outlook_romance_weekly.ics",
        "Europe/Paris",
        notes="Windows TZID, UNTIL in UTC, EXDATE, a moved occurrence, rooms as resources",
        series={
            OUTLOOK_UID: Series(
                "Europe/Paris",
                (
                    "2027-03-15T08:00Z 2027-03-15T09:00Z | 2027-03-15T09:00 2027-03-15T10:00 | confirmed | Point hebdomadaire IT77 / Bright City",
                    "2027-03-29T07:00Z 2027-03-29T08:00Z | 2027-03-29T09:00 2027-03-29T10:00 | confirmed | Point hebdomadaire IT77 / Bright City",
                    "2027-04-06T12:00Z 2027-04-06T13:00Z | 2027-04-06T14:00 2027-04-06T15:00 | confirmed | Point hebdomadaire (décalé au mardi) | rid 2027-04-05T07:00Z",
                    "2027-04-12T07:00Z 2027-04-12T08:00Z | 2027-04-12T09:00 2027-04-12T10:00 | confirmed | Point hebdomadaire IT77 / Bright City",
                ),
                rooms=(
                    "Salle Fontainebleau",
                    "salle.fontainebleau",
                    "Bright City Amsterdam",
                    "bright-city-room",
                ),
            )
        },
    ),
    Case(
        "outlook_zones.ics",
        "Europe/Amsterdam",
        notes="Windows names, 'Customized Time Zone', Outlook for Mac display name, fixed offset",
        series={
            outlook_uid(f"{ZONES_UID}AA01"): Series(
                "Europe/Berlin",
                (
                    "2027-06-10T08:00Z 2027-06-10T09:30Z | 2027-06-10T10:00 2027-06-10T11:30 | confirmed | Delegatie Amsterdam - Fontainebleau",
                ),
                rooms=("SWC Bright City", "bright-city"),
            ),
            outlook_uid(f"{ZONES_UID}AA02"): Series(
                "America/New_York",
                (
                    "2027-06-10T13:00Z 2027-06-10T14:00Z | 2027-06-10T15:00 2027-06-10T16:00 | confirmed | Call with the Montreal office",
                ),
                rooms=("Salle Fontainebleau",),
            ),
            outlook_uid(f"{ZONES_UID}AA03"): Series(
                "Europe/Berlin",
                (
                    "2027-03-22T08:00Z 2027-03-22T09:00Z | 2027-03-22T09:00 2027-03-22T10:00 | confirmed | Weekly across the March change",
                    "2027-03-29T07:00Z 2027-03-29T08:00Z | 2027-03-29T09:00 2027-03-29T10:00 | confirmed | Weekly across the March change",
                    "2027-04-05T07:00Z 2027-04-05T08:00Z | 2027-04-05T09:00 2027-04-05T10:00 | confirmed | Weekly across the March change",
                ),
            ),
            outlook_uid(f"{ZONES_UID}AA04"): Series(
                "Europe/Amsterdam",
                (
                    "2027-09-30T12:00Z 2027-09-30T13:00Z | 2027-09-30T14:00 2027-09-30T15:00 | confirmed | Outlook for Mac display-name zone",
                ),
            ),
            outlook_uid(f"{ZONES_UID}AA05"): Series(
                "Etc/GMT-1",
                (
                    "2027-07-01T08:00Z 2027-07-01T09:00Z | 2027-07-01T10:00 2027-07-01T11:00 | confirmed | Fixed-offset custom zone",
                ),
            ),
        },
    ),
    Case(
        "outlook_all_day.ics",
        "Europe/Paris",
        notes="VALUE=DATE, a timed midnight-to-midnight X-MICROSOFT-CDO-ALLDAYEVENT, BUSYSTATUS:FREE",
        series={
            outlook_uid(f"{ALL_DAY_UID}BB01"): Series(
                "UTC",
                (
                    "2027-05-24T22:00Z 2027-05-26T22:00Z | 2027-05-25T00:00 2027-05-27T00:00 | confirmed transparent | Salon des tiers-lieux (salle réservée)",
                ),
                rooms=("Salle Fontainebleau",),
                all_day=True,
                floating=True,
            ),
            outlook_uid(f"{ALL_DAY_UID}BB02"): Series(
                "Europe/Paris",
                (
                    "2027-05-31T22:00Z 2027-06-01T22:00Z | 2027-06-01T00:00 2027-06-02T00:00 | confirmed | Maintenance de la salle",
                ),
                rooms=("Salle Fontainebleau",),
                all_day=True,
            ),
            outlook_uid(f"{ALL_DAY_UID}BB03"): Series(
                "Europe/Paris",
                (
                    "2027-06-03T07:00Z 2027-06-03T15:00Z | 2027-06-03T09:00 2027-06-03T17:00 | confirmed transparent | Permanence (libre)",
                ),
            ),
        },
    ),
    Case(
        "google_export.ics",
        "Europe/Paris",
        calendar_zone="Europe/Paris",
        notes="X-WR-TIMEZONE, UTC and floating times, override, cancelled instance, UTC EXDATE",
        series={
            "7kukuqrfedlm2f9t0vbhqf7pgp@google.com": Series(
                "Europe/Paris",
                (
                    "2027-03-10T13:00Z 2027-03-10T14:00Z | 2027-03-10T14:00 2027-03-10T15:00 | confirmed | Délégation d'Amsterdam",
                ),
                rooms=("Salle Fontainebleau", "4 rue de la Paroisse", "77300 Fontainebleau"),
            ),
            "3m1e5r2jq5n2m0k8o4c9v6b1ad@google.com": Series(
                "Europe/Paris",
                (
                    "2027-03-02T09:00Z 2027-03-02T10:00Z | 2027-03-02T10:00 2027-03-02T11:00 | confirmed | Comité de pilotage",
                    "2027-03-09T10:30Z 2027-03-09T11:30Z | 2027-03-09T11:30 2027-03-09T12:30 | confirmed | Comité de pilotage (décalé) | rid 2027-03-09T09:00Z",
                    "2027-03-16T09:00Z 2027-03-16T10:00Z | 2027-03-16T10:00 2027-03-16T11:00 | cancelled | Comité de pilotage",
                ),
                rooms=("Salle Fontainebleau",),
            ),
            "0a1b2c3d4e5f6g7h8i9j0k1l2m@google.com": Series(
                "Europe/Paris",
                (
                    # UTC DTSTART read in X-WR-TIMEZONE: 09:00 local across the change.
                    "2027-03-26T08:00Z 2027-03-26T09:00Z | 2027-03-26T09:00 2027-03-26T10:00 | confirmed | Permanence du matin",
                    "2027-03-27T08:00Z 2027-03-27T09:00Z | 2027-03-27T09:00 2027-03-27T10:00 | confirmed | Permanence du matin",
                    "2027-03-28T07:00Z 2027-03-28T08:00Z | 2027-03-28T09:00 2027-03-28T10:00 | confirmed | Permanence du matin",
                    "2027-03-29T07:00Z 2027-03-29T08:00Z | 2027-03-29T09:00 2027-03-29T10:00 | confirmed | Permanence du matin",
                ),
            ),
            "9z8y7x6w5v4u3t2s1r0q9p8o7n@google.com": Series(
                "Europe/Paris",
                (
                    "2027-03-31T22:00Z 2027-04-01T22:00Z | 2027-04-01T00:00 2027-04-02T00:00 | confirmed transparent | Salle réservée (journée portes ouvertes)",
                ),
                all_day=True,
            ),
            "f1o2a3t4i5n6g7@google.com": Series(
                "Europe/Paris",
                (
                    "2027-04-05T07:00Z 2027-04-05T08:00Z | 2027-04-05T09:00 2027-04-05T10:00 | confirmed | Heure flottante",
                ),
            ),
        },
    ),
    Case(
        "google_invited_instances.ics",
        "Europe/Paris",
        calendar_zone="America/Montreal",
        notes="overrides without their master become one series; Montreal seen from Paris",
        series={
            "5q8v1n3c7d2k4m6p9r0s1t2u3v@google.com": Series(
                "America/Montreal",
                (
                    "2027-03-10T14:00Z 2027-03-10T15:00Z | 2027-03-10T15:00 2027-03-10T16:00 | confirmed | Échange Montréal – Fontainebleau",
                    "2027-03-17T14:00Z 2027-03-17T15:00Z | 2027-03-17T15:00 2027-03-17T16:00 | confirmed | Échange Montréal – Fontainebleau (décalé) | rid 2027-03-17T13:00Z",
                ),
                rooms=("Salle Fontainebleau", "salle.fontainebleau"),
            )
        },
    ),
    Case(
        "nextcloud_this_and_future.ics",
        "Europe/Paris",
        notes="VTIMEZONE with IANA TZID, COUNT, EXDATE list, THISANDFUTURE, a later single override",
        series={
            "2f1c6a1e-8d3b-4c41-9d7e-5b0c3f4a9e21": Series(
                "Europe/Paris",
                (
                    "2027-09-02T12:00Z 2027-09-02T13:00Z | 2027-09-02T14:00 2027-09-02T15:00 | confirmed | Atelier numérique",
                    "2027-09-09T12:00Z 2027-09-09T13:00Z | 2027-09-09T14:00 2027-09-09T15:00 | confirmed | Atelier numérique",
                    "2027-09-30T12:00Z 2027-09-30T13:00Z | 2027-09-30T14:00 2027-09-30T15:00 | confirmed | Atelier numérique",
                    "2027-10-07T14:00Z 2027-10-07T15:00Z | 2027-10-07T16:00 2027-10-07T17:00 | confirmed | Atelier numérique (nouvel horaire) | rid 2027-10-07T12:00Z",
                    "2027-10-14T14:00Z 2027-10-14T15:00Z | 2027-10-14T16:00 2027-10-14T17:00 | confirmed | Atelier numérique (nouvel horaire) | rid 2027-10-14T12:00Z",
                    "2027-10-21T14:00Z 2027-10-21T15:00Z | 2027-10-21T16:00 2027-10-21T17:00 | confirmed | Atelier numérique (nouvel horaire) | rid 2027-10-21T12:00Z",
                    "2027-10-29T07:00Z 2027-10-29T08:00Z | 2027-10-29T09:00 2027-10-29T10:00 | confirmed | Atelier numérique (vendredi) | rid 2027-10-28T12:00Z",
                    "2027-11-04T15:00Z 2027-11-04T16:00Z | 2027-11-04T16:00 2027-11-04T17:00 | confirmed | Atelier numérique (nouvel horaire) | rid 2027-11-04T13:00Z",
                ),
                rooms=("EcoCentre Strasbourg",),
            )
        },
    ),
    Case(
        "apple_several_rules.ics",
        "America/Montreal",
        notes="two RRULEs, RDATE, RDATE;VALUE=PERIOD, TRANSPARENT, CANCELLED; seen from Montreal",
        series={
            "8E1B2C3D-4F5A-4B6C-9D8E-7F6A5B4C3D2E": Series(
                "Europe/Paris",
                (
                    "2027-01-12T17:00Z 2027-01-12T18:30Z | 2027-01-12T12:00 2027-01-12T13:30 | confirmed | Club numérique",
                    "2027-01-19T17:00Z 2027-01-19T18:30Z | 2027-01-19T12:00 2027-01-19T13:30 | confirmed | Club numérique",
                    "2027-02-09T17:00Z 2027-02-09T18:30Z | 2027-02-09T12:00 2027-02-09T13:30 | confirmed | Club numérique",
                    "2027-03-09T17:00Z 2027-03-09T18:30Z | 2027-03-09T12:00 2027-03-09T13:30 | confirmed | Club numérique",
                    "2027-04-01T16:00Z 2027-04-01T17:30Z | 2027-04-01T12:00 2027-04-01T13:30 | confirmed | Club numérique",
                    "2027-04-15T16:00Z 2027-04-15T18:00Z | 2027-04-15T12:00 2027-04-15T14:00 | confirmed | Club numérique",
                ),
                rooms=("EcoCentre Mulhouse",),
            ),
            "1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D": Series(
                "Europe/Paris",
                (
                    "2027-02-01T08:00Z 2027-02-01T09:00Z | 2027-02-01T03:00 2027-02-01T04:00 | confirmed transparent | Permanence (disponible)",
                ),
            ),
            "6F5E4D3C-2B1A-4F9E-8D7C-6B5A4F3E2D1C": Series(
                "Europe/Paris",
                (
                    "2027-02-03T08:00Z 2027-02-03T09:00Z | 2027-02-03T03:00 2027-02-03T04:00 | cancelled | Réunion annulée",
                ),
            ),
        },
    ),
    Case(
        "thunderbird_lengths.ics",
        "Europe/Paris",
        notes="RFC 5545 3.6.1 lengths; floating times take the room's zone; DAILY;INTERVAL=2",
        series={
            "floating-with-duration": Series(
                "UTC",
                (
                    "2027-06-01T08:00Z 2027-06-01T09:30Z | 2027-06-01T10:00 2027-06-01T11:30 | confirmed | Heure flottante, durée",
                ),
                floating=True,
            ),
            "all-day-without-end": Series(
                "UTC",
                (
                    "2027-06-01T22:00Z 2027-06-02T22:00Z | 2027-06-02T00:00 2027-06-03T00:00 | confirmed | Journée sans DTEND",
                ),
                all_day=True,
                floating=True,
            ),
            "all-day-end-equals-start": Series(
                "UTC",
                (
                    "2027-06-02T22:00Z 2027-06-03T22:00Z | 2027-06-03T00:00 2027-06-04T00:00 | confirmed | Journée DTEND = DTSTART",
                ),
                all_day=True,
                floating=True,
            ),
            "tentative-utc-end-in-other-zone": Series(
                "Europe/Paris",
                (
                    "2027-06-07T07:00Z 2027-06-07T08:00Z | 2027-06-07T09:00 2027-06-07T10:00 | tentative | Provisoire",
                ),
            ),
            "daily-every-other-day": Series(
                "Europe/Paris",
                (
                    "2027-10-29T06:30Z 2027-10-29T07:00Z | 2027-10-29T08:30 2027-10-29T09:00 | confirmed | Un jour sur deux",
                    "2027-10-31T07:30Z 2027-10-31T08:00Z | 2027-10-31T08:30 2027-10-31T09:00 | confirmed | Un jour sur deux",
                    "2027-11-02T07:30Z 2027-11-02T08:00Z | 2027-11-02T08:30 2027-11-02T09:00 | confirmed | Un jour sur deux",
                ),
            ),
        },
        skipped=(
            ("timed-without-end", None, "zero-length"),
            ("timed-end-equals-start", None, "zero-length"),
            ("end-before-start", None, "end-before-start"),
            ("negative-duration", None, "end-before-start"),
        ),
    ),
    Case(
        "evolution_global_tzid.ics",
        "Europe/Paris",
        notes="RFC 5545 3.2.19 globally unique TZID, and a TZID with a leading slash",
        series={
            "20270301T090000Z-4242-1000-1-7@evolution.example": Series(
                "Europe/Paris",
                (
                    "2027-03-24T15:00Z 2027-03-24T16:00Z | 2027-03-24T16:00 2027-03-24T17:00 | confirmed | Réunion EcoCentre Colmar",
                    "2027-03-31T14:00Z 2027-03-31T15:00Z | 2027-03-31T16:00 2027-03-31T17:00 | confirmed | Réunion EcoCentre Colmar",
                ),
                rooms=("EcoCentre Colmar",),
            ),
            "europe-paris-slash@example.org": Series(
                "Europe/Paris",
                (
                    "2027-03-25T15:00Z 2027-03-25T16:00Z | 2027-03-25T16:00 2027-03-25T17:00 | confirmed | TZID with a leading slash",
                ),
            ),
        },
    ),
    Case(
        "bad_unknown_timezone.ics",
        "Europe/Paris",
        notes="unknown TZIDs skip their event or override; an unknown X-WR-TIMEZONE is ignored",
        series={
            "good-with-bad-override@example.org": Series(
                "Europe/Paris",
                (
                    "2027-03-01T08:00Z 2027-03-01T09:00Z | 2027-03-01T09:00 2027-03-01T10:00 | confirmed | Series with one unreadable override",
                    "2027-03-08T08:00Z 2027-03-08T09:00Z | 2027-03-08T09:00 2027-03-08T10:00 | confirmed | Series with one unreadable override",
                ),
            ),
            "floating-in-unknown-calendar-zone@example.org": Series(
                "UTC",
                (
                    "2027-03-02T08:00Z 2027-03-02T09:00Z | 2027-03-02T09:00 2027-03-02T10:00 | confirmed | Floating, the calendar zone is unknown",
                ),
                floating=True,
            ),
        },
        skipped=(
            ("mars-meeting@example.org", None, "unknown-timezone"),
            (
                "good-with-bad-override@example.org",
                "2027-03-08T09:00:00 Atlantis/Capital",
                "unknown-timezone",
            ),
        ),
    ),
    Case(
        "bad_dates.ics",
        "UTC",
        notes="impossible and unreadable dates, bad RRULEs, no DTSTART, no UID",
        series={
            "good@example.org": Series(
                "UTC",
                (
                    "2027-03-01T09:00Z 2027-03-01T10:00Z | 2027-03-01T09:00 2027-03-01T10:00 | confirmed | The one good event",
                    "2027-03-02T09:00Z 2027-03-02T10:00Z | 2027-03-02T09:00 2027-03-02T10:00 | confirmed | The one good event",
                ),
            )
        },
        skipped=(
            ("month-13@example.org", None, "bad-date"),
            ("words-for-a-date@example.org", None, "bad-date"),
            ("no-dtstart@example.org", None, "no-dtstart"),
            ("fortnightly@example.org", None, "bad-rrule"),
            ("month-day-40@example.org", None, "bad-rrule"),
            ("date-and-date-time@example.org", None, "bad-date"),
            ("iso-exdate@example.org", None, "bad-date"),
            (None, None, "no-uid"),
            ("good@example.org", "2027-03-02T09:00:00Z", "bad-date"),
        ),
    ),
    Case(
        "broken_folding.ics",
        "Europe/Paris",
        notes="continuation lines that lost their leading space are joined back",
        series={
            "broken-folding@it77.fr": Series(
                "Europe/Paris",
                (
                    "2027-04-12T12:00Z 2027-04-12T13:30Z | 2027-04-12T14:00 2027-04-12T15:30 | confirmed | Réunion du réseau des tiers-lieux de Seine-et-Marne avec les centres d'Amsterdam et de Strasbourg",
                ),
                rooms=("Salle Fontainebleau",),
            )
        },
    ),
    Case(
        "sequence_duplicates.ics",
        "Europe/Paris",
        notes="the higher SEQUENCE wins whatever the order; on a tie the later copy wins",
        series={
            "revised-twice@example.org": Series(
                "Europe/Paris",
                (
                    "2027-03-15T09:00Z 2027-03-15T10:00Z | 2027-03-15T10:00 2027-03-15T11:00 | confirmed | Revision 2 (10:00)",
                    "2027-03-22T15:00Z 2027-03-22T16:00Z | 2027-03-22T16:00 2027-03-22T17:00 | confirmed | Moved to 16:00 (same SEQUENCE, later in the file) | rid 2027-03-22T09:00Z",
                ),
            )
        },
        skipped=(
            ("revised-twice@example.org", None, "duplicate-uid"),
            ("revised-twice@example.org", "2027-03-22T10:00:00 Europe/Paris", "duplicate-uid"),
        ),
    ),
    Case(
        "exchange_spaced_byday.ics",
        "Europe/Paris",
        notes="Exchange writes spaces after the commas of BYDAY (and some around ';'): read "
        "without them, with a warning; a rule that is wrong beyond its spaces is still skipped",
        series={
            outlook_uid(f"{EXCHANGE_UID}CC01"): Series(
                "Europe/Paris",
                (
                    "2027-03-22T08:00Z 2027-03-22T08:30Z | 2027-03-22T09:00 2027-03-22T09:30 | confirmed | Permanence visio (lundi à mercredi)",
                    "2027-03-23T08:00Z 2027-03-23T08:30Z | 2027-03-23T09:00 2027-03-23T09:30 | confirmed | Permanence visio (lundi à mercredi)",
                    "2027-03-24T08:00Z 2027-03-24T08:30Z | 2027-03-24T09:00 2027-03-24T09:30 | confirmed | Permanence visio (lundi à mercredi)",
                    "2027-03-29T07:00Z 2027-03-29T07:30Z | 2027-03-29T09:00 2027-03-29T09:30 | confirmed | Permanence visio (lundi à mercredi)",
                    "2027-03-30T07:00Z 2027-03-30T07:30Z | 2027-03-30T09:00 2027-03-30T09:30 | confirmed | Permanence visio (lundi à mercredi)",
                    "2027-03-31T07:00Z 2027-03-31T07:30Z | 2027-03-31T09:00 2027-03-31T09:30 | confirmed | Permanence visio (lundi à mercredi)",
                ),
                rooms=("Salle Fontainebleau",),
            ),
            outlook_uid(f"{EXCHANGE_UID}CC02"): Series(
                "Europe/Paris",
                (
                    "2027-03-25T13:00Z 2027-03-25T15:00Z | 2027-03-25T14:00 2027-03-25T16:00 | confirmed | Formation (jeudi et vendredi)",
                    "2027-03-26T13:00Z 2027-03-26T15:00Z | 2027-03-26T14:00 2027-03-26T16:00 | confirmed | Formation (jeudi et vendredi)",
                ),
                rooms=("Salle Fontainebleau",),
            ),
        },
        skipped=((outlook_uid(f"{EXCHANGE_UID}CC03"), None, "bad-rrule"),),
        warnings=(
            (outlook_uid(f"{EXCHANGE_UID}CC01"), None, "lenient-rrule"),
            (outlook_uid(f"{EXCHANGE_UID}CC02"), None, "lenient-rrule"),
        ),
    ),
    Case(
        "google_no_summary.ics",
        "Europe/Paris",
        calendar_zone="Europe/Paris",
        notes="SUMMARY is optional (RFC 5545 3.8.1.12) and Google leaves it out: the title "
        "is made up from LOCATION, else ORGANIZER's CN, else its address, else 'Busy'; an "
        "override without SUMMARY keeps its series' title",
        series={
            "1n0s4mm4ryl0c4t10n@google.com": Series(
                "Europe/Paris",
                (
                    "2027-04-12T07:00Z 2027-04-12T08:00Z | 2027-04-12T09:00 2027-04-12T10:00 | confirmed | Salle Fontainebleau",
                ),
                rooms=("Salle Fontainebleau",),
            ),
            "2n0s4mm4ry0rg4n1z3rcn@google.com": Series(
                "Europe/Paris",
                (
                    "2027-04-13T12:00Z 2027-04-13T13:00Z | 2027-04-13T14:00 2027-04-13T15:00 | confirmed | Jeanne Dupont",
                ),
            ),
            "3n0s4mm4ry0rg4n1z3r4ddr@google.com": Series(
                "Europe/Paris",
                (
                    "2027-04-14T12:00Z 2027-04-14T13:00Z | 2027-04-14T14:00 2027-04-14T15:00 | confirmed | accueil@it77.fr",
                ),
            ),
            "4n0s4mm4ryn0th1ng@google.com": Series(
                "Europe/Paris",
                (
                    "2027-04-15T07:00Z 2027-04-15T08:00Z | 2027-04-15T09:00 2027-04-15T10:00 | confirmed | Busy",
                ),
            ),
            "5s3r13sw1th4n0v3rr1d3@google.com": Series(
                "Europe/Paris",
                (
                    "2027-04-19T07:00Z 2027-04-19T08:00Z | 2027-04-19T09:00 2027-04-19T10:00 | confirmed | Point d'équipe",
                    "2027-04-26T09:00Z 2027-04-26T10:00Z | 2027-04-26T11:00 2027-04-26T12:00 | confirmed | Point d'équipe | rid 2027-04-26T07:00Z",
                ),
                rooms=("Salle Fontainebleau",),
            ),
            "6n0s4mm4ry1nv1t3d@google.com": Series(
                "America/Montreal",
                (
                    "2027-04-20T13:00Z 2027-04-20T14:00Z | 2027-04-20T15:00 2027-04-20T16:00 | confirmed | Smart Work Room",
                ),
                rooms=("Smart Work Room",),
            ),
        },
        warnings=(
            ("1n0s4mm4ryl0c4t10n@google.com", None, "made-up-title"),
            ("2n0s4mm4ry0rg4n1z3rcn@google.com", None, "made-up-title"),
            ("3n0s4mm4ry0rg4n1z3r4ddr@google.com", None, "made-up-title"),
            ("4n0s4mm4ryn0th1ng@google.com", None, "made-up-title"),
            (
                "6n0s4mm4ry1nv1t3d@google.com",
                "2027-04-20T09:00:00 America/Montreal",
                "made-up-title",
            ),
        ),
    ),
]


def parse_fixture(name: str) -> ParsedCalendar:
    return parse_calendar((FIXTURES / name).read_bytes())


@pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")
@pytest.mark.parametrize("case", CASES, ids=[c.fixture.removesuffix(".ics") for c in CASES])
def test_fixture_expands_to_the_exact_occurrences(case: Case) -> None:
    parsed = parse_fixture(case.fixture)
    assert parsed.calendar_zone == case.calendar_zone
    by_uid = {event.spec.uid: event for event in parsed.events}
    assert sorted(by_uid) == sorted(case.series)
    for uid, expected in case.series.items():
        event = by_uid[uid]
        assert event.spec.timezone == expected.zone, uid
        assert event.spec.all_day == expected.all_day, uid
        assert event.floating == expected.floating, uid
        assert event.rooms == RoomHint(expected.rooms), uid
        spec = event.spec
        if event.floating:  # what the importer does: the room's zone replaces the placeholder
            spec = dataclasses.replace(spec, timezone=case.room_zone)
        found = expand(spec, *WINDOW, 100)
        assert tuple(row(o, case.room_zone) for o in found) == expected.rows, uid
    got = sorted(((s.uid, s.recurrence_id, s.reason_code) for s in parsed.skipped), key=repr)
    assert got == sorted(case.skipped, key=repr)
    assert all(s.reason for s in parsed.skipped)
    warned = sorted(((w.uid, w.recurrence_id, w.code) for w in parsed.warnings), key=repr)
    assert warned == sorted(case.warnings, key=repr)
    assert all(w.message for w in parsed.warnings)


def test_an_event_without_summary_is_titled_in_the_importers_language() -> None:
    data = (FIXTURES / "google_no_summary.ics").read_bytes()
    titles = {e.spec.uid[:1]: e.spec.title for e in parse_calendar(data, untitled="Bezet").events}
    assert titles == {
        "1": "Salle Fontainebleau",
        "2": "Jeanne Dupont",
        "3": "accueil@it77.fr",
        "4": "Bezet",
        "5": "Point d'équipe",
        "6": "Smart Work Room",
    }
    messages = [w.message for w in parse_calendar(data).warnings]
    assert "no SUMMARY: titled 'Jeanne Dupont' after its ORGANIZER's name" in messages
    assert "no SUMMARY, LOCATION or ORGANIZER: titled 'Busy'" in messages


def test_exchange_spaced_byday_is_kept_without_its_spaces() -> None:
    parsed = parse_fixture("exchange_spaced_byday.ics")
    rules = {e.spec.uid[-4:]: e.spec.rrules for e in parsed.events}
    assert rules == {
        "CC01": ("FREQ=WEEKLY;COUNT=6;INTERVAL=1;BYDAY=MO,TU,WE;WKST=SU",),
        "CC02": ("FREQ=WEEKLY;COUNT=2;BYDAY=TH,FR",),
    }
    first = next(w for w in parsed.warnings if w.uid and w.uid.endswith("CC01"))
    assert "BYDAY=MO, TU, WE" in first.message


def test_outlook_fixture_keeps_organiser_location_and_sequence() -> None:
    event = parse_fixture("outlook_romance_weekly.ics").events[0]
    assert event.location == "Salle Fontainebleau; Bright City Amsterdam"
    assert event.spec.organiser == "marie.dupont@seine-et-marne.fr"
    assert event.spec.rrules == ("FREQ=WEEKLY;UNTIL=20270412T070000Z;INTERVAL=1;BYDAY=MO;WKST=MO",)
    (moved,) = event.spec.overrides
    assert (moved.recurrence_id, moved.start_local, moved.sequence) == (
        datetime(2027, 4, 5, 9),
        datetime(2027, 4, 6, 14),
        1,
    )


def test_this_and_future_is_kept_on_the_override() -> None:
    event = parse_fixture("nextcloud_this_and_future.ics").events[0]
    assert [(o.recurrence_id.isoformat(), o.this_and_future) for o in event.spec.overrides] == [
        ("2027-10-07T14:00:00", True),
        ("2027-10-28T14:00:00", False),
    ]
    assert event.spec.exdates == (datetime(2027, 9, 16, 14), datetime(2027, 9, 23, 14))


def test_rdate_period_becomes_an_override_with_its_own_length() -> None:
    event = parse_fixture("apple_several_rules.ics").events[0]
    assert event.spec.rdates == (datetime(2027, 4, 1, 18),)
    (period,) = event.spec.overrides
    assert period.recurrence_id == period.start_local == datetime(2027, 4, 15, 18)
    assert period.duration == timedelta(hours=2)


# --------------------------------------------------------------------------- whole-file errors


def good_bytes() -> bytes:
    return (FIXTURES / "google_export.ics").read_bytes()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ((FIXTURES / "binary_junk.ics").read_bytes(), "not-icalendar"),
        (b"", "not-icalendar"),
        (b"hello world", "not-icalendar"),
        (b"BEGIN:VCARD\r\nFN:Salle Fontainebleau\r\nEND:VCARD\r\n", "not-icalendar"),
        (b"BEGIN:VCALENDAR\x00\x01\x02", "not-icalendar"),
        # Truncated downloads: no END:VCALENDAR, or cut inside an event.
        (good_bytes().replace(b"END:VCALENDAR\r\n", b""), "malformed"),
        (good_bytes()[: len(good_bytes()) // 2], "malformed"),
        (b"BEGIN:VCALENDAR\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "malformed"),
    ],
    ids=["binary-junk", "empty", "text", "vcard", "nul-bytes", "no-end", "cut", "stray-end"],
)
def test_whole_file_errors_have_codes(data: bytes, code: str) -> None:
    with pytest.raises(CalendarError) as caught:
        parse_calendar(data)
    assert caught.value.code == code
    assert caught.value.message


def test_size_cap_is_checked_before_parsing() -> None:
    with pytest.raises(CalendarError) as caught:
        parse_calendar(b"\x00" * 101, max_bytes=100)  # junk, but too large comes first
    assert caught.value.code == "too-large"
    oversize = b"BEGIN:VCALENDAR\r\n" + b"X-FILLER:" + b"x" * (10 * 1024 * 1024) + b"\r\n"
    with pytest.raises(CalendarError) as caught:
        parse_calendar(oversize)
    assert caught.value.code == "too-large"
    assert parse_calendar(good_bytes(), max_bytes=len(good_bytes())).events


def test_windows_1252_and_bom_files_are_read() -> None:
    text = (FIXTURES / "nextcloud_this_and_future.ics").read_text(encoding="utf-8")
    for data in (text.encode("cp1252"), b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16")):
        (event,) = parse_calendar(data).events
        assert event.spec.title == "Atelier numérique"


def test_a_calendar_without_events_is_empty_not_an_error() -> None:
    parsed = parse_calendar(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nEND:VCALENDAR\r\n")
    assert parsed == ParsedCalendar((), (), None)


# --------------------------------------------------------------------------- fuzzing

GOOD_FIXTURES = [
    (FIXTURES / c.fixture).read_bytes()
    for c in CASES
    if not c.fixture.startswith(("bad_", "evolution_"))
]
NASTY_VALUES = [
    "",
    "0",
    "-1",
    "99991231T235959Z",
    "99991231T235959",
    "00010101T000000",
    "00010101",
    "20270230T090000",
    "20271301",
    "FREQ=SECONDLY",
    "FREQ=MINUTELY;INTERVAL=1",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=DAILY;BYSETPOS=2",
    "FREQ=WEEKLY;COUNT=0",
    "FREQ=WEEKLY;UNTIL=1",
    "FREQ=DAILY;UNTIL=99991231",
    "FREQ=HOURLY;BYHOUR=2;BYMINUTE=30",
    "-P1D",
    "P99999W",
    "PT0S",
    "20270301T090000Z/PT1H",
    "20270301T090000Z,20270302",
    "Mars/Olympus_Mons",
    "Romance Standard Time",
    "TRANSPARENT",
    "CANCELLED",
    "\\,\\;\\n",
    "é\u200b\U0001f4c5",
]
KNOWN_SKIPS = {
    "end-before-start",
    "zero-length",
    "unknown-timezone",
    "bad-date",
    "no-dtstart",
    "no-uid",
    "bad-rrule",
    "duplicate-uid",
    "malformed",
}


@st.composite
def mutated_calendars(draw: st.DrawFn) -> bytes:
    lines = draw(st.sampled_from(GOOD_FIXTURES)).split(b"\r\n")
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(
            st.sampled_from(["value", "value", "param", "drop", "dup", "swap", "flip", "insert"])
        )
        i = rng.randrange(len(lines))
        line = lines[i]
        if op == "value" and b":" in line:
            value = draw(st.sampled_from(NASTY_VALUES) | st.text(max_size=30))
            lines[i] = line.split(b":", 1)[0] + b":" + value.encode("utf-8", "replace")
        elif op == "param" and b":" in line:
            name, _, value = line.partition(b":")
            param = draw(
                st.sampled_from(
                    [
                        "TZID=Mars/Olympus",
                        "VALUE=DATE",
                        "RANGE=THISANDFUTURE",
                        'TZID="',
                        "VALUE=PERIOD",
                    ]
                )
            )
            lines[i] = name.split(b";")[0] + b";" + param.encode() + b":" + value
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, line)
        elif op == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "flip" and line:
            k = rng.randrange(len(line))
            lines[i] = line[:k] + bytes([line[k] ^ (1 << rng.randrange(8))]) + line[k + 1 :]
        elif op == "insert":
            lines.insert(i, draw(st.binary(max_size=40)))
        if not lines:
            break
    data = b"\r\n".join(lines)
    if draw(st.booleans()) and data:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def assert_well_formed(parsed: ParsedCalendar) -> None:
    assert isinstance(parsed, ParsedCalendar)
    assert parsed.calendar_zone is None or zone_info(parsed.calendar_zone)
    for skip in parsed.skipped:
        assert isinstance(skip, Skipped) and skip.reason_code in KNOWN_SKIPS and skip.reason
    for event in parsed.events:
        assert isinstance(event, ParsedEvent) and isinstance(event.rooms, RoomHint)
        spec = event.spec
        assert isinstance(spec, SeriesSpec) and spec.uid
        zone_info(spec.timezone)
        assert spec.start_local.tzinfo is None
        assert spec.duration > timedelta(0)
        assert not spec.all_day or spec.duration % timedelta(days=1) == timedelta(0)
        for rule in spec.rrules:
            validate_rrule(rule)
        for moment in (*spec.rdates, *spec.exdates):
            assert moment.tzinfo is None
        for change in spec.overrides:
            assert change.recurrence_id.tzinfo is None and change.start_local.tzinfo is None
            assert change.duration > timedelta(0)
        found = expand(spec, datetime(2026, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC), 20)
        assert len(found) <= 20
        assert [o.start for o in found] == sorted(o.start for o in found)
        for occurrence in found:
            assert occurrence.start.tzinfo is not None and occurrence.start <= occurrence.end


@pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_calendars() | st.binary(max_size=500) | st.text(max_size=300).map(str.encode))
def test_random_and_mutated_calendars_never_crash_the_parser(data: bytes) -> None:
    try:
        parsed = parse_calendar(data)
    except CalendarError as exc:
        assert exc.code in {"not-icalendar", "malformed", "too-large"}
        return
    assert_well_formed(parsed)
